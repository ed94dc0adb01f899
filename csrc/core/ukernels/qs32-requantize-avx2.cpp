// AVX2 output stage (RequantizeFn in qgemm_ukernels.h): 8 channels per vector, masked loads and
// a buffered store for the column tail, bit-exact with qs32_requantize_scalar
// (docs/numerics.md, "Integer GEMM"). Used by the avx2 and avxvnni GEMM kernels.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "qgemm_ukernels.h"
#include "requantize_dispatch.h"

namespace circle_quant {
namespace ukernels {
namespace {

constexpr int32_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();

// multiply_by_quantized_multiplier (qgemm.cpp) on 8 lanes, per-lane multiplier and shift (shift
// in [-31, 30], as quantize_multiplier produces). Same steps as the AVX-512 version, with
// vector compares in place of mask registers.
inline __m256i fixed_point_multiply(__m256i x, __m256i m0, __m256i shift) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i left = _mm256_max_epi32(shift, zero);
  const __m256i right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);

  // x · 2^left, saturated: a lane overflowed when shifting back does not restore it.
  const __m256i shifted = _mm256_sllv_epi32(x, left);
  const __m256i fits = _mm256_cmpeq_epi32(_mm256_srav_epi32(shifted, left), x);
  const __m256i saturated = _mm256_xor_si256(_mm256_srai_epi32(x, 31), _mm256_set1_epi32(kInt32Max));
  x = _mm256_blendv_epi8(saturated, shifted, fits);

  // SaturatingRoundingDoublingHighMul as floor((x·m0 + 2^30) / 2^31) (see the AVX-512 file).
  // Only bits 31..62 of each 64-bit sum are kept, so logical shifts do (AVX2 has no 64-bit
  // arithmetic shift).
  const __m256i nudge = _mm256_set1_epi64x(int64_t{1} << 30);
  const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(x, m0), nudge);
  const __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m0, 32)), nudge);
  __m256i high = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  const __m256i min = _mm256_set1_epi32(kInt32Min);
  const __m256i both_min = _mm256_and_si256(_mm256_cmpeq_epi32(x, min), _mm256_cmpeq_epi32(m0, min));
  high = _mm256_blendv_epi8(high, _mm256_set1_epi32(kInt32Max), both_min);

  // RoundingDivideByPOT; cmpgt's all-ones lanes are -1, so subtracting adds the rounding bit.
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
  const __m256i remainder = _mm256_and_si256(high, mask);
  const __m256i threshold = _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), _mm256_srai_epi32(high, 31));
  return _mm256_sub_epi32(_mm256_srav_epi32(high, right), _mm256_cmpgt_epi32(remainder, threshold));
}

// Stores the first n (≤ 8) lanes of v (inside Q's range: the saturating packs only narrow).
template <typename Q>
inline void store(Q* y, __m256i v, size_t n) {
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  alignas(16) Q buf[16];
  Q* dst = n == 8 ? y : buf;
  if constexpr (std::is_same_v<Q, uint8_t>) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm_packus_epi16(w, w));
  } else if constexpr (std::is_same_v<Q, int8_t>) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm_packs_epi16(w, w));
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), w);
  }
  if (n != 8) std::memcpy(y, buf, n * sizeof(Q));
}

// Everything of one channel vector that does not depend on the row.
struct Channels {
  __m256i term, zb;  // channel_term, weight zero points (when row sums are used)
  __m256i mask;      // lanes < the remaining columns (all ones in the body)
  size_t n;          // lanes to store
};

inline Channels channels(size_t cols, size_t j, const int32_t* channel_term, const int32_t* zb,
                         const int32_t* row_sum) {
  Channels c;
  c.n = cols - j >= 8 ? 8 : cols - j;
  c.mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(c.n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  c.term = _mm256_maskload_epi32(channel_term + j, c.mask);
  c.zb = row_sum != nullptr ? _mm256_maskload_epi32(zb + j, c.mask) : _mm256_setzero_si256();
  return c;
}

inline __m256i total(const int32_t* acc, const Channels& c, const int32_t* row_sum, size_t i) {
  __m256i t = _mm256_add_epi32(_mm256_maskload_epi32(acc, c.mask), c.term);
  if (row_sum != nullptr) {
    t = _mm256_sub_epi32(t, _mm256_mullo_epi32(c.zb, _mm256_set1_epi32(row_sum[i])));
  }
  return t;
}

// The vector code RequantizeDispatch (requantize_dispatch.h) runs per output type and mode.
struct Stage {
  template <typename Q, RequantMode kMode>
  static void quantized(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                        const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, Q* out,
                        size_t out_stride) {
    const __m256i zp = _mm256_set1_epi32(stage.zero_point);
    for (size_t j = 0; j < cols; j += 8) {
      const Channels c = channels(cols, j, channel_term, zb, row_sum);
      if constexpr (kMode == RequantMode::kFloat) {
        // Clamp before rounding, with the zero point moved to the bounds (exact; see the AVX-512
        // file): the same value as the reference's round, add, clamp.
        const __m256 m = _mm256_maskload_ps(stage.multiplier + n0 + j, c.mask);
        const __m256 lo = _mm256_set1_ps(static_cast<float>(stage.qmin - stage.zero_point));
        const __m256 hi = _mm256_set1_ps(static_cast<float>(stage.qmax - stage.zero_point));
        for (size_t i = 0; i < rows; ++i) {
          const __m256i t = total(acc + i * acc_stride + j, c, row_sum, i);
          __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(t), m);
          x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
          x = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          store(out + i * out_stride + j, _mm256_add_epi32(_mm256_cvttps_epi32(x), zp), c.n);
        }
      } else {
        const __m256i m0 = _mm256_maskload_epi32(stage.fixed_multiplier + n0 + j, c.mask);
        const __m256i shift = _mm256_maskload_epi32(stage.fixed_shift + n0 + j, c.mask);
        const __m256i lo = _mm256_set1_epi32(stage.qmin - stage.zero_point);
        const __m256i hi = _mm256_set1_epi32(stage.qmax - stage.zero_point);
        for (size_t i = 0; i < rows; ++i) {
          const __m256i t = total(acc + i * acc_stride + j, c, row_sum, i);
          const __m256i v = _mm256_min_epi32(_mm256_max_epi32(fixed_point_multiply(t, m0, shift), lo), hi);
          store(out + i * out_stride + j, _mm256_add_epi32(v, zp), c.n);
        }
      }
    }
  }

  static void to_float(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                       const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, float* out,
                       size_t out_stride) {
    const __m256 lo = _mm256_set1_ps(stage.fmin), hi = _mm256_set1_ps(stage.fmax);
    for (size_t j = 0; j < cols; j += 8) {
      const Channels c = channels(cols, j, channel_term, zb, row_sum);
      const __m256 m = _mm256_maskload_ps(stage.multiplier + n0 + j, c.mask);
      for (size_t i = 0; i < rows; ++i) {
        const __m256i t = total(acc + i * acc_stride + j, c, row_sum, i);
        __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(t), m);
        y = _mm256_min_ps(_mm256_max_ps(y, lo), hi);  // operand order as in the reference
        _mm256_maskstore_ps(out + i * out_stride + j, c.mask, y);
      }
    }
  }
};

}  // namespace

void qs32_requantize_avx2(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                          const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, void* out,
                          size_t out_stride) {
  RequantizeDispatch<Stage>::run(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out, out_stride);
}

}  // namespace ukernels
}  // namespace circle_quant
