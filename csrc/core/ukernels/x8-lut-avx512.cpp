// AVX-512 (BW): y[i] = table[x[i]] over bytes, 64 per step, the tail masked. Without VBMI there
// is no byte permute across a register, so the table is read as 128 words: vpermi2w picks word
// x >> 1 from each half (64 words, two registers), bit 6 of x >> 1 chooses the half, and a
// variable shift by 8 · (x & 1) brings the wanted byte down before vpmovwb keeps the low bytes.
#include "avx512_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

struct WordTable {
  __m512i w[4];  // words 0-31, 32-63, 64-95, 96-127 (bytes 0-63, ..., 192-255)
};

inline __m256i lookup32(__m256i bytes, const WordTable& t) {
  const __m512i x = _mm512_cvtepu8_epi16(bytes);
  const __m512i word_index = _mm512_srli_epi16(x, 1);
  const __m512i low = _mm512_permutex2var_epi16(t.w[0], word_index, t.w[1]);
  const __m512i high = _mm512_permutex2var_epi16(t.w[2], word_index, t.w[3]);
  const __mmask32 upper = _mm512_test_epi16_mask(word_index, _mm512_set1_epi16(64));
  const __m512i word = _mm512_mask_blend_epi16(upper, low, high);
  const __m512i shift = _mm512_slli_epi16(_mm512_and_si512(x, _mm512_set1_epi16(1)), 3);
  return _mm512_cvtepi16_epi8(_mm512_srlv_epi16(word, shift));
}

inline __m512i lookup64(__m512i x, const WordTable& t) {
  const __m256i lo = lookup32(_mm512_castsi512_si256(x), t);
  const __m256i hi = lookup32(_mm512_extracti64x4_epi64(x, 1), t);
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace

void x8_lut_avx512(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table) {
  WordTable t;
  for (int r = 0; r < 4; ++r) t.w[r] = _mm512_loadu_si512(table + 64 * r);
  size_t i = 0;
  for (; i + 64 <= n; i += 64) _mm512_storeu_si512(y + i, lookup64(_mm512_loadu_si512(x + i), t));
  if (i < n) {
    const __mmask64 mask = (uint64_t{1} << (n - i)) - 1;  // n - i < 64
    _mm512_mask_storeu_epi8(y + i, mask, lookup64(_mm512_maskz_loadu_epi8(mask, x + i), t));
  }
}

}  // namespace ukernels
}  // namespace circle_quant
