// AVX2: fake quantization with the straight-through mask, 8 lanes; the scalar reference finishes
// the tail. The same operation sequence as fake_quantize_one() (scalar_common.h).
#include <immintrin.h>

#include "scalar_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

inline void fake_quantize8(const float* x, float* y, uint8_t* mask, __m256 inv_scale, __m256 zero_point, __m256 scale,
                           __m256 qmin, __m256 qmax, __m256* nan) {
  const __m256 v0 = _mm256_loadu_ps(x);
  *nan = _mm256_or_ps(*nan, _mm256_cmp_ps(v0, v0, _CMP_UNORD_Q));
  __m256 v = _mm256_round_ps(_mm256_mul_ps(v0, inv_scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_add_ps(v, zero_point);
  if (mask != nullptr) {
    // All-ones lanes -> 1, packed to 8 bytes.
    const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(v, qmin, _CMP_GE_OQ), _mm256_cmp_ps(v, qmax, _CMP_LE_OQ));
    const __m256i ones = _mm256_and_si256(_mm256_castps_si256(inside), _mm256_set1_epi32(1));
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(ones), _mm256_extracti128_si256(ones, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(mask), _mm_packs_epi16(words, words));
  }
  const __m256 q = _mm256_min_ps(_mm256_max_ps(v, qmin), qmax);
  _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_sub_ps(q, zero_point), scale));
}

}  // namespace

bool f32_fake_quantize_avx2(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p, float scale) {
  const __m256 inv = _mm256_set1_ps(p.inv_scale), zp = _mm256_set1_ps(p.zero_point);
  const __m256 s = _mm256_set1_ps(scale), lo = _mm256_set1_ps(p.qmin), hi = _mm256_set1_ps(p.qmax);
  __m256 nan = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    fake_quantize8(x + i, y + i, mask != nullptr ? mask + i : nullptr, inv, zp, s, lo, hi, &nan);
  }
  const bool tail_ok = f32_fake_quantize_scalar(x + i, y + i, mask != nullptr ? mask + i : nullptr, n - i, p, scale);
  return tail_ok && _mm256_movemask_ps(nan) == 0;
}

bool f32_fake_quantize_channelwise_avx2(const float* x, float* y, uint8_t* mask, size_t n, const float* inv_scale,
                                        const float* zero_point, const float* scale, float qmin, float qmax) {
  const __m256 lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
  __m256 nan = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    fake_quantize8(x + i, y + i, mask != nullptr ? mask + i : nullptr, _mm256_loadu_ps(inv_scale + i),
                   _mm256_loadu_ps(zero_point + i), _mm256_loadu_ps(scale + i), lo, hi, &nan);
  }
  const bool tail_ok = f32_fake_quantize_channelwise_scalar(x + i, y + i, mask != nullptr ? mask + i : nullptr, n - i,
                                                            inv_scale + i, zero_point + i, scale + i, qmin, qmax);
  return tail_ok && _mm256_movemask_ps(nan) == 0;
}

}  // namespace ukernels
}  // namespace circle_quant
