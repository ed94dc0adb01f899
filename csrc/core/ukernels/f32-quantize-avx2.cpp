// AVX2: float32 -> Q quantization, 8 lanes, 32 values per main-loop step; the scalar reference
// finishes the tail (fewer than 32 values) with the same numerics.
#include "avx2_common.h"
#include "scalar_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

// One vector; NaN lanes are OR-ed into *nan. 8- and 16-bit Q clamp first and add the zero point
// as an integer, int32 follows quantize_one() literally (see f32-quantize-avx512.cpp for why both
// give quantize_one()'s result). The conversion rounds ties to even (the default MXCSR mode,
// which std::nearbyint in the reference follows too).
template <typename Q>
inline __m256i quantize8(__m256 x, __m256 inv_scale, __m256 zero_point, __m256 qmin, __m256 qmax, __m256* nan) {
  *nan = _mm256_or_ps(*nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  __m256 v = _mm256_mul_ps(x, inv_scale);
  if constexpr (sizeof(Q) <= 2) {
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_sub_ps(qmin, zero_point)), _mm256_sub_ps(qmax, zero_point));
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_cvtps_epi32(zero_point));
  } else {
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_add_ps(v, zero_point);
    v = _mm256_min_ps(_mm256_max_ps(v, qmin), qmax);
    return _mm256_cvtps_epi32(v);
  }
}

}  // namespace

template <typename Q>
bool f32_quantize_avx2(const float* x, Q* y, size_t n, const QuantizeParams& p) {
  const __m256 inv = _mm256_set1_ps(p.inv_scale);
  const __m256 zp = _mm256_set1_ps(p.zero_point);
  const __m256 lo = _mm256_set1_ps(p.qmin);
  const __m256 hi = _mm256_set1_ps(p.qmax);
  __m256 nan = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = quantize8<Q>(_mm256_loadu_ps(x + i), inv, zp, lo, hi, &nan);
    const __m256i b = quantize8<Q>(_mm256_loadu_ps(x + i + 8), inv, zp, lo, hi, &nan);
    const __m256i c = quantize8<Q>(_mm256_loadu_ps(x + i + 16), inv, zp, lo, hi, &nan);
    const __m256i d = quantize8<Q>(_mm256_loadu_ps(x + i + 24), inv, zp, lo, hi, &nan);
    avx2::store32_q(y + i, a, b, c, d);
  }
  const bool tail_ok = f32_quantize_scalar(x + i, y + i, n - i, p);
  return tail_ok && _mm256_movemask_ps(nan) == 0;
}

template <typename Q>
bool f32_quantize_channelwise_avx2(const float* x, Q* y, size_t n, const float* inv_scale, const float* zero_point,
                                   float qmin, float qmax) {
  const __m256 lo = _mm256_set1_ps(qmin);
  const __m256 hi = _mm256_set1_ps(qmax);
  __m256 nan = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      const size_t j = i + 8 * k;
      q[k] = quantize8<Q>(_mm256_loadu_ps(x + j), _mm256_loadu_ps(inv_scale + j), _mm256_loadu_ps(zero_point + j), lo,
                          hi, &nan);
    }
    avx2::store32_q(y + i, q[0], q[1], q[2], q[3]);
  }
  const bool tail_ok = f32_quantize_channelwise_scalar(x + i, y + i, n - i, inv_scale + i, zero_point + i, qmin, qmax);
  return tail_ok && _mm256_movemask_ps(nan) == 0;
}

#define INSTANTIATE(Q)                                                                 \
  template bool f32_quantize_avx2<Q>(const float*, Q*, size_t, const QuantizeParams&); \
  template bool f32_quantize_channelwise_avx2<Q>(const float*, Q*, size_t, const float*, const float*, float, float);
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace ukernels
}  // namespace circle_quant
