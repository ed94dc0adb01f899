// circle_quant::linear_prepack / quantized_linear: shared by the schema + Meta file and the CPU
// kernel file.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace torch_circle {

// Argument checks and the output tensor (input [..., K] → [..., N]); the Meta kernel.
at::Tensor quantized_linear_allocate(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& params,
                                     const at::Tensor& multiplier, at::ScalarType output_dtype);

at::Tensor quantized_linear_add_allocate(const at::Tensor& input, const at::Tensor& packed_weight,
                                         const at::Tensor& params, const at::Tensor& multiplier,
                                         at::ScalarType output_dtype, const at::Tensor& other, double other_scale,
                                         int64_t other_zero_point, double output_scale, int64_t output_zero_point,
                                         c10::optional<double> activation_min, c10::optional<double> activation_max);

}  // namespace torch_circle
