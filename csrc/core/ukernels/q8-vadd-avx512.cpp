// AVX-512 fused residual add (ResidualAddFn in qgemm_ukernels.h): float family, 16 lanes with a
// masked tail, bit-exact with q8_vadd_scalar; the fixed-point family runs the scalar code.
#include <immintrin.h>

#include "avx512_common.h"
#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

template <typename Q>
void add_float(size_t rows, size_t cols, Q* out, size_t out_stride, const Q* other, size_t other_stride,
               const ResidualAdd& p) {
  const __m512 zy = _mm512_set1_ps(static_cast<float>(p.layer_zero_point));
  const __m512 zr = _mm512_set1_ps(static_cast<float>(p.other_zero_point));
  const __m512 sy = _mm512_set1_ps(p.layer_scale), sr = _mm512_set1_ps(p.other_scale);
  const __m512 inv = _mm512_set1_ps(p.inv_output_scale);
  // clamp(nearbyint(x) + zo, qmin, qmax) == nearbyint(clamp(x, qmin - zo, qmax - zo)) + zo (the
  // bounds are integers, rounding is monotonic), as in the GEMM output stage.
  const __m512 lo = _mm512_set1_ps(static_cast<float>(p.qmin - p.output_zero_point));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(p.qmax - p.output_zero_point));
  const __m512i zo = _mm512_set1_epi32(p.output_zero_point);
  for (size_t i = 0; i < rows; ++i) {
    Q* y = out + i * out_stride;
    const Q* r = other + i * other_stride;
    for (size_t j = 0; j < cols; j += 16) {
      const __mmask16 mask = cols - j >= 16 ? __mmask16{0xFFFF} : avx512::tail_mask(cols - j);
      const __m512 a = _mm512_mul_ps(_mm512_sub_ps(avx512::load_q_as_float(y + j, mask), zy), sy);
      const __m512 b = _mm512_mul_ps(_mm512_sub_ps(avx512::load_q_as_float(r + j, mask), zr), sr);
      __m512 x = _mm512_mul_ps(_mm512_add_ps(a, b), inv);
      x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
      const __m512i q =
          _mm512_add_epi32(_mm512_cvt_roundps_epi32(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zo);
      avx512::store_q(y + j, q, mask);
    }
  }
}

template <typename Q>
void add_typed(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
               const ResidualAdd& p) {
  add_float(rows, cols, static_cast<Q*>(out), out_stride, static_cast<const Q*>(other), other_stride, p);
}

}  // namespace

void q8_vadd_avx512(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
                    OutputType type, RequantMode mode, const ResidualAdd& add) {
  if (mode != RequantMode::kFloat) {
    return q8_vadd_scalar(rows, cols, out, out_stride, other, other_stride, type, mode, add);
  }
  switch (type) {
    case OutputType::kUint8: return add_typed<uint8_t>(rows, cols, out, out_stride, other, other_stride, add);
    case OutputType::kInt8: return add_typed<int8_t>(rows, cols, out, out_stride, other, other_stride, add);
    case OutputType::kInt16: return add_typed<int16_t>(rows, cols, out, out_stride, other, other_stride, add);
    case OutputType::kFloat: return;
  }
}

}  // namespace ukernels
}  // namespace circle_quant
