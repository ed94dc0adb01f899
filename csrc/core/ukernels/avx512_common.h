// AVX-512 helpers: move 16 lanes of int32 to and from each quantized type.
// Included only by files compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

namespace circle_quant {
namespace ukernels {
namespace avx512 {

// Stores the 16 int32 lanes of v (already inside Q's range) to y, lanes selected by mask.
template <typename Q>
inline void store_q(Q* y, __m512i v, __mmask16 mask) {
  if constexpr (sizeof(Q) == 1) {
    _mm512_mask_cvtepi32_storeu_epi8(y, mask, v);
  } else if constexpr (sizeof(Q) == 2) {
    _mm512_mask_cvtepi32_storeu_epi16(y, mask, v);
  } else {
    _mm512_mask_storeu_epi32(y, mask, v);
  }
}

template <typename Q>
inline void store_q(Q* y, __m512i v) {
  if constexpr (sizeof(Q) == 1) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), _mm512_cvtepi32_epi8(v));
  } else if constexpr (sizeof(Q) == 2) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), _mm512_cvtepi32_epi16(v));
  } else {
    _mm512_storeu_si512(y, v);
  }
}

// Stores 64 int32 lanes (four vectors, each inside Q's range) as 64 values of Q. Saturating packs
// are cheaper than four narrowing moves and harmless because the lanes are in range; the
// permutes undo the per-128-bit-lane interleaving of the packs.
template <typename Q>
inline void store64_q(Q* y, __m512i a, __m512i b, __m512i c, __m512i d) {
  if constexpr (sizeof(Q) == 1) {
    const __m512i ab = _mm512_packs_epi32(a, b);
    const __m512i cd = _mm512_packs_epi32(c, d);
    const __m512i bytes = std::is_signed_v<Q> ? _mm512_packs_epi16(ab, cd) : _mm512_packus_epi16(ab, cd);
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_si512(y, _mm512_permutexvar_epi32(order, bytes));
  } else if constexpr (sizeof(Q) == 2) {
    const __m512i order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    const __m512i ab = std::is_signed_v<Q> ? _mm512_packs_epi32(a, b) : _mm512_packus_epi32(a, b);
    const __m512i cd = std::is_signed_v<Q> ? _mm512_packs_epi32(c, d) : _mm512_packus_epi32(c, d);
    _mm512_storeu_si512(y, _mm512_permutexvar_epi64(order, ab));
    _mm512_storeu_si512(y + 32, _mm512_permutexvar_epi64(order, cd));
  } else {
    _mm512_storeu_si512(y, a);
    _mm512_storeu_si512(y + 16, b);
    _mm512_storeu_si512(y + 32, c);
    _mm512_storeu_si512(y + 48, d);
  }
}

// Loads 16 values of Q (lanes outside mask read as 0) and widens them to float.
template <typename Q>
inline __m512 load_q_as_float(const Q* x, __mmask16 mask) {
  __m512i v;
  if constexpr (std::is_same_v<Q, uint8_t>) {
    v = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, x));
  } else if constexpr (std::is_same_v<Q, int8_t>) {
    v = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, x));
  } else if constexpr (std::is_same_v<Q, uint16_t>) {
    v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, x));
  } else if constexpr (std::is_same_v<Q, int16_t>) {
    v = _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(mask, x));
  } else {
    v = _mm512_maskz_loadu_epi32(mask, x);
  }
  // cvtepi32_ps rounds to nearest like static_cast<float>, which matters only for int32.
  return _mm512_cvtepi32_ps(v);
}

inline __mmask16 tail_mask(size_t remaining) { return static_cast<__mmask16>((1u << remaining) - 1u); }

}  // namespace avx512
}  // namespace ukernels
}  // namespace circle_quant
