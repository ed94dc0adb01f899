// The output-type and mode switch the SIMD output stages (qs32-requantize-<isa>.cpp) share: the
// ISA's file provides the vector code, this header the one mapping from OutputStage to it.
// Header-only: each ISA's file instantiates it with its own flags.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {

// Impl provides
//   template <typename Q, RequantMode kMode> static void quantized(rows, cols, acc, acc_stride,
//       channel_term, zb, row_sum, stage, n0, Q* out, out_stride);
//   static void to_float(... the same ..., float* out, out_stride);
// with RequantizeFn's contract (qgemm_ukernels.h).
template <typename Impl>
struct RequantizeDispatch {
  template <typename Q>
  static void quantized(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                        const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, void* out,
                        size_t out_stride) {
    if (stage.mode == RequantMode::kFloat) {
      Impl::template quantized<Q, RequantMode::kFloat>(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage,
                                                       n0, static_cast<Q*>(out), out_stride);
    } else {
      Impl::template quantized<Q, RequantMode::kFixedPoint>(rows, cols, acc, acc_stride, channel_term, zb, row_sum,
                                                            stage, n0, static_cast<Q*>(out), out_stride);
    }
  }

  static void run(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                  const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, void* out,
                  size_t out_stride) {
    switch (stage.type) {
      case OutputType::kUint8:
        return quantized<uint8_t>(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out, out_stride);
      case OutputType::kInt8:
        return quantized<int8_t>(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out, out_stride);
      case OutputType::kInt16:
        return quantized<int16_t>(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out, out_stride);
      case OutputType::kFloat:
        return Impl::to_float(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0,
                              static_cast<float*>(out), out_stride);
    }
  }
};

}  // namespace ukernels
}  // namespace circle_quant
