// Scalar reference: Q -> float32 dequantization, per tensor and channel-wise.
#include "scalar_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

template <typename Q>
void q_dequantize_scalar(const Q* x, float* y, size_t n, const DequantizeParams& p) {
  for (size_t i = 0; i < n; ++i) y[i] = dequantize_one(x[i], p.scale, p.zero_point);
}

template <typename Q>
void q_dequantize_channelwise_scalar(const Q* x, float* y, size_t n, const float* scale, const float* zero_point) {
  for (size_t i = 0; i < n; ++i) y[i] = dequantize_one(x[i], scale[i], zero_point[i]);
}

#define INSTANTIATE(Q)                                                                     \
  template void q_dequantize_scalar<Q>(const Q*, float*, size_t, const DequantizeParams&); \
  template void q_dequantize_channelwise_scalar<Q>(const Q*, float*, size_t, const float*, const float*);
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace ukernels
}  // namespace circle_quant
