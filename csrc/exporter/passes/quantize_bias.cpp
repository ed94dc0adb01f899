// The bias of an integer conv / fully connected op is added to the int32 accumulator, so it is
// stored as integers at scale s_in * s_w[c] with zero point 0: int32, or int64 when the
// activations are int16 (ONE's a16w8 convention). A float bias is quantized here; an integer
// bias from the graph is kept when its scales already agree, else requantized.
#include "core/quantize_constants.h"
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace torch_circle::exporter {
namespace {

bool close(float a, float b) { return std::fabs(a - b) <= 1e-6f * std::max(std::fabs(a), std::fabs(b)); }

}  // namespace

void quantize_bias(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    bool has_bias = op->type == "torch.conv2d" || op->type == "torch.conv_transpose2d" || op->type == "FULLY_CONNECTED";
    if (!has_bias || !op->outputs[0]->is_quantized()) continue;
    Tensor* input = op->inputs[0];
    Tensor* weight = op->inputs[1];
    // Integer convs always get a bias: runtimes reject CONV_2D without one, and a fully
    // connected op may become a 1x1 CONV_2D (legalize_fully_connected).
    if (op->inputs.size() < 3) op->inputs.resize(3, nullptr);
    if (!op->inputs[2]) {
      int64_t channels = op->type == "torch.conv_transpose2d" ? weight->shape[1] : weight->shape[0];
      graph.set_input(op, 2,
                      graph.add_constant(op->outputs[0]->name + "_zero_bias", at::zeros({channels}, at::kFloat)));
    }
    Tensor* bias = op->inputs[2];
    if (!bias->is_constant())
      throw ExportError(fmt::format("{} ({}): the bias of a quantized op must be a constant", op->type, op->origin));
    if (!input->quant || !weight->quant)
      throw ExportError(
          fmt::format("{} ({}): quantized output with unquantized input or weight", op->type, op->origin));

    QuantParams expected;
    const QuantParams& wq = *weight->quant;
    for (float ws : wq.scale) expected.scale.push_back(circle_quant::bias_scale(input->quant->scale[0], ws));
    expected.zero_point.assign(expected.scale.size(), 0);
    expected.axis = 0;
    DType dtype = input->dtype == DType::kInt16 ? DType::kInt64 : DType::kInt32;

    if (bias->is_quantized() && bias->quant->scale.size() == expected.scale.size()) {
      bool same = true;
      for (size_t c = 0; c < expected.scale.size(); ++c)
        same &= close(bias->quant->scale[c], expected.scale[c]) && bias->quant->zero_point[c] == 0;
      if (same) {
        if (bias->dtype != dtype) {
          Tensor* widened =
              graph.add_constant(bias->name + "_" + dtype_name(dtype), bias->data.to(dtype_to_torch(dtype)));
          widened->quant = bias->quant;
          graph.set_input(op, 2, widened);
        }
        continue;
      }
    }
    at::Tensor real = bias->is_quantized() ? dequantize_constant(bias->data, *bias->quant) : bias->data.to(at::kFloat);
    real = real.contiguous();
    if (wq.scale.size() != 1 && static_cast<int64_t>(wq.scale.size()) != real.numel())
      throw ExportError(fmt::format("{} ({}): {} weight scales for a bias of {} values", op->type, op->origin,
                                    wq.scale.size(), real.numel()));
    // The same integers the prepack ops compute (circle_quant::quantize_bias), clamped to `dtype`.
    std::vector<double> q(static_cast<size_t>(real.numel()));
    int64_t bad = circle_quant::quantize_bias(real.const_data_ptr<float>(), q.size(), input->quant->scale[0],
                                              wq.scale.data(), wq.scale.size(), q.data());
    if (bad >= 0)
      throw ExportError(fmt::format("{} ({}): the bias scale input_scale * weight_scale[{}] = {} underflows float32",
                                    op->type, op->origin, bad, expected.scale[wq.scale.size() == 1 ? 0 : bad]));
    auto [qmin, qmax] = quant_range(dtype);
    at::Tensor values = at::empty({real.numel()}, at::kLong);
    int64_t* v = values.data_ptr<int64_t>();
    for (size_t c = 0; c < q.size(); ++c) {
      if (std::isnan(q[c])) throw ExportError(fmt::format("{} ({}): bias[{}] is NaN", op->type, op->origin, c));
      v[c] = static_cast<int64_t>(std::clamp(q[c], static_cast<double>(qmin), static_cast<double>(qmax)));
    }
    Tensor* quantized =
        graph.add_constant(bias->name + "_quantized", values.reshape(real.sizes()).to(dtype_to_torch(dtype)));
    quantized->quant = expected;
    graph.set_input(op, 2, quantized);
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
