// AVX2: histc-compatible binning, 8 lanes at a time, counted into InterleavedCounts
// (scalar_common.h); the scalar reference bins the tail.
#include <immintrin.h>

#include <vector>

#include "scalar_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

size_t f32_histogram_avx2(const float* x, size_t n, float lo, float hi, int64_t bins, uint32_t* counts) {
  InterleavedCounts local(bins, counts, n);
  uint32_t* const c[4] = {local.copy(0), local.copy(1), local.copy(2), local.copy(3)};
  static_assert(InterleavedCounts::kCopies == 4, "the loop below spreads over 4 copies");
  unsigned k = 0;  // the copy the next count goes to

  const __m256 vlo = _mm256_set1_ps(lo);
  const __m256 vhi = _mm256_set1_ps(hi);
  const __m256 vbins = _mm256_set1_ps(static_cast<float>(bins));
  const __m256 vrange = _mm256_set1_ps(hi - lo);
  const __m256 vlast = _mm256_set1_ps(static_cast<float>(bins - 1));
  size_t nans = 0;
  alignas(32) int32_t idx[8];
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    nans += __builtin_popcount(_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    const __m256 in = _mm256_and_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ), _mm256_cmp_ps(v, vhi, _CMP_LE_OQ));
    const __m256 t = _mm256_div_ps(_mm256_mul_ps(_mm256_sub_ps(v, vlo), vbins), vrange);
    // NaN and Inf positions go to the last bin, as in histogram_bin() (min_ps returns vlast).
    _mm256_store_si256(reinterpret_cast<__m256i*>(idx), _mm256_cvttps_epi32(_mm256_min_ps(t, vlast)));
    unsigned bits = static_cast<unsigned>(_mm256_movemask_ps(in));
    while (bits != 0) {
      const int lane = __builtin_ctz(bits);
      bits &= bits - 1;
      ++c[k++ & 3][idx[lane]];
    }
  }
  local.flush();
  return nans + f32_histogram_scalar(x + i, n - i, lo, hi, bins, counts);
}

}  // namespace ukernels
}  // namespace circle_quant
