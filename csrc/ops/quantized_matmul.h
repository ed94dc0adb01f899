// quantized_matmul: quantize(dequantize(input) @ dequantize(other)) with both operands 8-bit
// activations (attention's Q·Kᵀ and P·V), on the integer GEMM: other is packed as the GEMM's B on
// every call, the products accumulate exactly in int32 and are requantized once
// (docs/numerics.md, "Integer GEMM"; docs/kernels.md, "quantized_matmul").
#pragma once

#include "common.h"

namespace torch_circle {

// Argument checks and the output [..., M, N] in output_dtype; the Meta kernel. input is
// [..., M, K]; other is [..., K, N] with input's leading dimensions, or [K, N] (shared by all).
at::Tensor quantized_matmul_allocate(const at::Tensor& input, double input_scale, int64_t input_zero_point,
                                     const at::Tensor& other, double other_scale, int64_t other_zero_point,
                                     double output_scale, int64_t output_zero_point, at::ScalarType output_dtype,
                                     c10::string_view requant);

}  // namespace torch_circle
