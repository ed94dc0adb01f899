#include "exporter/passes/constant_quantization.h"

#include "core/quantize_constants.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace torch_circle::exporter {

std::pair<int64_t, int64_t> quant_range(DType dtype) {
  switch (dtype) {
    case DType::kUInt8: return {0, 255};
    case DType::kInt8: return {-128, 127};
    case DType::kInt16: return {-32768, 32767};
    case DType::kInt32: return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    case DType::kInt64: return {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
    default: throw ExportError(fmt::format("{} is not a quantized dtype", dtype_name(dtype)));
  }
}

namespace {
// scale / zero point shaped to broadcast against a tensor of rank `rank`.
std::pair<at::Tensor, at::Tensor> broadcast_params(const QuantParams& quant, int64_t rank) {
  at::Tensor scale = at::tensor(quant.scale, at::kFloat);
  at::Tensor zero_point = at::tensor(quant.zero_point, at::kLong).to(at::kDouble);
  if (quant.per_channel()) {
    std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
    shape.at(quant.axis) = static_cast<int64_t>(quant.scale.size());
    scale = scale.reshape(shape);
    zero_point = zero_point.reshape(shape);
  } else {
    scale = scale.reshape({});
    zero_point = zero_point.reshape({});
  }
  return {scale, zero_point};
}
}  // namespace

at::Tensor quantize_constant(const at::Tensor& real, const QuantParams& quant, DType dtype) {
  auto [qmin, qmax] = quant_range(dtype);
  // The core's quantize (docs/numerics.md), channel by channel along the quantized dimension.
  at::Tensor x = real.to(at::kFloat).contiguous();
  int64_t channels = static_cast<int64_t>(quant.scale.size());
  int64_t outer = 1, inner = x.numel();
  if (quant.per_channel()) {
    outer = 1;
    for (int64_t d = 0; d < quant.axis; ++d) outer *= x.size(d);
    inner = x.numel() / std::max<int64_t>(1, outer * channels);
  }
  at::Tensor q = at::empty(x.sizes(), dtype_to_torch(dtype));
  auto run = [&](auto* out) {
    return circle_quant::quantize_per_channel(x.const_data_ptr<float>(), out, outer, channels, inner,
                                              quant.scale.data(), quant.zero_point.data(), qmin, qmax);
  };
  bool ok = false;
  switch (dtype) {
    case DType::kUInt8: ok = run(q.data_ptr<uint8_t>()); break;
    case DType::kInt8: ok = run(q.data_ptr<int8_t>()); break;
    case DType::kInt16: ok = run(q.data_ptr<int16_t>()); break;
    case DType::kInt32: ok = run(q.data_ptr<int32_t>()); break;
    default: throw ExportError(fmt::format("constants are not quantized to {}", dtype_name(dtype)));
  }
  if (!ok) throw ExportError("a constant to be quantized holds NaN");
  return q;
}

at::Tensor dequantize_constant(const at::Tensor& q, const QuantParams& quant) {
  auto [scale, zero_point] = broadcast_params(quant, q.dim());
  return ((q.to(at::kDouble) - zero_point).to(at::kFloat) * scale).contiguous();
}

QuantParams choose_constant_quant(const at::Tensor& real, DType dtype) {
  auto [qmin, qmax] = quant_range(dtype);
  double lo = std::min(0.0, real.numel() ? real.min().item<double>() : 0.0);
  double hi = std::max(0.0, real.numel() ? real.max().item<double>() : 0.0);
  QuantParams quant;
  if (dtype == DType::kInt16 || dtype == DType::kInt32 || dtype == DType::kInt64) {
    double bound = std::max(-lo, hi);
    quant.scale = {static_cast<float>(bound > 0 ? bound / static_cast<double>(qmax) : 1.0)};
    quant.zero_point = {0};
    return quant;
  }
  double scale = hi > lo ? (hi - lo) / static_cast<double>(qmax - qmin) : 1.0;
  int64_t zero_point = static_cast<int64_t>(std::nearbyint(static_cast<double>(qmin) - lo / scale));
  quant.scale = {static_cast<float>(scale)};
  quant.zero_point = {std::clamp(zero_point, qmin, qmax)};
  return quant;
}

}  // namespace torch_circle::exporter
