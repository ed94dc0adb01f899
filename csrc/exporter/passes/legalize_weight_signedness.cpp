// Quantizers may pair uint8 activations with int8 weights (torchao's X86InductorQuantizer:
// asymmetric uint8 activations, symmetric int8 per-channel weights, which x86's u8 x s8 dot
// products want). Circle and TFLite integer kernels take activations and weights of one 8-bit
// type: onert computes a uint8 conv with int8 weights silently wrong, LiteRT refuses it.
//
// For Circle files (uint8 is ONE's convention) the weights are moved to uint8 exactly:
// real = s * (w - zp) = s * ((w + 128) - (zp + 128)), so w + 128 with zero point zp + 128 per
// channel is the same weight, bit for bit. For TFLite files, whose convention is int8
// activations, the op is refused with the node and the way out (CircleQuantizer("int8")).
// Runs after fold_quantization, when the weights are integer constants.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <fmt/format.h>

namespace torch_circle::exporter {
namespace {

bool has_weight_slot(const Op& op) {
  return op.type == "torch.conv2d" || op.type == "torch.conv_transpose2d" || op.type == "FULLY_CONNECTED";
}

bool is_8bit(DType dtype) { return dtype == DType::kUInt8 || dtype == DType::kInt8; }

}  // namespace

void legalize_weight_signedness(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    if (op->dead || !has_weight_slot(*op) || op->inputs.size() < 2) continue;
    const Tensor* x = op->inputs[0];
    Tensor* w = op->inputs[1];
    if (!x || !w || !x->quant || !w->quant || !is_8bit(x->dtype) || !is_8bit(w->dtype) || x->dtype == w->dtype)
      continue;
    std::string what = fmt::format("{} ({}) reads {} activations with {} weights", op->type, op->origin,
                                   dtype_name(x->dtype), dtype_name(w->dtype));
    if (graph.format == FileFormat::kTflite)
      throw ExportError(what +
                        ", which TFLite's integer kernels do not run (they take int8 activations "
                        "with int8 weights); quantize with CircleQuantizer(\"int8\") for format='tflite', "
                        "or export format='circle'");
    if (x->dtype != DType::kUInt8)
      throw ExportError(what +
                        "; only uint8 activations with int8 weights can be made uniform (quantize "
                        "with CircleQuantizer(\"uint8\") for Circle)");
    if (!w->is_constant())
      throw ExportError(what + " computed at run time; only constant weights can be moved to uint8");
    Tensor* shifted = graph.add_constant(w->name + "_uint8", (w->data.to(at::kShort) + 128).to(at::kByte));
    shifted->quant = w->quant;
    for (int64_t& zp : shifted->quant->zero_point) zp += 128;
    graph.set_input(op, 1, shifted);
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
