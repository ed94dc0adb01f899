// Evaluates ops whose inputs are all constants (weight transposes and reshapes, quantization of
// float weights, arithmetic on constants) and stores the results as constants. DEQUANTIZE of a
// constant is folded separately (fold_constant_dequantize), at the end of the pipeline: until
// then it is what marks a weight as quantized.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <fmt/format.h>

namespace torch_circle::exporter {
namespace {

bool all_constant(const Op& op) {
  if (op.inputs.empty()) return false;
  for (const Tensor* in : op.inputs)
    if (!in || !in->is_constant()) return false;
  return true;
}

std::vector<int64_t> static_shape(const Tensor* t) {
  for (int64_t d : t->shape)
    if (d < 0) throw ExportError(fmt::format("constant '{}' has a dynamic shape", t->name));
  return t->shape;
}

// The folded value, or an undefined tensor when the op is not folded here.
at::Tensor evaluate(const Op& op) {
  const auto& in = op.inputs;
  auto real = [](const Tensor* t) { return t->data; };
  if (op.type == "TRANSPOSE") return in[0]->data.permute(op.ints("perm"));
  if (op.type == "RESHAPE") return in[0]->data.reshape(static_shape(op.outputs[0]));
  if (op.type == "QUANTIZE" && in[0]->dtype == DType::kFloat32)
    return quantize_constant(in[0]->data, *op.outputs[0]->quant, op.outputs[0]->dtype);
  if (op.type == "CAST") return in[0]->data.to(dtype_to_torch(op.outputs[0]->dtype));
  if (op.type == "BROADCAST_TO" && !(in[0]->quant && in[0]->quant->per_channel()))
    return in[0]->data.expand(static_shape(op.outputs[0]));
  bool floats = true;
  for (const Tensor* t : in) floats &= t->dtype == DType::kFloat32 && !t->quant;
  if (!floats) return {};
  if (op.type == "ADD") return real(in[0]) + real(in[1]);
  if (op.type == "SUB") return real(in[0]) - real(in[1]);
  if (op.type == "MUL") return real(in[0]) * real(in[1]);
  if (op.type == "DIV") return real(in[0]) / real(in[1]);
  if (op.type == "NEG") return -real(in[0]);
  if (op.type == "SQRT") return at::sqrt(real(in[0]));
  if (op.type == "RSQRT") return at::rsqrt(real(in[0]));
  if (op.type == "EXP") return at::exp(real(in[0]));
  return {};
}

void replace_with_constant(Graph& graph, Op* op, const at::Tensor& value) {
  Tensor* out = op->outputs[0];
  graph.remove_op(op);
  Tensor* folded = graph.add_constant(out->name, value.contiguous());
  folded->quant = out->quant;
  graph.replace_all_uses(out, folded);
}

}  // namespace

void fold_constants(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    if (op->dead || op->outputs.size() != 1 || !all_constant(*op)) continue;
    at::Tensor value = evaluate(*op);
    if (!value.defined()) continue;
    if (op->has("fused_activation")) continue;
    replace_with_constant(graph, op, value.to(dtype_to_torch(op->outputs[0]->dtype)));
  }
  remove_dead_code(graph);
}

void fold_constant_dequantize(Graph& graph) {
  for (Op* op : graph.live_ops())
    if (op->type == "DEQUANTIZE" && op->inputs[0]->is_constant())
      replace_with_constant(graph, op, dequantize_constant(op->inputs[0]->data, *op->inputs[0]->quant));
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
