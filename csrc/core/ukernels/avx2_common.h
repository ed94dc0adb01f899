// AVX2 helpers: narrow int32 lanes to each quantized type and widen them back to float.
// Included only by files compiled with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace circle_quant {
namespace ukernels {
namespace avx2 {

// Stores 32 int32 lanes (four vectors, each already inside Q's range) as 32 values of Q.
// The packs saturate, which is harmless because the lanes are in range; the permutes undo the
// per-128-bit-lane interleaving of the pack instructions.
template <typename Q>
inline void store32_q(Q* y, __m256i a, __m256i b, __m256i c, __m256i d) {
  if constexpr (sizeof(Q) == 1) {
    const __m256i ab = _mm256_packs_epi32(a, b);  // int16, lanes interleaved
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i bytes = std::is_signed_v<Q> ? _mm256_packs_epi16(ab, cd) : _mm256_packus_epi16(ab, cd);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), _mm256_permutevar8x32_epi32(bytes, order));
  } else if constexpr (sizeof(Q) == 2) {
    const __m256i ab = std::is_signed_v<Q> ? _mm256_packs_epi32(a, b) : _mm256_packus_epi32(a, b);
    const __m256i cd = std::is_signed_v<Q> ? _mm256_packs_epi32(c, d) : _mm256_packus_epi32(c, d);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), _mm256_permute4x64_epi64(ab, 0xD8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 16), _mm256_permute4x64_epi64(cd, 0xD8));
  } else {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 8), b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 16), c);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 24), d);
  }
}

// Loads 8 values of Q and widens them to float.
template <typename Q>
inline __m256 load8_q_as_float(const Q* x) {
  __m256i v;
  if constexpr (sizeof(Q) == 1) {
    int64_t bits;
    std::memcpy(&bits, x, 8);
    const __m128i b = _mm_cvtsi64_si128(bits);
    v = std::is_signed_v<Q> ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
  } else if constexpr (sizeof(Q) == 2) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
    v = std::is_signed_v<Q> ? _mm256_cvtepi16_epi32(h) : _mm256_cvtepu16_epi32(h);
  } else {
    v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  }
  return _mm256_cvtepi32_ps(v);
}

}  // namespace avx2
}  // namespace ukernels
}  // namespace circle_quant
