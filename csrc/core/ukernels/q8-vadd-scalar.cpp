// Scalar reference of the fused residual add (ResidualAdd in qgemm.h, docs/numerics.md "Fused
// residual add"): every other q8-vadd kernel matches it bit for bit.
#include <algorithm>
#include <cmath>
#include <limits>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

// dequantize → add → quantize in float32, as the PT2E reference graph computes it; the
// activation is the clamp [qmin, qmax] (quantize is monotonic, so clamping after it is the same).
template <typename Q>
void add_float(size_t rows, size_t cols, Q* out, size_t out_stride, const Q* other, size_t other_stride,
               const ResidualAdd& p) {
  const float zy = static_cast<float>(p.layer_zero_point), zr = static_cast<float>(p.other_zero_point);
  const float zo = static_cast<float>(p.output_zero_point);
  const float qmin = static_cast<float>(p.qmin), qmax = static_cast<float>(p.qmax);
  for (size_t i = 0; i < rows; ++i) {
    Q* y = out + i * out_stride;
    const Q* r = other + i * other_stride;
    for (size_t j = 0; j < cols; ++j) {
      const float a = (static_cast<float>(y[j]) - zy) * p.layer_scale;
      const float b = (static_cast<float>(r[j]) - zr) * p.other_scale;
      float v = std::nearbyint((a + b) * p.inv_output_scale) + zo;
      v = std::fmin(std::fmax(v, qmin), qmax);
      y[j] = static_cast<Q>(static_cast<int32_t>(v));
    }
  }
}

int32_t saturate_shift_left(int32_t x, int32_t shift) {
  const int64_t v = static_cast<int64_t>(x) * (int64_t{1} << shift);
  return static_cast<int32_t>(
      std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

// TFLite's quantized ADD (reference_ops::AddElementwise): both inputs moved left by left_shift
// bits and rescaled to a common scale, summed, rescaled to the output.
template <typename Q>
void add_fixed_point(size_t rows, size_t cols, Q* out, size_t out_stride, const Q* other, size_t other_stride,
                     const ResidualAdd& p) {
  for (size_t i = 0; i < rows; ++i) {
    Q* y = out + i * out_stride;
    const Q* r = other + i * other_stride;
    for (size_t j = 0; j < cols; ++j) {
      const int32_t a = multiply_by_quantized_multiplier(
          saturate_shift_left(static_cast<int32_t>(y[j]) - p.layer_zero_point, p.left_shift), p.layer_multiplier,
          p.layer_shift);
      const int32_t b = multiply_by_quantized_multiplier(
          saturate_shift_left(static_cast<int32_t>(r[j]) - p.other_zero_point, p.left_shift), p.other_multiplier,
          p.other_shift);
      const int64_t v =
          static_cast<int64_t>(multiply_by_quantized_multiplier(a + b, p.output_multiplier, p.output_shift)) +
          p.output_zero_point;
      y[j] = static_cast<Q>(std::clamp<int64_t>(v, p.qmin, p.qmax));
    }
  }
}

template <typename Q>
void add_typed(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
               RequantMode mode, const ResidualAdd& p) {
  Q* y = static_cast<Q*>(out);
  const Q* r = static_cast<const Q*>(other);
  if (mode == RequantMode::kFloat) {
    add_float(rows, cols, y, out_stride, r, other_stride, p);
  } else {
    add_fixed_point(rows, cols, y, out_stride, r, other_stride, p);
  }
}

}  // namespace

void q8_vadd_scalar(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
                    OutputType type, RequantMode mode, const ResidualAdd& add) {
  switch (type) {
    case OutputType::kUint8: return add_typed<uint8_t>(rows, cols, out, out_stride, other, other_stride, mode, add);
    case OutputType::kInt8: return add_typed<int8_t>(rows, cols, out, out_stride, other, other_stride, mode, add);
    case OutputType::kInt16: return add_typed<int16_t>(rows, cols, out, out_stride, other, other_stride, mode, add);
    case OutputType::kFloat: return;  // make_residual_add() rejects float outputs
  }
}

}  // namespace ukernels
}  // namespace circle_quant
