// AVX2: one quantized softmax row, 16 elements per step in two 8-lane halves: the maximum over
// 32-byte vectors, the exps gathered from the distance table, two accumulators whose lanes are
// the scalar reference's running sums 0-7 and 8-15. The tail (n % 16) runs the reference's loop
// on those sums. Bit-exact with q8_softmax_scalar.
#include <immintrin.h>

#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

void q8_softmax_avx2(const uint8_t* x, size_t n, uint8_t flip, const float* exp_of_distance, float* p) {
  if (n == 0) return;
  const __m256i flip32 = _mm256_set1_epi8(static_cast<char>(flip));
  __m256i top32 = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    top32 =
        _mm256_max_epu8(top32, _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)), flip32));
  }
  __m128i top16 = _mm_max_epu8(_mm256_castsi256_si128(top32), _mm256_extracti128_si256(top32, 1));
  alignas(16) uint8_t bytes[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(bytes), top16);
  uint8_t top = 0;
  for (uint8_t b : bytes) top = b > top ? b : top;
  for (; i < n; ++i) top = static_cast<uint8_t>(x[i] ^ flip) > top ? static_cast<uint8_t>(x[i] ^ flip) : top;

  const __m256i top_lanes = _mm256_set1_epi32(top);
  const __m128i flip16 = _mm_set1_epi8(static_cast<char>(flip));
  __m256 sums_low = _mm256_setzero_ps(), sums_high = _mm256_setzero_ps();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m128i v = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)), flip16);
    const __m256i d_low = _mm256_sub_epi32(top_lanes, _mm256_cvtepu8_epi32(v));
    const __m256i d_high = _mm256_sub_epi32(top_lanes, _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(v, v)));
    const __m256 e_low = _mm256_i32gather_ps(exp_of_distance, d_low, 4);
    const __m256 e_high = _mm256_i32gather_ps(exp_of_distance, d_high, 4);
    _mm256_storeu_ps(p + i, e_low);
    _mm256_storeu_ps(p + i + 8, e_high);
    sums_low = _mm256_add_ps(sums_low, e_low);
    sums_high = _mm256_add_ps(sums_high, e_high);
  }
  alignas(32) float partial[16];
  _mm256_store_ps(partial, sums_low);
  _mm256_store_ps(partial + 8, sums_high);
  for (; i < n; ++i) {
    p[i] = exp_of_distance[top - static_cast<uint8_t>(x[i] ^ flip)];
    partial[i % 16] += p[i];
  }
  const float inverse_scalar = 1.f / softmax_combine_partial_sums(partial);
  const __m256 inverse = _mm256_set1_ps(inverse_scalar);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_loadu_ps(p + i), inverse));
  for (; i < n; ++i) p[i] *= inverse_scalar;
}

}  // namespace ukernels
}  // namespace circle_quant
