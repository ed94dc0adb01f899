// AVX2 row sums (RowSumFn in qgemm_ukernels.h): vpsadbw on 32 bytes, the row's last K mod 32
// bytes as the 32 that end it with the ones already summed masked off; rows under 32 bytes go to
// the scalar row (SSE2).
#include <immintrin.h>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

// 32 bytes read from kLastBytesMask + r keep the last r of 32 (r in [1, 31]).
alignas(64) constexpr uint8_t kLastBytesMask[64] = {
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

// Per-row partial sums (four 64-bit lanes, each under 2^32) of one row of k ≥ 32 bytes.
template <bool kSigned>
inline __m256i row_partials(const uint8_t* row, size_t k, __m256i keep) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80)), zero = _mm256_setzero_si256();
  const auto load = [&](const uint8_t* p) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return kSigned ? _mm256_xor_si256(v, flip) : v;
  };
  __m256i sums = zero;
  size_t kk = 0;
  for (; kk + 32 <= k; kk += 32) sums = _mm256_add_epi64(sums, _mm256_sad_epu8(load(row + kk), zero));
  if (kk < k) sums = _mm256_add_epi64(sums, _mm256_sad_epu8(_mm256_and_si256(load(row + k - 32), keep), zero));
  return sums;
}

template <bool kSigned>
void row_sums(size_t rows, size_t k, const uint8_t* a, size_t a_stride, int32_t* row_sum) {
  const __m256i keep = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLastBytesMask + k % 32));
  const int32_t correction = kSigned ? 128 * static_cast<int32_t>(k) : 0;
  size_t i = 0;
  // Four rows at a time share one horizontal reduction: rows 1 and 3 move to the high halves of
  // the lanes (the sums stay under 2^32), so each 64-bit total holds two rows' 32-bit sums.
  for (; i + 4 <= rows; i += 4) {
    const uint8_t* row = a + i * a_stride;
    const __m256i s01 = _mm256_add_epi64(row_partials<kSigned>(row, k, keep),
                                         _mm256_slli_epi64(row_partials<kSigned>(row + a_stride, k, keep), 32));
    const __m256i s23 = _mm256_add_epi64(row_partials<kSigned>(row + 2 * a_stride, k, keep),
                                         _mm256_slli_epi64(row_partials<kSigned>(row + 3 * a_stride, k, keep), 32));
    // Per 128-bit lane: (s01 pair, s23 pair), then the two lanes added.
    const __m256i pairs = _mm256_add_epi64(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
    const __m128i sums = _mm_add_epi64(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row_sum + i), _mm_sub_epi32(sums, _mm_set1_epi32(correction)));
  }
  for (; i < rows; ++i) {
    const __m256i sums = row_partials<kSigned>(a + i * a_stride, k, keep);
    const __m128i half = _mm_add_epi64(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
    row_sum[i] = _mm_cvtsi128_si32(_mm_add_epi64(half, _mm_unpackhi_epi64(half, half))) - correction;
  }
}

}  // namespace

void q8_rowsum_avx2(size_t rows, size_t k, const uint8_t* a, size_t a_stride, bool a_signed, int32_t* row_sum) {
  if (k < 32) return q8_rowsum_scalar(rows, k, a, a_stride, a_signed, row_sum);
  if (a_signed) return row_sums<true>(rows, k, a, a_stride, row_sum);
  row_sums<false>(rows, k, a, a_stride, row_sum);
}

}  // namespace ukernels
}  // namespace circle_quant
