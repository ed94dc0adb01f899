// AVX-512: min and max of a float32 buffer; 4 independent accumulator pairs hide latency.
#include <limits>

#include "avx512_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

MinMax f32_minmax_avx512(const float* x, size_t n) {
  const float inf = std::numeric_limits<float>::infinity();
  __m512 mn[4], mx[4];
  for (int k = 0; k < 4; ++k) {
    mn[k] = _mm512_set1_ps(inf);
    mx[k] = _mm512_set1_ps(-inf);
  }
  // min_ps(a, b) returns b when either is NaN; with the accumulator as b, NaN lanes are skipped.
  __mmask16 nan = 0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      const __m512 v = _mm512_loadu_ps(x + i + 16 * k);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      mn[k] = _mm512_min_ps(v, mn[k]);
      mx[k] = _mm512_max_ps(v, mx[k]);
    }
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : avx512::tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    nan |= _mm512_mask_cmp_ps_mask(m, v, v, _CMP_UNORD_Q);
    mn[0] = _mm512_mask_min_ps(mn[0], m, v, mn[0]);
    mx[0] = _mm512_mask_max_ps(mx[0], m, v, mx[0]);
  }
  const __m512 vmin = _mm512_min_ps(_mm512_min_ps(mn[0], mn[1]), _mm512_min_ps(mn[2], mn[3]));
  const __m512 vmax = _mm512_max_ps(_mm512_max_ps(mx[0], mx[1]), _mm512_max_ps(mx[2], mx[3]));
  return MinMax{_mm512_reduce_min_ps(vmin), _mm512_reduce_max_ps(vmax), nan != 0};
}

}  // namespace ukernels
}  // namespace circle_quant
