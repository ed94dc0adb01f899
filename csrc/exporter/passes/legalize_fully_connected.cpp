// FULLY_CONNECTED forms that Circle runtimes get wrong, rewritten into forms they run:
//   - an input of rank > 2 becomes RESHAPE [-1, in] → FULLY_CONNECTED → RESHAPE back
//     (onert 0.1.0 returns the wrong output shape for keep_num_dims);
//   - uint8 weights with per-channel parameters (ONE's convention) become a 1x1 CONV_2D on
//     [rows, 1, 1, in] (onert 0.1.0 applies channel 0's parameters to every channel of a
//     FULLY_CONNECTED; its CONV_2D is right, and TFLite has no uint8 per-channel FC at all).
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {
namespace {

Tensor* reshaped(Graph& graph, const Op* anchor, Tensor* x, std::vector<int64_t> shape, const std::string& suffix) {
  Tensor* out = graph.add_tensor(x->name + suffix, shape, x->dtype);
  out->quant = x->quant;  // a per-channel weight keeps its output-channel axis 0
  Op* op = graph.insert_before(anchor, "RESHAPE", {x}, {out});
  op->attrs["shape"] = shape;
  return out;
}

}  // namespace

void legalize_fully_connected(Graph& graph) {
  for (Op* fc : graph.live_ops()) {
    if (fc->type != "FULLY_CONNECTED") continue;
    Tensor* x = fc->inputs[0];
    Tensor* w = fc->inputs[1];
    Tensor* y = fc->outputs[0];
    int64_t in = w->shape[1], out_features = w->shape[0];
    bool per_channel_uint8 = w->dtype == DType::kUInt8 && w->quant && w->quant->per_channel();
    if (x->rank() <= 2 && !per_channel_uint8) continue;

    int64_t rows = 1;
    for (int64_t d = 0; d + 1 < x->rank(); ++d) rows = (rows < 0 || x->shape[d] < 0) ? -1 : rows * x->shape[d];
    std::vector<int64_t> flat_out{rows, out_features};
    Tensor* y_flat;
    if (per_channel_uint8) {
      Tensor* x4 = reshaped(graph, fc, x, {rows, 1, 1, in}, "_rows");
      Tensor* w4 = reshaped(graph, fc, w, {out_features, 1, 1, in}, "_ohwi");
      Tensor* y4 = graph.add_tensor(y->name + "_conv", {rows, 1, 1, out_features}, y->dtype);
      y4->quant = y->quant;
      Op* conv = graph.insert_before(fc, "CONV_2D", {x4, w4, fc->inputs.size() > 2 ? fc->inputs[2] : nullptr}, {y4});
      conv->attrs = {{"stride", std::vector<int64_t>{1, 1}},
                     {"dilation", std::vector<int64_t>{1, 1}},
                     {"padding", std::string("VALID")}};
      if (fc->has("fused_activation")) conv->attrs["fused_activation"] = fc->attrs.at("fused_activation");
      graph.remove_op(fc);
      y_flat = y4;
    } else {
      Tensor* x2 = reshaped(graph, fc, x, {rows, in}, "_rows");
      graph.set_input(fc, 0, x2);
      fc->attrs["keep_num_dims"] = int64_t{0};
      Tensor* y2 = graph.add_tensor(y->name + "_rows", flat_out, y->dtype);
      y2->quant = y->quant;
      fc->outputs[0] = y2;
      y2->producer = fc;
      y->producer = nullptr;
      y_flat = y2;
    }
    Op* back = graph.insert_after(y_flat->producer, "RESHAPE", {y_flat}, {y});
    back->attrs["shape"] = y->shape;
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
