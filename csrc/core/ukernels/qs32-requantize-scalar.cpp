// Scalar reference output stage: int32 totals → uint8 / int8 / int16 / float, per
// docs/numerics.md ("Integer GEMM"). SIMD output stages must match it bit for bit.
#include <algorithm>
#include <cmath>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

template <typename Q>
void store_quantized(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                     const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, Q* out,
                     size_t out_stride) {
  for (size_t i = 0; i < rows; ++i) {
    for (size_t j = 0; j < cols; ++j) {
      const int32_t total = qgemm_total(acc[i * acc_stride + j], channel_term[j], zb, row_sum, i, j);
      const size_t c = n0 + j;
      int32_t q;
      if (stage.mode == RequantMode::kFloat) {
        float v =
            std::nearbyint(static_cast<float>(total) * stage.multiplier[c]) + static_cast<float>(stage.zero_point);
        v = std::fmin(std::fmax(v, static_cast<float>(stage.qmin)), static_cast<float>(stage.qmax));
        q = static_cast<int32_t>(v);
      } else {
        const int64_t v = static_cast<int64_t>(multiply_by_quantized_multiplier(total, stage.fixed_multiplier[c],
                                                                                stage.fixed_shift[c])) +
                          stage.zero_point;
        q = static_cast<int32_t>(std::clamp<int64_t>(v, stage.qmin, stage.qmax));
      }
      out[i * out_stride + j] = static_cast<Q>(q);
    }
  }
}

void store_float(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                 const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, float* out,
                 size_t out_stride) {
  for (size_t i = 0; i < rows; ++i) {
    for (size_t j = 0; j < cols; ++j) {
      const int32_t total = qgemm_total(acc[i * acc_stride + j], channel_term[j], zb, row_sum, i, j);
      float y = static_cast<float>(total) * stage.multiplier[n0 + j];
      // Written as comparisons (what SIMD max / min compute, operands in this order) rather
      // than fmax / fmin, whose choice between -0 and +0 is left to the library.
      y = y > stage.fmin ? y : stage.fmin;
      y = y < stage.fmax ? y : stage.fmax;
      out[i * out_stride + j] = y;
    }
  }
}

}  // namespace

void qs32_requantize_scalar(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride,
                            const int32_t* channel_term, const int32_t* zb, const int32_t* row_sum,
                            const OutputStage& stage, size_t n0, void* out, size_t out_stride) {
  switch (stage.type) {
    case OutputType::kUint8:
      return store_quantized(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0,
                             static_cast<uint8_t*>(out), out_stride);
    case OutputType::kInt8:
      return store_quantized(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0,
                             static_cast<int8_t*>(out), out_stride);
    case OutputType::kInt16:
      return store_quantized(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0,
                             static_cast<int16_t*>(out), out_stride);
    case OutputType::kFloat:
      return store_float(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, static_cast<float*>(out),
                         out_stride);
  }
}

}  // namespace ukernels
}  // namespace circle_quant
