#include "quantize_constants.h"

#include "quantize.h"

#include <cmath>

namespace circle_quant {

int64_t quantize_bias(const float* bias, size_t n, float input_scale, const float* weight_scale,
                      size_t num_weight_scales, double* q) {
  for (size_t c = 0; c < n; ++c) {
    const float scale = bias_scale(input_scale, weight_scale[num_weight_scales == 1 ? 0 : c]);
    const float inv = 1.0f / scale;  // == float(1.0 / double(scale)): scale is a float
    if (!(scale > 0) || !std::isfinite(inv)) return static_cast<int64_t>(c);
    q[c] = static_cast<double>(std::nearbyint(bias[c] * inv));
  }
  return -1;
}

template <typename Q>
bool quantize_per_channel(const float* x, Q* y, int64_t outer, int64_t channels, int64_t inner, const float* scale,
                          const int64_t* zero_point, int64_t qmin, int64_t qmax) {
  for (int64_t c = 0; c < channels; ++c) {
    const QuantizeParams p = make_quantize_params(scale[c], zero_point[c], qmin, qmax);
    for (int64_t o = 0; o < outer; ++o) {
      const int64_t offset = (o * channels + c) * inner;
      if (!quantize<Q>(x + offset, y + offset, static_cast<size_t>(inner), p)) return false;
    }
  }
  return true;
}

template bool quantize_per_channel<uint8_t>(const float*, uint8_t*, int64_t, int64_t, int64_t, const float*,
                                            const int64_t*, int64_t, int64_t);
template bool quantize_per_channel<int8_t>(const float*, int8_t*, int64_t, int64_t, int64_t, const float*,
                                           const int64_t*, int64_t, int64_t);
template bool quantize_per_channel<int16_t>(const float*, int16_t*, int64_t, int64_t, int64_t, const float*,
                                            const int64_t*, int64_t, int64_t);
template bool quantize_per_channel<int32_t>(const float*, int32_t*, int64_t, int64_t, int64_t, const float*,
                                            const int64_t*, int64_t, int64_t);

}  // namespace circle_quant
