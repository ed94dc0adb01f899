// NEON fused residual add (ResidualAddFn in qgemm_ukernels.h): float family on uint8 / int8, 8
// lanes per step; the last cols % 8, int16 and the fixed-point family by the scalar reference.
// Bit-exact with q8_vadd_scalar. Baseline Advanced SIMD: both ARM GEMM kernel sets use it.
#include <arm_neon.h>

#include <cstdint>
#include <type_traits>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

template <typename Q>
inline void widen8(const Q* x, float32x4_t* lo, float32x4_t* hi) {
  int16x8_t w;
  if constexpr (std::is_signed_v<Q>) {
    w = vmovl_s8(vld1_s8(x));
  } else {
    w = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(x)));
  }
  *lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
  *hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
}

struct Params {
  float32x4_t zy, zr, sy, sr, inv, zo, qmin, qmax;
};

// The scalar formula lane by lane: nearbyint(x) is vrndnq (ties to even); fmax / fmin are
// vmaxnm / vminnm; the result is integral and in range, so the conversion is exact.
inline int32x4_t add4(float32x4_t y, float32x4_t r, const Params& p) {
  const float32x4_t a = vmulq_f32(vsubq_f32(y, p.zy), p.sy);
  const float32x4_t b = vmulq_f32(vsubq_f32(r, p.zr), p.sr);
  float32x4_t v = vaddq_f32(vrndnq_f32(vmulq_f32(vaddq_f32(a, b), p.inv)), p.zo);
  v = vminnmq_f32(vmaxnmq_f32(v, p.qmin), p.qmax);
  return vcvtq_s32_f32(v);
}

template <typename Q>
void add_float(size_t rows, size_t cols, Q* out, size_t out_stride, const Q* other, size_t other_stride,
               const ResidualAdd& add) {
  Params p;
  p.zy = vdupq_n_f32(static_cast<float>(add.layer_zero_point));
  p.zr = vdupq_n_f32(static_cast<float>(add.other_zero_point));
  p.sy = vdupq_n_f32(add.layer_scale);
  p.sr = vdupq_n_f32(add.other_scale);
  p.inv = vdupq_n_f32(add.inv_output_scale);
  p.zo = vdupq_n_f32(static_cast<float>(add.output_zero_point));
  p.qmin = vdupq_n_f32(static_cast<float>(add.qmin));
  p.qmax = vdupq_n_f32(static_cast<float>(add.qmax));
  const size_t full = cols / 8 * 8;
  for (size_t i = 0; i < rows; ++i) {
    Q* y = out + i * out_stride;
    const Q* r = other + i * other_stride;
    for (size_t j = 0; j < full; j += 8) {
      float32x4_t y0, y1, r0, r1;
      widen8(y + j, &y0, &y1);
      widen8(r + j, &r0, &r1);
      const int16x8_t q = vcombine_s16(vmovn_s32(add4(y0, r0, p)), vmovn_s32(add4(y1, r1, p)));
      if constexpr (std::is_signed_v<Q>) {
        vst1_s8(y + j, vmovn_s16(q));
      } else {
        vst1_u8(y + j, vmovn_u16(vreinterpretq_u16_s16(q)));
      }
    }
  }
  if (full < cols) {
    const OutputType type = std::is_signed_v<Q> ? OutputType::kInt8 : OutputType::kUint8;
    q8_vadd_scalar(rows, cols - full, out + full, out_stride, other + full, other_stride, type, RequantMode::kFloat,
                   add);
  }
}

}  // namespace

void q8_vadd_neon(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
                  OutputType type, RequantMode mode, const ResidualAdd& add) {
  if (mode == RequantMode::kFloat && type == OutputType::kUint8) {
    return add_float(rows, cols, static_cast<uint8_t*>(out), out_stride, static_cast<const uint8_t*>(other),
                     other_stride, add);
  }
  if (mode == RequantMode::kFloat && type == OutputType::kInt8) {
    return add_float(rows, cols, static_cast<int8_t*>(out), out_stride, static_cast<const int8_t*>(other), other_stride,
                     add);
  }
  q8_vadd_scalar(rows, cols, out, out_stride, other, other_stride, type, mode, add);
}

}  // namespace ukernels
}  // namespace circle_quant
