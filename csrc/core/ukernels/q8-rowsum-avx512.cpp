// AVX-512 row sums (RowSumFn in qgemm_ukernels.h): vpsadbw on 64 bytes, the row's last K mod 64
// bytes by a masked load (masked-off bytes are not read).
#include <immintrin.h>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

// Per-row partial sums (eight 64-bit lanes, each under 2^32) of one row.
template <bool kSigned>
inline __m512i row_partials(const uint8_t* row, size_t k, __mmask64 keep) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), zero = _mm512_setzero_si512();
  __m512i sums = zero;
  size_t kk = 0;
  for (; kk + 64 <= k; kk += 64) {
    __m512i v = _mm512_loadu_si512(row + kk);
    if (kSigned) v = _mm512_xor_si512(v, flip);
    sums = _mm512_add_epi64(sums, _mm512_sad_epu8(v, zero));
  }
  if (kk < k) {
    __m512i v = _mm512_maskz_loadu_epi8(keep, row + kk);
    if (kSigned) v = _mm512_xor_si512(v, _mm512_maskz_mov_epi8(keep, flip));  // the kept bytes
    sums = _mm512_add_epi64(sums, _mm512_sad_epu8(v, zero));
  }
  return sums;
}

template <bool kSigned>
void row_sums(size_t rows, size_t k, const uint8_t* a, size_t a_stride, int32_t* row_sum) {
  const size_t tail = k % 64;
  const __mmask64 keep = tail == 0 ? 0 : (~uint64_t{0} >> (64 - tail));
  const int32_t correction = kSigned ? 128 * static_cast<int32_t>(k) : 0;
  size_t i = 0;
  // Four rows at a time share one horizontal reduction: rows 1 and 3 move to the high halves of
  // the lanes (the sums stay under 2^32), so each 64-bit total holds two rows' 32-bit sums.
  for (; i + 4 <= rows; i += 4) {
    const uint8_t* row = a + i * a_stride;
    const __m512i s01 = _mm512_add_epi64(row_partials<kSigned>(row, k, keep),
                                         _mm512_slli_epi64(row_partials<kSigned>(row + a_stride, k, keep), 32));
    const __m512i s23 = _mm512_add_epi64(row_partials<kSigned>(row + 2 * a_stride, k, keep),
                                         _mm512_slli_epi64(row_partials<kSigned>(row + 3 * a_stride, k, keep), 32));
    // Per 128-bit lane: (s01 pair, s23 pair), then the four lanes added.
    const __m512i pairs = _mm512_add_epi64(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
    const __m256i half = _mm256_add_epi64(_mm512_castsi512_si256(pairs), _mm512_extracti64x4_epi64(pairs, 1));
    const __m128i sums = _mm_add_epi64(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row_sum + i), _mm_sub_epi32(sums, _mm_set1_epi32(correction)));
  }
  for (; i < rows; ++i) {
    row_sum[i] =
        static_cast<int32_t>(_mm512_reduce_add_epi64(row_partials<kSigned>(a + i * a_stride, k, keep))) - correction;
  }
}

}  // namespace

void q8_rowsum_avx512(size_t rows, size_t k, const uint8_t* a, size_t a_stride, bool a_signed, int32_t* row_sum) {
  if (a_signed) return row_sums<true>(rows, k, a, a_stride, row_sum);
  row_sums<false>(rows, k, a, a_stride, row_sum);
}

}  // namespace ukernels
}  // namespace circle_quant
