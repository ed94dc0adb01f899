// Layer norm and RMS norm have no op every Circle runtime runs, so they are written as the
// arithmetic they stand for. They run in float; in a quantized graph their edges keep
// DEQUANTIZE / QUANTIZE.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {
namespace {

// Emits ops ahead of `anchor`, each output shaped like `like` unless told otherwise.
struct Emitter {
  Graph& graph;
  const Op* anchor;
  std::string base;

  Tensor* op(const char* type, std::vector<Tensor*> inputs, const std::vector<int64_t>& shape, const char* suffix,
             Tensor* out = nullptr) {
    if (!out) out = graph.add_tensor(base + "_" + suffix, shape, DType::kFloat32);
    graph.insert_before(anchor, type, std::move(inputs), {out});
    return out;
  }
  Tensor* reduce_mean(Tensor* x, const std::vector<int64_t>& axes, const char* suffix) {
    std::vector<int64_t> shape = x->shape;
    for (int64_t axis : axes) shape[axis] = 1;
    Tensor* out = op("MEAN", {x}, shape, suffix);
    Op* mean = out->producer;
    mean->attrs = {{"axes", axes}, {"keep_dims", int64_t{1}}};
    return out;
  }
  Tensor* scalar(double value, const char* suffix) {
    return graph.add_constant(base + "_" + suffix, at::scalar_tensor(value, at::kFloat));
  }
};

std::vector<int64_t> last_axes(const Tensor* x, int64_t count) {
  std::vector<int64_t> axes;
  for (int64_t d = x->rank() - count; d < x->rank(); ++d) axes.push_back(d);
  return axes;
}

void expand_layer_norm(Graph& graph, Op* ln) {
  Tensor* x = ln->inputs[0];
  Tensor* weight = ln->inputs[1];
  Tensor* bias = ln->inputs[2];
  Tensor* y = ln->outputs[0];
  graph.remove_op(ln);
  Emitter e{graph, ln, y->name};
  std::vector<int64_t> axes = last_axes(x, ln->i("dims"));
  Tensor* mean = e.reduce_mean(x, axes, "mean");
  Tensor* centered = e.op("SUB", {x, mean}, x->shape, "centered");
  Tensor* squared = e.op("MUL", {centered, centered}, x->shape, "squared");
  Tensor* var = e.reduce_mean(squared, axes, "var");
  Tensor* var_eps = e.op("ADD", {var, e.scalar(ln->f("eps"), "eps")}, var->shape, "var_eps");
  Tensor* inv_std = e.op("RSQRT", {var_eps}, var->shape, "inv_std");
  Tensor* normed = e.op("MUL", {centered, inv_std}, x->shape, "normed", (weight || bias) ? nullptr : y);
  if (weight) normed = e.op("MUL", {normed, weight}, x->shape, "scaled", bias ? nullptr : y);
  if (bias) e.op("ADD", {normed, bias}, x->shape, "shifted", y);
}

void expand_rms_norm(Graph& graph, Op* rms) {
  Tensor* x = rms->inputs[0];
  Tensor* weight = rms->inputs[1];
  Tensor* y = rms->outputs[0];
  graph.remove_op(rms);
  Emitter e{graph, rms, y->name};
  Tensor* squared = e.op("MUL", {x, x}, x->shape, "squared");
  Tensor* mean_sq = e.reduce_mean(squared, last_axes(x, 1), "mean_sq");
  Tensor* with_eps = e.op("ADD", {mean_sq, e.scalar(rms->f("eps"), "eps")}, mean_sq->shape, "with_eps");
  Tensor* inv_rms = e.op("RSQRT", {with_eps}, mean_sq->shape, "inv_rms");
  Tensor* normed = e.op("MUL", {x, inv_rms}, x->shape, "normed", weight ? nullptr : y);
  if (weight) e.op("MUL", {normed, weight}, x->shape, "scaled", y);
}

}  // namespace

void decompose_norms(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    if (op->type == "torch.layer_norm") expand_layer_norm(graph, op);
    if (op->type == "torch.rms_norm") expand_rms_norm(graph, op);
  }
  graph.compact();
}

}  // namespace torch_circle::exporter
