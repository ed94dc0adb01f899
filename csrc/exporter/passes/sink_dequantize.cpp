// Propagates quantization through ops that only move data. A float layout op reading a
// DEQUANTIZE output runs on the integers instead and the DEQUANTIZE moves behind it:
//     q → DEQUANTIZE → RESHAPE → ...     becomes     q → RESHAPE → DEQUANTIZE → ...
// The moved tensor keeps the parameters (a transpose remaps a per-channel axis). This lets a
// weight transposed in the graph (addmm's mat2) fold to a quantized constant, and lets layout
// ops the quantizer did not annotate stay integer.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <set>

namespace torch_circle::exporter {

void sink_dequantize(Graph& graph) {
  static const std::set<std::string> layout_ops{"RESHAPE", "TRANSPOSE", "STRIDED_SLICE", "BROADCAST_TO"};
  for (Op* op : graph.live_ops()) {
    if (op->dead || !layout_ops.count(op->type)) continue;
    Op* dq = op->inputs[0]->producer;
    if (!dq || dq->type != "DEQUANTIZE" || op->outputs[0]->dtype != DType::kFloat32) continue;
    Tensor* q = dq->inputs[0];
    std::optional<QuantParams> quant = q->quant;
    if (quant->per_channel()) {
      if (op->type != "TRANSPOSE") continue;  // a reshape or slice can move or cut the channel axis
      quant = permute_quant(quant, op->ints("perm"));
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
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
