// Row sums Σk A(i, k) (RowSumFn in qgemm_ukernels.h), the reference the SIMD rows are tested
// against. Built for the baseline ISA, so on x86 it uses SSE2 (psadbw: 16 bytes per instruction)
// and elsewhere a byte loop.
#include "qgemm_ukernels.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace circle_quant {
namespace ukernels {
namespace {

#if defined(__SSE2__)
// 16 bytes read from kLastBytesMask + r keep the last r of 16 (r in [1, 15]).
alignas(32) constexpr uint8_t kLastBytesMask[32] = {0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
                                                    0,    0,    0,    0,    0,    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                                    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
#endif

}  // namespace

void q8_rowsum_scalar(size_t rows, size_t k, const uint8_t* a, size_t a_stride, bool a_signed, int32_t* row_sum) {
  // int8 bytes read as uint8 are v + 128 (the sign bit flipped), so their sum is the unsigned
  // sum minus 128 · K; sums stay ≤ K · 255, far inside int32 within kMaxGemmK.
  const uint8_t flip = a_signed ? 0x80 : 0;
  const int32_t correction = a_signed ? 128 * static_cast<int32_t>(k) : 0;
  for (size_t i = 0; i < rows; ++i) {
    const uint8_t* row = a + i * a_stride;
    size_t kk = 0;
    int32_t sum = 0;
#if defined(__SSE2__)
    // psadbw against zero: eight bytes summed into each 64-bit half.
    const __m128i flip16 = _mm_set1_epi8(static_cast<char>(flip)), zero = _mm_setzero_si128();
    __m128i sums = zero;
    for (; kk + 16 <= k; kk += 16) {
      const __m128i v = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + kk)), flip16);
      sums = _mm_add_epi64(sums, _mm_sad_epu8(v, zero));
    }
    if (kk < k && k >= 16) {
      // The last k - kk bytes, as the 16 that end the row with the ones already summed masked
      // off (a byte loop over the tail had made K = 28, an RGB 3x3 stem's patch, cost 2.5x K = 32).
      const __m128i v = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k - 16)), flip16);
      const __m128i keep = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kLastBytesMask + (k - kk)));
      sums = _mm_add_epi64(sums, _mm_sad_epu8(_mm_and_si128(v, keep), zero));
      kk = k;
    }
    sum = _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_unpackhi_epi64(sums, sums));
#endif
    for (; kk < k; ++kk) sum += static_cast<uint8_t>(row[kk] ^ flip);
    row_sum[i] = sum - correction;
  }
}

}  // namespace ukernels
}  // namespace circle_quant
