// Integer kernels make assumptions about quantization parameters that a PT2E graph need not
// satisfy. Where they differ, this pass inserts a QUANTIZE (integer → integer requantize):
//   - ops that move data without arithmetic (reshape, transpose, slice, pad, max pool, gather,
//     concat, split) read and write with the same parameters;
//   - LOGISTIC / SOFTMAX / TANH write the fixed output parameters TFLite's kernels assume
//     (scale 1/256 or 1/128 with the zero point of the dtype's range; 1/32768 for int16).
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <algorithm>
#include <set>

namespace torch_circle::exporter {
namespace {

const std::set<std::string>& same_params_ops() {
  static const std::set<std::string> ops{"RESHAPE", "TRANSPOSE", "STRIDED_SLICE", "SLICE", "PAD", "PADV2",
                                         "MAX_POOL_2D", "GATHER", "CONCATENATION", "SPLIT_V",
                                         "BROADCAST_TO", "TILE", "REDUCE_MAX"};
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

// Emits ops ahead of `anchor` that requantize `in` into `out`: one QUANTIZE between different
// dtypes; DEQUANTIZE + QUANTIZE within one dtype (onert 0.1.0 has no uint8 → uint8 QUANTIZE).
void requantize(Graph& graph, const Op* anchor, Tensor* in, Tensor* out) {
  Tensor* source = in;
  if (in->dtype == out->dtype) {
    source = graph.add_tensor(in->name + "_real", in->shape, DType::kFloat32);
    graph.insert_before(anchor, "DEQUANTIZE", {in}, {source});
  }
  graph.insert_before(anchor, "QUANTIZE", {source}, {out});
}

Tensor* requantized(Graph& graph, const Op* anchor, Tensor* in, const QuantParams& quant, DType dtype) {
  Tensor* out = graph.add_tensor(in->name + "_requantized", in->shape, dtype);
  out->quant = quant;
  requantize(graph, anchor, in, out);
  return out;
}

}  // namespace

void insert_requantize(Graph& graph) {
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
      // Right after `op` (inserted last-first): [DEQUANTIZE →] QUANTIZE.
      Tensor* source = native;
      if (native->dtype == out->dtype) source = graph.add_tensor(out->name + "_real", out->shape, DType::kFloat32);
      graph.insert_after(op, "QUANTIZE", {source}, {out});
      if (source != native) graph.insert_after(op, "DEQUANTIZE", {native}, {source});
    }
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
