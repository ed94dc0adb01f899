// AVX2: y[i] = table[x[i]] over bytes, 32 per step. vpshufb looks up 16 entries; each 16-entry
// slice h of the table serves the lanes whose value is in [16h, 16h + 16): their index
// x - 16h + 0x70 (unsigned saturating) keeps bit 7 clear and the low nibble x & 15, every other
// lane's has bit 7 set and vpshufb returns 0 there, so the 16 slices are OR-ed together.
#include <immintrin.h>

#include <cstring>

#include "ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

inline __m256i lookup32(__m256i x, const __m256i* slices) {
  const __m256i bias = _mm256_set1_epi8(0x70), step = _mm256_set1_epi8(16);
  __m256i offset = x, result = _mm256_setzero_si256();
  for (int h = 0; h < 16; ++h) {
    result = _mm256_or_si256(result, _mm256_shuffle_epi8(slices[h], _mm256_adds_epu8(offset, bias)));
    offset = _mm256_sub_epi8(offset, step);
  }
  return result;
}

}  // namespace

void x8_lut_avx2(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table) {
  __m256i slices[16];  // slice h in both 128-bit lanes (vpshufb looks up within each lane)
  for (int h = 0; h < 16; ++h) {
    slices[h] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * h)));
  }
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), lookup32(v, slices));
  }
  if (i < n) {  // the tail through a buffer: no access past the caller's arrays
    uint8_t buffer[32] = {};
    std::memcpy(buffer, x + i, n - i);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(buffer));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(buffer), lookup32(v, slices));
    std::memcpy(y + i, buffer, n - i);
  }
}

}  // namespace ukernels
}  // namespace circle_quant
