// Quantize / dequantize ops: each *_allocate() checks every argument that does not depend on
// tensor data (naming the op and argument at fault) and returns the uninitialised output on the
// input's device. It is the Meta kernel, and the first step of each CPU kernel.
#pragma once

#include "common.h"

namespace torch_circle {

at::Tensor quantize_per_tensor_allocate(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                        int64_t quant_max, at::ScalarType dtype);
at::Tensor dequantize_per_tensor_allocate(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                          int64_t quant_max, at::ScalarType dtype,
                                          c10::optional<at::ScalarType> out_dtype);
at::Tensor quantize_per_channel_allocate(const at::Tensor& input, const at::Tensor& scales,
                                         const at::Tensor& zero_points, int64_t axis, int64_t quant_min,
                                         int64_t quant_max, at::ScalarType dtype);
at::Tensor dequantize_per_channel_allocate(const at::Tensor& input, const at::Tensor& scales,
                                           const c10::optional<at::Tensor>& zero_points, int64_t axis,
                                           int64_t quant_min, int64_t quant_max, at::ScalarType dtype,
                                           c10::optional<at::ScalarType> out_dtype);

}  // namespace torch_circle
