// Integer kernels make assumptions about quantization parameters that a PT2E graph need not
// satisfy. Where they differ, this pass inserts a QUANTIZE (integer → integer requantize):
//   - ops that move data without arithmetic (reshape, transpose, slice, pad, max pool, gather,
//     concat, split) read and write with the same parameters;
//   - LOGISTIC / SOFTMAX / TANH write the fixed output parameters TFLite's kernels assume
//     (scale 1/256 or 1/128 with the zero point of the dtype's range; 1/32768 for int16).
// It also turns a DEQUANTIZE → QUANTIZE pair into one requantize, or into nothing when the two
// agree.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <set>

namespace torch_circle::exporter {
namespace {

const std::set<std::string>& same_params_ops() {
  static const std::set<std::string> ops{"RESHAPE", "TRANSPOSE", "STRIDED_SLICE", "SLICE", "PAD", "PADV2",
                                         "MAX_POOL_2D", "GATHER", "CONCATENATION", "SPLIT_V",
                                         "BROADCAST_TO", "REDUCE_MAX"};
  return ops;
}

std::optional<QuantParams> fixed_output_params(const std::string& type, DType dtype) {
  QuantParams q;
  if (type != "LOGISTIC" && type != "SOFTMAX" && type != "TANH") return std::nullopt;
  bool tanh = type == "TANH";
  switch (dtype) {
    case DType::kUInt8: q.scale = {tanh ? 1.0f / 128 : 1.0f / 256}; q.zero_point = {tanh ? 128 : 0}; break;
    case DType::kInt8: q.scale = {tanh ? 1.0f / 128 : 1.0f / 256}; q.zero_point = {tanh ? 0 : -128}; break;
    case DType::kInt16: q.scale = {1.0f / 32768}; q.zero_point = {0}; break;
    default: return std::nullopt;
  }
  return q;
}

Tensor* requantized(Graph& graph, const Op* anchor, Tensor* in, const QuantParams& quant, DType dtype) {
  Tensor* out = graph.add_tensor(in->name + "_requantized", in->shape, dtype);
  out->quant = quant;
  graph.insert_before(anchor, "QUANTIZE", {in}, {out});
  return out;
}

// DEQUANTIZE → QUANTIZE with nothing between.
void fold_dequantize_quantize(Graph& graph) {
  for (Op* q : graph.live_ops()) {
    if (q->dead || q->type != "QUANTIZE") continue;
    Op* dq = q->inputs[0]->producer;
    if (!dq || dq->type != "DEQUANTIZE" || dq->inputs[0]->is_constant()) continue;
    Tensor* source = dq->inputs[0];
    Tensor* target = q->outputs[0];
    if (source->dtype == target->dtype && source->quant == target->quant && !is_graph_output(graph, target)) {
      graph.remove_op(q);
      graph.replace_all_uses(target, source);
    } else {
      graph.set_input(q, 0, source);
    }
  }
}

}  // namespace

void insert_requantize(Graph& graph) {
  fold_dequantize_quantize(graph);
  for (Op* op : graph.live_ops()) {
    if (op->dead || op->outputs.empty()) continue;
    Tensor* out = op->outputs[0];
    if (!out->quant || out->quant->per_channel()) continue;
    if (same_params_ops().count(op->type)) {
      size_t data_inputs = op->type == "CONCATENATION" ? op->inputs.size() : 1;
      for (size_t slot = 0; slot < data_inputs; ++slot) {
        Tensor* in = op->inputs[slot];
        if (in && in->quant && (in->quant != out->quant || in->dtype != out->dtype))
          graph.set_input(op, slot, requantized(graph, op, in, *out->quant, out->dtype));
      }
    } else if (auto fixed = fixed_output_params(op->type, out->dtype); fixed && *fixed != *out->quant) {
      Tensor* native = graph.add_tensor(out->name + "_fixed_range", out->shape, out->dtype);
      native->quant = *fixed;
      op->outputs[0] = native;
      native->producer = op;
      out->producer = nullptr;
      graph.insert_after(op, "QUANTIZE", {native}, {out});
    }
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
