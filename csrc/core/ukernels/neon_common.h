// Shared by the AArch64 GEMM microkernels (qs8-gemm-*-neon.cpp, qs8-gemm-*-neondot.cpp).
#pragma once

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {

// The output stage on baseline NEON (RequantizeFn), bit-exact with qs32_requantize_scalar.
void qs32_requantize_neon(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                          const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, void* out,
                          size_t out_stride);

}  // namespace ukernels
}  // namespace circle_quant
