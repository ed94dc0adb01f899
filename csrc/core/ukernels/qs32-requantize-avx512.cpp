// AVX-512 output stage (RequantizeFn in qgemm_ukernels.h): 16 channels per vector, a masked
// column tail, bit-exact with qs32_requantize_scalar (docs/numerics.md, "Integer GEMM").
#include <immintrin.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "qgemm_ukernels.h"
#include "requantize_dispatch.h"

namespace circle_quant {
namespace ukernels {
namespace {

constexpr int32_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();

// multiply_by_quantized_multiplier (qgemm.cpp) on 16 lanes, per-lane multiplier and shift
// (shift in [-31, 30], as quantize_multiplier produces).
inline __m512i fixed_point_multiply(__m512i x, __m512i m0, __m512i shift) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i left = _mm512_max_epi32(shift, zero);
  const __m512i right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);

  // x · 2^left, saturated: a lane overflowed when shifting back does not restore it.
  const __m512i shifted = _mm512_sllv_epi32(x, left);
  const __mmask16 overflow = _mm512_cmpneq_epi32_mask(_mm512_srav_epi32(shifted, left), x);
  const __m512i saturated = _mm512_xor_si512(_mm512_srai_epi32(x, 31), _mm512_set1_epi32(kInt32Max));
  x = _mm512_mask_blend_epi32(overflow, shifted, saturated);

  // SaturatingRoundingDoublingHighMul. The runtimes' "add a nudge of ±2^30, divide by 2^31
  // truncating" equals floor((x·m0 + 2^30) / 2^31) for either sign of the product, which is one
  // 64-bit add and a shift here. vpmuldq multiplies the even int32 lanes; the odd ones are moved
  // down first. Bits 31..62 of each sum are the result: even lanes shift them down, odd lanes
  // shift them up into the high half.
  const __m512i nudge = _mm512_set1_epi64(int64_t{1} << 30);
  const __m512i even = _mm512_add_epi64(_mm512_mul_epi32(x, m0), nudge);
  const __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m0, 32)), nudge);
  __m512i high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
  // The one product that does not fit: INT32_MIN · INT32_MIN saturates to INT32_MAX.
  const __m512i min = _mm512_set1_epi32(kInt32Min);
  const __mmask16 both_min = _mm512_cmpeq_epi32_mask(x, min) & _mm512_cmpeq_epi32_mask(m0, min);
  high = _mm512_mask_mov_epi32(high, both_min, _mm512_set1_epi32(kInt32Max));

  // RoundingDivideByPOT: arithmetic shift, plus one where the remainder passes the threshold
  // (half, or just above half for negative values: ties away from zero).
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
  const __m512i remainder = _mm512_and_si512(high, mask);
  const __m512i threshold = _mm512_sub_epi32(_mm512_srai_epi32(mask, 1), _mm512_srai_epi32(high, 31));
  const __m512i q = _mm512_srav_epi32(high, right);
  return _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(remainder, threshold), q, one);
}

template <typename Q>
inline void store(Q* y, __m512i v, __mmask16 mask) {
  if constexpr (sizeof(Q) == 1) {
    _mm_mask_storeu_epi8(y, mask, _mm512_cvtepi32_epi8(v));
  } else {
    _mm256_mask_storeu_epi16(y, mask, _mm512_cvtepi32_epi16(v));
  }
}

// Everything of one channel vector that does not depend on the row.
struct Channels {
  __m512i term, zb;  // channel_term, weight zero points (when row sums are used)
  __mmask16 mask;
};

inline __m512i total(const int32_t* acc, const Channels& c, const int32_t* row_sum, size_t i) {
  __m512i t = _mm512_add_epi32(_mm512_maskz_loadu_epi32(c.mask, acc), c.term);
  if (row_sum != nullptr) {
    t = _mm512_sub_epi32(t, _mm512_mullo_epi32(c.zb, _mm512_set1_epi32(row_sum[i])));
  }
  return t;
}

// The vector code RequantizeDispatch (requantize_dispatch.h) runs per output type and mode.
struct Stage {
  template <typename Q, RequantMode kMode>
  static void quantized(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                        const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, Q* out,
                        size_t out_stride) {
    const __m512i zp = _mm512_set1_epi32(stage.zero_point);
    for (size_t j = 0; j < cols; j += 16) {
      Channels c;
      c.mask = cols - j >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << (cols - j)) - 1);
      c.term = _mm512_maskz_loadu_epi32(c.mask, channel_term + j);
      c.zb = row_sum != nullptr ? _mm512_maskz_loadu_epi32(c.mask, zb + j) : _mm512_setzero_si512();
      if constexpr (kMode == RequantMode::kFloat) {
        // clamp(nearbyint(x) + zp, qmin, qmax) == nearbyint(clamp(x, qmin - zp, qmax - zp)) + zp:
        // the bounds are integers (exact in float) and rounding is monotonic and keeps integers.
        // Clamping first also keeps the conversion in range.
        const __m512 m = _mm512_maskz_loadu_ps(c.mask, stage.multiplier + n0 + j);
        const __m512 lo = _mm512_set1_ps(static_cast<float>(stage.qmin - stage.zero_point));
        const __m512 hi = _mm512_set1_ps(static_cast<float>(stage.qmax - stage.zero_point));
        for (size_t i = 0; i < rows; ++i) {
          const __m512i t = total(acc + i * acc_stride + j, c, row_sum, i);
          __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(t), m);
          x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
          const __m512i q =
              _mm512_add_epi32(_mm512_cvt_roundps_epi32(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
          store(out + i * out_stride + j, q, c.mask);
        }
      } else {
        const __m512i m0 = _mm512_maskz_loadu_epi32(c.mask, stage.fixed_multiplier + n0 + j);
        const __m512i shift = _mm512_maskz_loadu_epi32(c.mask, stage.fixed_shift + n0 + j);
        // clamp(v + zp, qmin, qmax) as clamp(v, qmin - zp, qmax - zp) + zp: no int32 overflow.
        const __m512i lo = _mm512_set1_epi32(stage.qmin - stage.zero_point);
        const __m512i hi = _mm512_set1_epi32(stage.qmax - stage.zero_point);
        for (size_t i = 0; i < rows; ++i) {
          const __m512i t = total(acc + i * acc_stride + j, c, row_sum, i);
          const __m512i v = _mm512_min_epi32(_mm512_max_epi32(fixed_point_multiply(t, m0, shift), lo), hi);
          store(out + i * out_stride + j, _mm512_add_epi32(v, zp), c.mask);
        }
      }
    }
  }

  static void to_float(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                       const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, float* out,
                       size_t out_stride) {
    const __m512 lo = _mm512_set1_ps(stage.fmin), hi = _mm512_set1_ps(stage.fmax);
    for (size_t j = 0; j < cols; j += 16) {
      Channels c;
      c.mask = cols - j >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << (cols - j)) - 1);
      c.term = _mm512_maskz_loadu_epi32(c.mask, channel_term + j);
      c.zb = row_sum != nullptr ? _mm512_maskz_loadu_epi32(c.mask, zb + j) : _mm512_setzero_si512();
      const __m512 m = _mm512_maskz_loadu_ps(c.mask, stage.multiplier + n0 + j);
      for (size_t i = 0; i < rows; ++i) {
        const __m512i t = total(acc + i * acc_stride + j, c, row_sum, i);
        __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(t), m);
        // Operand order as in the scalar reference's comparisons (max_ps returns its second
        // operand on equality): -0 results compare the same way.
        y = _mm512_min_ps(_mm512_max_ps(y, lo), hi);
        _mm512_mask_storeu_ps(out + i * out_stride + j, c.mask, y);
      }
    }
  }
};

}  // namespace

void qs32_requantize_avx512(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride,
                            const int32_t* channel_term, const int32_t* zb, const int32_t* row_sum,
                            const OutputStage& stage, size_t n0, void* out, size_t out_stride) {
  RequantizeDispatch<Stage>::run(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out, out_stride);
}

}  // namespace ukernels
}  // namespace circle_quant
