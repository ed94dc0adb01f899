// onert 0.1.0's GATHER has no kernel for int64 or bool data ("Gather: unsupported input data
// type"), which models gather when they build position ids and masks from their inputs. For
// .circle files such a GATHER runs on int32: CAST in, GATHER, CAST back. Gathering only moves
// values, so this is exact for every int64 that fits in int32 (positions, counts, masks; PyTorch's
// int64 default dtype rarely holds more) and for bool. LiteRT gathers both types itself.
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {

void legalize_gather_types(Graph& graph) {
  if (graph.format != FileFormat::kCircle) return;
  for (Op* op : graph.live_ops()) {
    if (op->type != "GATHER") continue;
    Tensor* x = op->inputs[0];
    if (x->dtype != DType::kInt64 && x->dtype != DType::kBool) continue;
    Tensor* x32 = graph.add_tensor(x->name + "_i32", x->shape, DType::kInt32);
    graph.insert_before(op, "CAST", {x}, {x32})->origin = op->origin;
    graph.set_input(op, 0, x32);
    Tensor* out = op->outputs[0];
    Tensor* out32 = graph.add_tensor(out->name + "_i32", out->shape, DType::kInt32);
    op->outputs[0] = out32;
    out32->producer = op;
    out->producer = nullptr;
    graph.insert_after(op, "CAST", {out32}, {out})->origin = op->origin;
  }
}

}  // namespace torch_circle::exporter
