// AVX2 fused residual add (ResidualAddFn in qgemm_ukernels.h): float family, 8 lanes, columns
// past the last full vector and the fixed-point family by the scalar reference (bit-exact).
#include <immintrin.h>

#include <type_traits>

#include "avx2_common.h"
#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

// Stores 8 int32 lanes (inside Q's range) as 8 values of Q.
template <typename Q>
inline void store8_q(Q* y, __m256i v) {
  const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
  const __m128i words = _mm_packs_epi32(lo, hi);  // in order; exact for values in range
  if constexpr (sizeof(Q) == 1) {
    const __m128i bytes = std::is_signed_v<Q> ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y), bytes);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), words);
  }
}

template <typename Q>
void add_float(size_t rows, size_t cols, Q* out, size_t out_stride, const Q* other, size_t other_stride,
               RequantMode mode, const ResidualAdd& p) {
  const __m256 zy = _mm256_set1_ps(static_cast<float>(p.layer_zero_point));
  const __m256 zr = _mm256_set1_ps(static_cast<float>(p.other_zero_point));
  const __m256 sy = _mm256_set1_ps(p.layer_scale), sr = _mm256_set1_ps(p.other_scale);
  const __m256 inv = _mm256_set1_ps(p.inv_output_scale);
  // Clamp before rounding with bounds relative to the zero point, as the AVX-512 kernel.
  const __m256 lo = _mm256_set1_ps(static_cast<float>(p.qmin - p.output_zero_point));
  const __m256 hi = _mm256_set1_ps(static_cast<float>(p.qmax - p.output_zero_point));
  const __m256i zo = _mm256_set1_epi32(p.output_zero_point);
  const size_t full = cols / 8 * 8;
  for (size_t i = 0; i < rows; ++i) {
    Q* y = out + i * out_stride;
    const Q* r = other + i * other_stride;
    for (size_t j = 0; j < full; j += 8) {
      const __m256 a = _mm256_mul_ps(_mm256_sub_ps(avx2::load8_q_as_float(y + j), zy), sy);
      const __m256 b = _mm256_mul_ps(_mm256_sub_ps(avx2::load8_q_as_float(r + j), zr), sr);
      __m256 x = _mm256_mul_ps(_mm256_add_ps(a, b), inv);
      x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
      // The default MXCSR rounding (to nearest, ties to even) is nearbyint's.
      store8_q(y + j, _mm256_add_epi32(_mm256_cvtps_epi32(x), zo));
    }
  }
  if (full < cols) {
    const OutputType type = std::is_same_v<Q, uint8_t>  ? OutputType::kUint8
                            : std::is_same_v<Q, int8_t> ? OutputType::kInt8
                                                        : OutputType::kInt16;
    q8_vadd_scalar(rows, cols - full, out + full, out_stride, other + full, other_stride, type, mode, p);
  }
}

}  // namespace

void q8_vadd_avx2(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
                  OutputType type, RequantMode mode, const ResidualAdd& add) {
  if (mode != RequantMode::kFloat) {
    return q8_vadd_scalar(rows, cols, out, out_stride, other, other_stride, type, mode, add);
  }
  switch (type) {
    case OutputType::kUint8:
      return add_float(rows, cols, static_cast<uint8_t*>(out), out_stride, static_cast<const uint8_t*>(other),
                       other_stride, mode, add);
    case OutputType::kInt8:
      return add_float(rows, cols, static_cast<int8_t*>(out), out_stride, static_cast<const int8_t*>(other),
                       other_stride, mode, add);
    case OutputType::kInt16:
      return add_float(rows, cols, static_cast<int16_t*>(out), out_stride, static_cast<const int16_t*>(other),
                       other_stride, mode, add);
    case OutputType::kFloat: return;
  }
}

}  // namespace ukernels
}  // namespace circle_quant
