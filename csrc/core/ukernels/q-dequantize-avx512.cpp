// AVX-512: Q -> float32 dequantization, 16 lanes; masked tail.
#include "avx512_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

template <typename Q>
void q_dequantize_avx512(const Q* x, float* y, size_t n, const DequantizeParams& p) {
  const __m512 scale = _mm512_set1_ps(p.scale);
  const __m512 zp = _mm512_set1_ps(p.zero_point);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = avx512::load_q_as_float(x + i, 0xFFFF);
    const __m512 b = avx512::load_q_as_float(x + i + 16, 0xFFFF);
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_sub_ps(a, zp), scale));
    _mm512_storeu_ps(y + i + 16, _mm512_mul_ps(_mm512_sub_ps(b, zp), scale));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : avx512::tail_mask(n - i);
    const __m512 a = avx512::load_q_as_float(x + i, m);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_sub_ps(a, zp), scale));
  }
}

template <typename Q>
void q_dequantize_channelwise_avx512(const Q* x, float* y, size_t n, const float* scale, const float* zero_point) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : avx512::tail_mask(n - i);
    const __m512 a = avx512::load_q_as_float(x + i, m);
    const __m512 zp = _mm512_maskz_loadu_ps(m, zero_point + i);
    const __m512 s = _mm512_maskz_loadu_ps(m, scale + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_sub_ps(a, zp), s));
  }
}

#define INSTANTIATE(Q)                                                                     \
  template void q_dequantize_avx512<Q>(const Q*, float*, size_t, const DequantizeParams&); \
  template void q_dequantize_channelwise_avx512<Q>(const Q*, float*, size_t, const float*, const float*);
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace ukernels
}  // namespace circle_quant
