// Passes keep shapes, permutations and axes as op attributes, which is easy to rewrite. Circle
// takes them as int32 tensor inputs; this last pass creates those constants, as each op's
// OPERANDS in the op table (ir/circle_ops.lst) lists them, and puts every op's inputs in
// Circle's order.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <fmt/format.h>

#include <algorithm>
#include <variant>

namespace torch_circle::exporter {
namespace {

Tensor* int32_constant(Graph& graph, const Op& op, const std::vector<int64_t>& values, const std::string& what,
                       std::vector<int64_t> shape = {}) {
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

// The row's OPERANDS, "begin,end" or "paddings:pairs": (attribute, form) pairs in order.
std::vector<std::pair<std::string, std::string>> parse_operands(const OpInfo& info) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string_view rest = info.operands;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    size_t colon = item.find(':');
    out.emplace_back(std::string(item.substr(0, colon)),
                     colon == std::string_view::npos ? "" : std::string(item.substr(colon + 1)));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  return out;
}

}  // namespace

void materialize_operands(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    const OpInfo* info = find_op(op->type);
    if (!info || info->operands.empty()) continue;
    std::vector<Tensor*> appended;
    bool first = false;
    for (const auto& [attr, form] : parse_operands(*info)) {
      if (form == "pad_value") {
        appended.push_back(pad_value(graph, *op));
      } else if (form == "pairs") {
        int64_t rank = op->inputs[0]->rank();
        appended.push_back(int32_constant(graph, *op, op->ints(attr), attr, {rank, 2}));
      } else if (form.empty() || form == "first") {
        const Attr& value = op->attrs.at(attr);
        std::vector<int64_t> values =
            std::holds_alternative<int64_t>(value) ? std::vector<int64_t>{op->i(attr)} : op->ints(attr);
        appended.push_back(int32_constant(graph, *op, values, attr));
        first |= form == "first";
      } else {
        throw ExportError(fmt::format("{}: the op table names an unknown operand form '{}:{}'", op->type, attr, form));
      }
    }
    if (!first) {
      for (Tensor* c : appended) {
        op->inputs.push_back(c);
        c->users.push_back(op);
      }
      continue;
    }
    // TRANSPOSE_CONV: Circle's order is output_shape, weights, input, bias; the IR's x, w, bias.
    if (appended.size() != 1 || op->inputs.size() < 2)
      throw ExportError(
          fmt::format("{} ({}): a 'first' operand must be the only one, before x and w", op->type, op->origin));
    std::vector<Tensor*> inputs{appended[0], op->inputs[1], op->inputs[0]};
    if (op->inputs.size() > 2 && op->inputs[2]) inputs.push_back(op->inputs[2]);
    for (Tensor* in : op->inputs)
      if (in) in->users.erase(std::find(in->users.begin(), in->users.end(), op));
    op->inputs = inputs;
    for (Tensor* in : inputs) in->users.push_back(op);
  }
}

}  // namespace torch_circle::exporter
