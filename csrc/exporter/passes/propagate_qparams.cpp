// Propagates quantization parameters through ops that only move data, in both directions:
//     q → DEQUANTIZE → RESHAPE → ...     becomes     q → RESHAPE → DEQUANTIZE → ...
//     ... → RESHAPE → QUANTIZE → q       becomes     ... → QUANTIZE → RESHAPE → q
// The moved tensor keeps the parameters (a transpose remaps a per-channel axis). This lets a
// weight transposed in the graph (addmm's mat2) fold to a quantized constant, lets layout ops the
// quantizer did not annotate stay integer, and puts a QUANTIZE right behind the op it belongs
// to when an importer decomposed a node (conv1d = reshape, conv2d, reshape). A DEQUANTIZE →
// QUANTIZE pair left behind becomes one requantize, or nothing when the two agree.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {
namespace {

// DEQUANTIZE → QUANTIZE with nothing between.
void fold_dequantize_quantize(Graph& graph) {
  for (Op* q : graph.live_ops()) {
    if (q->dead || q->type != "QUANTIZE") continue;
    Op* dq = q->inputs[0]->producer;
    if (!dq || dq->type != "DEQUANTIZE" || dq->inputs[0]->is_constant()) continue;
    Tensor* source = dq->inputs[0];
    Tensor* target = q->outputs[0];
    if (source->dtype == target->dtype) {
      // Same dtype: nothing to do when the parameters agree; otherwise the pair stays, because
      // it is how a same-dtype requantize runs everywhere (onert has no uint8 → uint8 QUANTIZE).
      if (source->quant == target->quant && !is_graph_output(graph, target)) {
        graph.remove_op(q);
        graph.replace_all_uses(target, source);
      }
    } else {
      graph.set_input(q, 0, source);  // QUANTIZE uint8 ↔ int8 requantizes directly
    }
  }
}

// Where a reshape leaves the channel axis (same size, same number of elements before it), if
// anywhere: reshapes that add or drop size-1 dims keep per-channel parameters valid.
std::optional<int32_t> reshaped_axis(const std::vector<int64_t>& from, const std::vector<int64_t>& to, int32_t axis) {
  int64_t before = 1;
  for (int32_t d = 0; d < axis; ++d) before *= from[d];
  int64_t prefix = 1;
  for (size_t j = 0; j < to.size(); ++j) {
    if (prefix == before && to[j] == from[axis]) return static_cast<int32_t>(j);
    prefix *= to[j];
  }
  return std::nullopt;
}

}  // namespace

void propagate_qparams(Graph& graph) {
  // Ops that only rearrange their data input's elements (kRearranges in the op table).
  auto rearranges = [](const Op* op) {
    const OpInfo* info = find_op(op->type);
    return info && info->has(kRearranges);
  };
  for (Op* op : graph.live_ops()) {
    if (op->dead || !rearranges(op) || !runs_quantized(graph, op->type)) continue;
    Op* dq = op->inputs[0]->producer;
    if (!dq || dq->type != "DEQUANTIZE" || op->outputs[0]->dtype != DType::kFloat32) continue;
    Tensor* q = dq->inputs[0];
    std::optional<QuantParams> quant = q->quant;
    if (quant->per_channel()) {
      if (op->type == "TRANSPOSE") {
        quant = permute_quant(quant, op->ints("perm"));
      } else if (op->type == "RESHAPE") {
        std::optional<int32_t> axis = reshaped_axis(q->shape, op->outputs[0]->shape, quant->axis);
        if (!axis) continue;
        quant->axis = *axis;
      } else {
        continue;  // a slice can cut the channel axis
      }
    }
    Tensor* out = op->outputs[0];
    Tensor* moved = graph.add_tensor(out->name + "_q", out->shape, q->dtype);
    moved->quant = quant;
    graph.set_input(op, 0, q);
    op->outputs[0] = moved;
    moved->producer = op;
    out->producer = nullptr;
    graph.insert_after(op, "DEQUANTIZE", {moved}, {out});
  }
  // QUANTIZE up through a float layout op whose output only it reads.
  for (Op* q : graph.live_ops()) {
    if (q->dead || q->type != "QUANTIZE") continue;
    Op* op = q->inputs[0]->producer;
    Tensor* out = q->outputs[0];
    if (!op || op->dead || !rearranges(op) || !runs_quantized(graph, op->type) || !sole_user(graph, q->inputs[0]) ||
        op->inputs[0]->dtype != DType::kFloat32 || out->quant->per_channel())
      continue;
    Tensor* x = op->inputs[0];
    Tensor* x_q = graph.add_tensor(x->name + "_q", x->shape, out->dtype);
    x_q->quant = out->quant;
    graph.remove_op(q);
    graph.insert_before(op, "QUANTIZE", {x}, {x_q});
    graph.set_input(op, 0, x_q);
    op->outputs[0]->producer = nullptr;
    op->outputs[0] = out;
    out->producer = op;
  }
  fold_dequantize_quantize(graph);
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
