// Passes keep shapes, permutations and axes as op attributes, which is easy to rewrite. Circle
// takes them as int32 tensor inputs; this last pass creates those constants and puts every op's
// inputs in Circle's order.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <algorithm>

namespace torch_circle::exporter {
namespace {

Tensor* int32_constant(Graph& graph, const Op& op, const std::vector<int64_t>& values,
                       const std::string& what, std::vector<int64_t> shape = {}) {
  at::Tensor data = at::tensor(values, at::kLong).to(at::kInt);
  if (!shape.empty()) data = data.reshape(shape);
  return graph.add_constant(op.outputs[0]->name + "_" + what, data);
}

// PADV2's pad value, in the input's integer domain when it is quantized.
Tensor* pad_value(Graph& graph, const Op& op) {
  const Tensor* x = op.inputs[0];
  at::Tensor real = at::scalar_tensor(op.f("value"), at::kFloat).reshape({1});
  if (!x->quant) return graph.add_constant(op.outputs[0]->name + "_pad_value", real);
  Tensor* q = graph.add_constant(op.outputs[0]->name + "_pad_value", quantize_constant(real, *x->quant, x->dtype));
  q->quant = x->quant;
  return q;
}

}  // namespace

void materialize_operands(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    const std::string& t = op->type;
    auto append = [&](Tensor* c) {
      op->inputs.push_back(c);
      c->users.push_back(op);
    };
    if (t == "RESHAPE" || t == "BROADCAST_TO") {
      append(int32_constant(graph, *op, op->ints("shape"), "shape"));
    } else if (t == "TRANSPOSE") {
      append(int32_constant(graph, *op, op->ints("perm"), "perm"));
    } else if (t == "MEAN" || t == "SUM" || t == "REDUCE_MAX" || t == "REDUCE_MIN" || t == "REDUCE_ANY") {
      append(int32_constant(graph, *op, op->ints("axes"), "axes"));
    } else if (t == "PAD" || t == "PADV2") {
      int64_t rank = op->inputs[0]->rank();
      append(int32_constant(graph, *op, op->ints("paddings"), "paddings", {rank, 2}));
      if (t == "PADV2") append(pad_value(graph, *op));
    } else if (t == "STRIDED_SLICE") {
      append(int32_constant(graph, *op, op->ints("begin"), "begin"));
      append(int32_constant(graph, *op, op->ints("end"), "end"));
      append(int32_constant(graph, *op, op->ints("strides"), "strides"));
    } else if (t == "SLICE") {
      append(int32_constant(graph, *op, op->ints("begin"), "begin"));
      append(int32_constant(graph, *op, op->ints("size"), "size"));
    } else if (t == "ARG_MAX") {
      append(int32_constant(graph, *op, {op->i("axis")}, "axis"));
    } else if (t == "RESIZE_BILINEAR") {
      append(int32_constant(graph, *op, op->ints("size"), "size"));
    } else if (t == "TILE") {
      append(int32_constant(graph, *op, op->ints("multiples"), "multiples"));
    } else if (t == "SPLIT_V") {
      append(int32_constant(graph, *op, op->ints("size_splits"), "size_splits"));
      append(int32_constant(graph, *op, {op->i("axis")}, "axis", {}));
    } else if (t == "TRANSPOSE_CONV") {
      // Circle's order: output_shape, weights, input, bias.
      Tensor* shape = int32_constant(graph, *op, op->ints("output_shape"), "output_shape");
      std::vector<Tensor*> inputs{shape, op->inputs[1], op->inputs[0]};
      if (op->inputs.size() > 2 && op->inputs[2]) inputs.push_back(op->inputs[2]);
      for (Tensor* in : op->inputs)
        if (in) {
          auto& users = in->users;
          users.erase(std::find(users.begin(), users.end(), op));
        }
      op->inputs = inputs;
      for (Tensor* in : inputs) in->users.push_back(op);
    }
  }
}

}  // namespace torch_circle::exporter
