// Scalar reference: float32 -> Q quantization, per tensor and channel-wise.
#include <cmath>

#include "scalar_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

template <typename Q>
bool f32_quantize_scalar(const float* x, Q* y, size_t n, const QuantizeParams& p) {
  bool has_nan = false;
  for (size_t i = 0; i < n; ++i) {
    has_nan |= std::isnan(x[i]);
    y[i] = quantize_one<Q>(x[i], p.inv_scale, p.zero_point, p.qmin, p.qmax);
  }
  return !has_nan;
}

template <typename Q>
bool f32_quantize_channelwise_scalar(const float* x, Q* y, size_t n, const float* inv_scale, const float* zero_point,
                                     float qmin, float qmax) {
  bool has_nan = false;
  for (size_t i = 0; i < n; ++i) {
    has_nan |= std::isnan(x[i]);
    y[i] = quantize_one<Q>(x[i], inv_scale[i], zero_point[i], qmin, qmax);
  }
  return !has_nan;
}

#define INSTANTIATE(Q)                                                                   \
  template bool f32_quantize_scalar<Q>(const float*, Q*, size_t, const QuantizeParams&); \
  template bool f32_quantize_channelwise_scalar<Q>(const float*, Q*, size_t, const float*, const float*, float, float);
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace ukernels
}  // namespace circle_quant
