// Scalar reference: fake quantization (quantize + dequantize in one pass) with the
// straight-through mask.
#include <cmath>

#include "scalar_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

bool f32_fake_quantize_scalar(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p, float scale) {
  bool has_nan = false;
  for (size_t i = 0; i < n; ++i) {
    has_nan |= std::isnan(x[i]);
    y[i] =
        fake_quantize_one(x[i], p.inv_scale, p.zero_point, p.qmin, p.qmax, scale, mask != nullptr ? mask + i : nullptr);
  }
  return !has_nan;
}

bool f32_fake_quantize_channelwise_scalar(const float* x, float* y, uint8_t* mask, size_t n, const float* inv_scale,
                                          const float* zero_point, const float* scale, float qmin, float qmax) {
  bool has_nan = false;
  for (size_t i = 0; i < n; ++i) {
    has_nan |= std::isnan(x[i]);
    y[i] = fake_quantize_one(x[i], inv_scale[i], zero_point[i], qmin, qmax, scale[i],
                             mask != nullptr ? mask + i : nullptr);
  }
  return !has_nan;
}

}  // namespace ukernels
}  // namespace circle_quant
