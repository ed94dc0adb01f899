// AVX2: Q -> float32 dequantization, 8 lanes; the scalar reference finishes the tail.
#include "avx2_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

template <typename Q>
void q_dequantize_avx2(const Q* x, float* y, size_t n, const DequantizeParams& p) {
  const __m256 scale = _mm256_set1_ps(p.scale);
  const __m256 zp = _mm256_set1_ps(p.zero_point);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = avx2::load8_q_as_float(x + i);
    const __m256 b = avx2::load8_q_as_float(x + i + 8);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_sub_ps(a, zp), scale));
    _mm256_storeu_ps(y + i + 8, _mm256_mul_ps(_mm256_sub_ps(b, zp), scale));
  }
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_sub_ps(avx2::load8_q_as_float(x + i), zp), scale));
  }
  q_dequantize_scalar(x + i, y + i, n - i, p);
}

template <typename Q>
void q_dequantize_channelwise_avx2(const Q* x, float* y, size_t n, const float* scale, const float* zero_point) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a = avx2::load8_q_as_float(x + i);
    const __m256 d = _mm256_sub_ps(a, _mm256_loadu_ps(zero_point + i));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(d, _mm256_loadu_ps(scale + i)));
  }
  q_dequantize_channelwise_scalar(x + i, y + i, n - i, scale + i, zero_point + i);
}

#define INSTANTIATE(Q)                                                                   \
  template void q_dequantize_avx2<Q>(const Q*, float*, size_t, const DequantizeParams&); \
  template void q_dequantize_channelwise_avx2<Q>(const Q*, float*, size_t, const float*, const float*);
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace ukernels
}  // namespace circle_quant
