// AVX-512: histc-compatible binning. Bin indices are computed 16 at a time with the reference's
// exact float operations, and counted into InterleavedCounts (scalar_common.h).
#include <algorithm>
#include <cstring>
#include <vector>

#include "avx512_common.h"
#include "scalar_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

size_t f32_histogram_avx512(const float* x, size_t n, float lo, float hi, int64_t bins, uint32_t* counts) {
  InterleavedCounts local(bins, counts, n);
  uint32_t* const c[4] = {local.copy(0), local.copy(1), local.copy(2), local.copy(3)};
  static_assert(InterleavedCounts::kCopies == 4, "the loop below spreads over 4 copies");

  const __m512 vlo = _mm512_set1_ps(lo);
  const __m512 vhi = _mm512_set1_ps(hi);
  const __m512 vbins = _mm512_set1_ps(static_cast<float>(bins));
  const __m512 vrange = _mm512_set1_ps(hi - lo);
  const __m512 vlast = _mm512_set1_ps(static_cast<float>(bins - 1));
  size_t nans = 0;
  alignas(64) int32_t idx[16];
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : avx512::tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    nans += __builtin_popcount(_mm512_mask_cmp_ps_mask(m, v, v, _CMP_UNORD_Q));
    const __mmask16 in = _mm512_mask_cmp_ps_mask(m, v, vlo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, vhi, _CMP_LE_OQ);
    // (x - lo) * bins / (hi - lo), truncated: the reference's operations in the same order.
    const __m512 t = _mm512_div_ps(_mm512_mul_ps(_mm512_sub_ps(v, vlo), vbins), vrange);
    // min_ps returns its second operand for NaN: NaN and Inf positions go to the last bin, as in
    // histogram_bin(); truncation then gives the same index for every finite position.
    const __m512i bin = _mm512_cvttps_epi32(_mm512_min_ps(t, vlast));
    if (in == 0xFFFF) {
      // Every lane counts (the usual case): take the indices out of the register two at a time,
      // without a round trip through memory, and spread them over the 4 copies.
      const __m128i quarter[4] = {_mm512_castsi512_si128(bin), _mm512_extracti32x4_epi32(bin, 1),
                                  _mm512_extracti32x4_epi32(bin, 2), _mm512_extracti32x4_epi32(bin, 3)};
      for (const __m128i& q : quarter) {
        const uint64_t lo_pair = static_cast<uint64_t>(_mm_cvtsi128_si64(q));
        const uint64_t hi_pair = static_cast<uint64_t>(_mm_extract_epi64(q, 1));
        ++c[0][static_cast<uint32_t>(lo_pair)];
        ++c[1][lo_pair >> 32];
        ++c[2][static_cast<uint32_t>(hi_pair)];
        ++c[3][hi_pair >> 32];
      }
      continue;
    }
    // Compress the in-range lanes to the front, then count them 4 copies at a time.
    _mm512_store_si512(idx, _mm512_maskz_compress_epi32(in, bin));
    const int count = __builtin_popcount(in);
    int l = 0;
    for (; l + 4 <= count; l += 4) {
      ++c[0][idx[l]];
      ++c[1][idx[l + 1]];
      ++c[2][idx[l + 2]];
      ++c[3][idx[l + 3]];
    }
    for (; l < count; ++l) ++c[l & 3][idx[l]];
  }
  local.flush();
  return nans;
}

}  // namespace ukernels
}  // namespace circle_quant
