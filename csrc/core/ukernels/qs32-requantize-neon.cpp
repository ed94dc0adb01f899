// NEON output stage (RequantizeFn in qgemm_ukernels.h): 8 channels per step, bit-exact with
// qs32_requantize_scalar (docs/numerics.md, "Integer GEMM"), which also does the last cols % 8.
// Baseline Advanced SIMD only: used by both the neon and the neondot GEMM kernels.
#include <arm_neon.h>

#include <cstdint>
#include <type_traits>

#include "neon_common.h"

namespace circle_quant {
namespace ukernels {
namespace {

// qgemm_total on 4 lanes: acc + channel_term - zb · row_sum, wrapping like the scalar code.
inline int32x4_t total4(const int32_t* acc, const int32_t* channel_term, const int32_t* zb, bool has_row_sum,
                        int32x4_t row_sum) {
  int32x4_t t = vaddq_s32(vld1q_s32(acc), vld1q_s32(channel_term));
  if (has_row_sum) t = vmlsq_s32(t, vld1q_s32(zb), row_sum);
  return t;
}

// kFloat: nearbyint(float(t) · m) + zy, clamped in float. vcvtq_f32_s32 and vrndnq_f32 round to
// nearest even like the scalar cast and nearbyint; fmaxnm / fminnm are what fmax / fmin are.
inline int32x4_t float_requantize(int32x4_t t, float32x4_t m, float32x4_t zy, float32x4_t lo, float32x4_t hi) {
  float32x4_t v = vaddq_f32(vrndnq_f32(vmulq_f32(vcvtq_f32_s32(t), m)), zy);
  v = vminnmq_f32(vmaxnmq_f32(v, lo), hi);
  return vcvtq_s32_f32(v);  // integral and inside [qmin, qmax]: exact
}

// kFixedPoint: multiply_by_quantized_multiplier (qgemm.cpp), then + zy and the clamp.
//   sqshl saturates the left shift as the scalar code does; sqrdmulh is gemmlowp's
//   SaturatingRoundingDoublingHighMul exactly (floor((2·x·m0 + 2^31) / 2^32), INT32_MIN² →
//   INT32_MAX); srshl by a negative amount rounds ties up, so negative values first step down
//   by one to round ties away from zero (RoundingDivideByPOT).
inline int32x4_t fixed_requantize(int32x4_t t, int32x4_t m0, int32x4_t shift, int32x4_t zy, int32x4_t lo,
                                  int32x4_t hi) {
  const int32x4_t zero = vdupq_n_s32(0);
  const int32x4_t left = vmaxq_s32(shift, zero);
  const int32x4_t right = vminq_s32(shift, zero);  // ≤ 0: srshl shifts right
  int32x4_t x = vqrdmulhq_s32(vqshlq_s32(t, left), m0);
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(x, right), 31);  // -1: x < 0 and right < 0
  x = vrshlq_s32(vqaddq_s32(x, fixup), right);
  // The scalar code adds zy in int64 before clamping; saturating lands on the same bound.
  x = vqaddq_s32(x, zy);
  return vminq_s32(vmaxq_s32(x, lo), hi);
}

// Stores 8 lanes already inside Q's range.
template <typename Q>
inline void store8(Q* y, int32x4_t a, int32x4_t b) {
  const int16x8_t h = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
  if constexpr (sizeof(Q) == 1) {
    vst1_s8(reinterpret_cast<int8_t*>(y), vmovn_s16(h));  // low byte: uint8 as well
  } else {
    static_assert(std::is_same_v<Q, int16_t>);
    vst1q_s16(y, h);
  }
}

template <typename Q>
void store_quantized(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                     const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, Q* out,
                     size_t out_stride) {
  const size_t main = cols & ~size_t{7};
  const bool fixed = stage.mode == RequantMode::kFixedPoint;
  const float32x4_t fzy = vdupq_n_f32(static_cast<float>(stage.zero_point));
  const float32x4_t flo = vdupq_n_f32(static_cast<float>(stage.qmin));
  const float32x4_t fhi = vdupq_n_f32(static_cast<float>(stage.qmax));
  const int32x4_t izy = vdupq_n_s32(stage.zero_point);
  const int32x4_t ilo = vdupq_n_s32(stage.qmin);
  const int32x4_t ihi = vdupq_n_s32(stage.qmax);
  for (size_t i = 0; i < rows; ++i) {
    const int32x4_t rs = vdupq_n_s32(row_sum != nullptr ? row_sum[i] : 0);
    const int32_t* a = acc + i * acc_stride;
    Q* y = out + i * out_stride;
    const bool has_row_sum = row_sum != nullptr;
    for (size_t j = 0; j < main; j += 8) {
      const int32x4_t t0 = total4(a + j, channel_term + j, zb + j, has_row_sum, rs);
      const int32x4_t t1 = total4(a + j + 4, channel_term + j + 4, zb + j + 4, has_row_sum, rs);
      const size_t c = n0 + j;
      int32x4_t q0, q1;
      if (fixed) {
        q0 = fixed_requantize(t0, vld1q_s32(stage.fixed_multiplier + c), vld1q_s32(stage.fixed_shift + c), izy, ilo,
                              ihi);
        q1 = fixed_requantize(t1, vld1q_s32(stage.fixed_multiplier + c + 4), vld1q_s32(stage.fixed_shift + c + 4), izy,
                              ilo, ihi);
      } else {
        q0 = float_requantize(t0, vld1q_f32(stage.multiplier + c), fzy, flo, fhi);
        q1 = float_requantize(t1, vld1q_f32(stage.multiplier + c + 4), fzy, flo, fhi);
      }
      store8(y + j, q0, q1);
    }
  }
}

void store_float(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                 const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, float* out,
                 size_t out_stride) {
  const size_t main = cols & ~size_t{7};
  const float32x4_t lo = vdupq_n_f32(stage.fmin);
  const float32x4_t hi = vdupq_n_f32(stage.fmax);
  for (size_t i = 0; i < rows; ++i) {
    const int32x4_t rs = vdupq_n_s32(row_sum != nullptr ? row_sum[i] : 0);
    const int32_t* a = acc + i * acc_stride;
    float* y = out + i * out_stride;
    for (size_t j = 0; j < main; j += 4) {
      const int32x4_t t = total4(a + j, channel_term + j, zb + j, row_sum != nullptr, rs);
      const float32x4_t v = vmulq_f32(vcvtq_f32_s32(t), vld1q_f32(stage.multiplier + n0 + j));
      // Compare and select, as the scalar reference's comparisons do: fmaxnm / fminnm order -0
      // below +0, the comparisons treat them as equal, and the two pick different zeros.
      const float32x4_t above = vbslq_f32(vcgtq_f32(v, lo), v, lo);
      vst1q_f32(y + j, vbslq_f32(vcltq_f32(above, hi), above, hi));
    }
  }
}

}  // namespace

void qs32_requantize_neon(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                          const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, void* out,
                          size_t out_stride) {
  const size_t main = cols & ~size_t{7};
  switch (stage.type) {
    case OutputType::kUint8:
      store_quantized(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, static_cast<uint8_t*>(out),
                      out_stride);
      break;
    case OutputType::kInt8:
      store_quantized(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, static_cast<int8_t*>(out),
                      out_stride);
      break;
    case OutputType::kInt16:
      store_quantized(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, static_cast<int16_t*>(out),
                      out_stride);
      break;
    case OutputType::kFloat:
      store_float(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, static_cast<float*>(out),
                  out_stride);
      break;
  }
  if (main == cols) return;
  // The last cols % 8 channels of every row.
  const size_t elem = stage.type == OutputType::kFloat ? 4 : stage.type == OutputType::kInt16 ? 2 : 1;
  qs32_requantize_scalar(rows, cols - main, acc + main, acc_stride, channel_term + main,
                         zb != nullptr ? zb + main : nullptr, row_sum, stage, n0 + main,
                         static_cast<uint8_t*>(out) + main * elem, out_stride);
}

}  // namespace ukernels
}  // namespace circle_quant
