// Integer kernels make assumptions about quantization parameters that a PT2E graph need not
// satisfy. Where they differ, this pass inserts a requantize (integer → integer). Which op makes
// which assumption is its QuantRule in the op table (ir/circle_ops.lst):
//   - ops whose integer kernels do no rescaling write their output with the parameters they
//     read (TFLite's reference kernels and onert's check this at most in debug builds, and
//     otherwise compute silently wrong numbers): data movement (reshape, transpose, slice, pad,
//     gather, concat, broadcast, tile), selection (max pool, reduce max, maximum,
//     minimum) and averaging (AVERAGE_POOL_2D: the window's integer mean, in the input's
//     parameters). MEAN, SUM and the arithmetic ops rescale themselves and need nothing here.
//   - LOGISTIC / SOFTMAX / TANH write the fixed output parameters TFLite's kernels assume
//     (scale 1/256 or 1/128 with the zero point of the dtype's range; 1/32768 for int16).
//
// Where the requantize goes: an op with one quantized input computes with its input's
// parameters and is followed by one requantize to the parameters the graph wants. For data
// movement and selection this gives the same integers as requantizing the input, but for an
// average it is the only correct place: requantizing the input first would clamp each element
// to the output's (usually narrower) range before averaging. Ops with several quantized inputs
// (concat, maximum, minimum) have each input requantized to the output's parameters instead,
// which is exact because clamping and rounding commute with selecting elements. Constant inputs
// are requantized at export time.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <algorithm>

namespace torch_circle::exporter {
namespace {

// The range a kFixedOutput op's integer kernels write.
std::optional<QuantParams> fixed_output_params(const std::string& type, DType dtype) {
  QuantParams q;
  bool tanh = type == "TANH";
  switch (dtype) {
    case DType::kUInt8:
      q.scale = {tanh ? 1.0f / 128 : 1.0f / 256};
      q.zero_point = {tanh ? 128 : 0};
      break;
    case DType::kInt8:
      q.scale = {tanh ? 1.0f / 128 : 1.0f / 256};
      q.zero_point = {tanh ? 0 : -128};
      break;
    case DType::kInt16:
      q.scale = {1.0f / 32768};
      q.zero_point = {0};
      break;
    default: return std::nullopt;
  }
  return q;
}

bool same_quantization(const Tensor* a, const Tensor* b) { return a->dtype == b->dtype && a->quant == b->quant; }

// Ops that requantize `in` into `out`, placed right before or right after `anchor`: one
// QUANTIZE between different dtypes; DEQUANTIZE + QUANTIZE within one dtype (onert 0.1.0 has no
// uint8 → uint8 QUANTIZE).
enum class Place { kBefore, kAfter };
void emit_requantize(Graph& graph, const Op* anchor, Place place, Tensor* in, Tensor* out) {
  Tensor* source = in;
  if (in->dtype == out->dtype) source = graph.add_tensor(in->name + "_real", in->shape, DType::kFloat32);
  if (place == Place::kBefore) {
    if (source != in) graph.insert_before(anchor, "DEQUANTIZE", {in}, {source});
    graph.insert_before(anchor, "QUANTIZE", {source}, {out});
  } else {  // each lands right after `anchor`, so the last one goes in first
    graph.insert_after(anchor, "QUANTIZE", {source}, {out});
    if (source != in) graph.insert_after(anchor, "DEQUANTIZE", {in}, {source});
  }
}

// `in` with `like`'s dtype and parameters: a new constant for a constant, else a requantize
// placed ahead of `anchor`.
Tensor* requantized_like(Graph& graph, const Op* anchor, Tensor* in, const Tensor* like) {
  if (in->is_constant()) {
    at::Tensor real = dequantize_constant(in->data, *in->quant);
    Tensor* c = graph.add_constant(in->name + "_requantized", quantize_constant(real, *like->quant, like->dtype));
    c->quant = like->quant;
    return c;
  }
  Tensor* out = graph.add_tensor(in->name + "_requantized", in->shape, like->dtype);
  out->quant = like->quant;
  emit_requantize(graph, anchor, Place::kBefore, in, out);
  return out;
}

// `op` writes a new tensor with `dtype` / `native` parameters; a requantize after it produces
// the tensor `op` wrote before, so its readers (and graph outputs) are unchanged.
void requantize_output(Graph& graph, Op* op, DType dtype, const QuantParams& native) {
  Tensor* out = op->outputs[0];
  Tensor* written = graph.add_tensor(out->name + "_native", out->shape, dtype);
  written->quant = native;
  op->outputs[0] = written;
  written->producer = op;
  out->producer = nullptr;
  emit_requantize(graph, op, Place::kAfter, written, out);
}

void match_input_and_output_params(Graph& graph, Op* op) {
  Tensor* out = op->outputs[0];
  std::vector<size_t> quantized_slots;
  for (size_t slot = 0; slot < op->inputs.size(); ++slot)
    if (op->inputs[slot] && op->inputs[slot]->quant) quantized_slots.push_back(slot);
  if (quantized_slots.empty()) return;
  Tensor* first = op->inputs[quantized_slots[0]];
  if (quantized_slots.size() == 1 && !first->is_constant() && !first->quant->per_channel()) {
    if (!same_quantization(first, out)) requantize_output(graph, op, first->dtype, *first->quant);
    return;
  }
  for (size_t slot : quantized_slots) {
    Tensor* in = op->inputs[slot];
    if (!same_quantization(in, out)) graph.set_input(op, slot, requantized_like(graph, op, in, out));
  }
}

}  // namespace

void insert_requantize(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    if (op->dead || op->outputs.empty()) continue;
    Tensor* out = op->outputs[0];
    if (!out->quant || out->quant->per_channel()) continue;
    const OpInfo* info = find_op(op->type);
    if (!info) continue;
    if (info->quant == QuantRule::kSameParams) {
      match_input_and_output_params(graph, op);
    } else if (info->quant != QuantRule::kFixedOutput) {
      continue;
    } else if (auto fixed = fixed_output_params(op->type, out->dtype); fixed && *fixed != *out->quant) {
      requantize_output(graph, op, out->dtype, *fixed);
    }
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
