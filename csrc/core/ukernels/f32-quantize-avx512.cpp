// AVX-512: float32 -> Q quantization, 16 lanes, 4 vectors packed into one store per main-loop
// step; masked tail.
#include "avx512_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

struct Consts {
  __m512 qmin, qmax;
};

// One vector, NaN lanes recorded in *nan. For 8- and 16-bit Q it clamps x * inv_scale to
// [qmin - zp, qmax - zp] (integers, exact in float), rounds with the conversion (ties to even)
// and adds the zero point as an integer: the same result as quantize_one()'s
// round -> add -> clamp, because rounding is monotonic and fixes integers, in fewer operations.
// int32 bounds need not be exact in float, so int32 follows quantize_one() literally.
template <typename Q>
inline __m512i quantize16(__m512 x, __m512 inv_scale, __m512 zero_point, const Consts& c, __mmask16* nan) {
  *nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  __m512 v = _mm512_mul_ps(x, inv_scale);
  if constexpr (sizeof(Q) <= 2) {
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_sub_ps(c.qmin, zero_point)), _mm512_sub_ps(c.qmax, zero_point));
    return _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                            _mm512_cvtps_epi32(zero_point));
  } else {
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_add_ps(v, zero_point);
    v = _mm512_min_ps(_mm512_max_ps(v, c.qmin), c.qmax);
    return _mm512_cvtps_epi32(v);
  }
}

}  // namespace

template <typename Q>
bool f32_quantize_avx512(const float* x, Q* y, size_t n, const QuantizeParams& p) {
  const __m512 inv = _mm512_set1_ps(p.inv_scale);
  const __m512 zp = _mm512_set1_ps(p.zero_point);
  const Consts c{_mm512_set1_ps(p.qmin), _mm512_set1_ps(p.qmax)};
  __mmask16 nan = 0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i q0 = quantize16<Q>(_mm512_loadu_ps(x + i), inv, zp, c, &nan);
    const __m512i q1 = quantize16<Q>(_mm512_loadu_ps(x + i + 16), inv, zp, c, &nan);
    const __m512i q2 = quantize16<Q>(_mm512_loadu_ps(x + i + 32), inv, zp, c, &nan);
    const __m512i q3 = quantize16<Q>(_mm512_loadu_ps(x + i + 48), inv, zp, c, &nan);
    avx512::store64_q(y + i, q0, q1, q2, q3);
  }
  for (; i + 16 <= n; i += 16) {
    avx512::store_q(y + i, quantize16<Q>(_mm512_loadu_ps(x + i), inv, zp, c, &nan));
  }
  if (i < n) {
    const __mmask16 m = avx512::tail_mask(n - i);
    __mmask16 tail_nan = 0;
    const __m512i q = quantize16<Q>(_mm512_maskz_loadu_ps(m, x + i), inv, zp, c, &tail_nan);
    nan |= tail_nan & m;
    avx512::store_q(y + i, q, m);
  }
  return nan == 0;
}

template <typename Q>
bool f32_quantize_channelwise_avx512(const float* x, Q* y, size_t n, const float* inv_scale, const float* zero_point,
                                     float qmin, float qmax) {
  const Consts c{_mm512_set1_ps(qmin), _mm512_set1_ps(qmax)};
  __mmask16 nan = 0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i q =
        quantize16<Q>(_mm512_loadu_ps(x + i), _mm512_loadu_ps(inv_scale + i), _mm512_loadu_ps(zero_point + i), c, &nan);
    avx512::store_q(y + i, q);
  }
  if (i < n) {
    const __mmask16 m = avx512::tail_mask(n - i);
    __mmask16 tail_nan = 0;
    const __m512i q = quantize16<Q>(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, inv_scale + i),
                                    _mm512_maskz_loadu_ps(m, zero_point + i), c, &tail_nan);
    nan |= tail_nan & m;
    avx512::store_q(y + i, q, m);
  }
  return nan == 0;
}

#define INSTANTIATE(Q)                                                                   \
  template bool f32_quantize_avx512<Q>(const float*, Q*, size_t, const QuantizeParams&); \
  template bool f32_quantize_channelwise_avx512<Q>(const float*, Q*, size_t, const float*, const float*, float, float);
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace ukernels
}  // namespace circle_quant
