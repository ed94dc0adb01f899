// Quantized conv2d ops: the shape / dtype logic shared by the Meta kernels and the CPU kernels.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace torch_circle {

// Checks the arguments and returns empty tensors of the plan's shapes.
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_prepack_allocate(
    const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    int64_t groups, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype, double output_scale,
    int64_t output_zero_point, at::ScalarType output_dtype, c10::optional<double> activation_min,
    c10::optional<double> activation_max, c10::string_view requant);

// Checks the shapes and dtypes and returns the (channels_last) output tensor.
at::Tensor quantized_conv2d_allocate(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& params,
                                     const at::Tensor& multiplier, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                     at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                     at::ScalarType output_dtype);

}  // namespace torch_circle
