// Scalar fake quantization (quantize + dequantize in one pass) with the straight-through mask.
// Only a scalar version exists: QAT's cost is dominated by the float training step around it.
#include <cmath>

#include "../quantize.h"
#include "scalar_common.h"

namespace circle_quant {
namespace {

inline float fake_quantize_one(float x, float inv_scale, float zero_point, float qmin, float qmax,
                               float scale, uint8_t* mask) {
  const float v = std::nearbyint(x * inv_scale) + zero_point;
  if (mask != nullptr) *mask = (v >= qmin) & (v <= qmax);
  const float q = std::fmin(std::fmax(v, qmin), qmax);
  return (q - zero_point) * scale;
}

}  // namespace

bool fake_quantize(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p,
                   float scale) {
  bool has_nan = false;
  for (size_t i = 0; i < n; ++i) {
    has_nan |= std::isnan(x[i]);
    y[i] = fake_quantize_one(x[i], p.inv_scale, p.zero_point, p.qmin, p.qmax, scale,
                             mask != nullptr ? mask + i : nullptr);
  }
  return !has_nan;
}

bool fake_quantize_channelwise(const float* x, float* y, uint8_t* mask, size_t n,
                               const float* inv_scale, const float* zero_point, const float* scale,
                               float qmin, float qmax) {
  bool has_nan = false;
  for (size_t i = 0; i < n; ++i) {
    has_nan |= std::isnan(x[i]);
    y[i] = fake_quantize_one(x[i], inv_scale[i], zero_point[i], qmin, qmax, scale[i],
                             mask != nullptr ? mask + i : nullptr);
  }
  return !has_nan;
}

}  // namespace circle_quant
