// AVX-512: fake quantization with the straight-through mask, 16 lanes; masked tail. The same
// operation sequence as fake_quantize_one() (scalar_common.h).
#include "avx512_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

// Fake-quantizes the lanes in `lanes` of x; stores y and, if mask != nullptr, the mask bytes.
inline void fake_quantize16(const float* x, float* y, uint8_t* mask, __mmask16 lanes, __m512 inv_scale,
                            __m512 zero_point, __m512 scale, __m512 qmin, __m512 qmax, __mmask16* nan) {
  const __m512 v0 = _mm512_maskz_loadu_ps(lanes, x);
  *nan |= _mm512_mask_cmp_ps_mask(lanes, v0, v0, _CMP_UNORD_Q);
  __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(v0, inv_scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm512_add_ps(v, zero_point);
  if (mask != nullptr) {
    const __mmask16 inside = _mm512_cmp_ps_mask(v, qmin, _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, qmax, _CMP_LE_OQ);
    _mm_mask_storeu_epi8(mask, lanes, _mm_maskz_set1_epi8(inside, 1));
  }
  const __m512 q = _mm512_min_ps(_mm512_max_ps(v, qmin), qmax);
  _mm512_mask_storeu_ps(y, lanes, _mm512_mul_ps(_mm512_sub_ps(q, zero_point), scale));
}

inline __mmask16 lanes_at(size_t i, size_t n) {
  return n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : avx512::tail_mask(n - i);
}

}  // namespace

bool f32_fake_quantize_avx512(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p, float scale) {
  const __m512 inv = _mm512_set1_ps(p.inv_scale), zp = _mm512_set1_ps(p.zero_point);
  const __m512 s = _mm512_set1_ps(scale), lo = _mm512_set1_ps(p.qmin), hi = _mm512_set1_ps(p.qmax);
  __mmask16 nan = 0;
  for (size_t i = 0; i < n; i += 16) {
    fake_quantize16(x + i, y + i, mask != nullptr ? mask + i : nullptr, lanes_at(i, n), inv, zp, s, lo, hi, &nan);
  }
  return nan == 0;
}

bool f32_fake_quantize_channelwise_avx512(const float* x, float* y, uint8_t* mask, size_t n, const float* inv_scale,
                                          const float* zero_point, const float* scale, float qmin, float qmax) {
  const __m512 lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
  __mmask16 nan = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = lanes_at(i, n);
    fake_quantize16(x + i, y + i, mask != nullptr ? mask + i : nullptr, lanes,
                    _mm512_maskz_loadu_ps(lanes, inv_scale + i), _mm512_maskz_loadu_ps(lanes, zero_point + i),
                    _mm512_maskz_loadu_ps(lanes, scale + i), lo, hi, &nan);
  }
  return nan == 0;
}

}  // namespace ukernels
}  // namespace circle_quant
