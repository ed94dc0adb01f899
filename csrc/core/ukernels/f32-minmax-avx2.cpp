// AVX2: min and max of a float32 buffer; the scalar reference finishes the tail.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

MinMax f32_minmax_avx2(const float* x, size_t n) {
  const float inf = std::numeric_limits<float>::infinity();
  __m256 mn[4], mx[4];
  for (int k = 0; k < 4; ++k) {
    mn[k] = _mm256_set1_ps(inf);
    mx[k] = _mm256_set1_ps(-inf);
  }
  // min_ps(a, b) returns b when either is NaN; with the accumulator as b, NaN lanes are skipped.
  __m256 nan = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * k);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      mn[k] = _mm256_min_ps(v, mn[k]);
      mx[k] = _mm256_max_ps(v, mx[k]);
    }
  }
  const __m256 vmin = _mm256_min_ps(_mm256_min_ps(mn[0], mn[1]), _mm256_min_ps(mn[2], mn[3]));
  const __m256 vmax = _mm256_max_ps(_mm256_max_ps(mx[0], mx[1]), _mm256_max_ps(mx[2], mx[3]));
  alignas(32) float lo[8], hi[8];
  _mm256_store_ps(lo, vmin);
  _mm256_store_ps(hi, vmax);
  MinMax r = f32_minmax_scalar(x + i, n - i);
  for (int k = 0; k < 8; ++k) {
    r.min = std::min(r.min, lo[k]);
    r.max = std::max(r.max, hi[k]);
  }
  r.has_nan |= _mm256_movemask_ps(nan) != 0;
  return r;
}

}  // namespace ukernels
}  // namespace circle_quant
