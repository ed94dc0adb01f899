// Fake quantization for QAT: quantize then dequantize in float, with a straight-through gradient
// (the incoming gradient passes where the value was not clamped, zero elsewhere). The public ops
// have an Autograd kernel (autograd/); the *_cachemask ops return the mask it saves.
#pragma once

#include <tuple>

#include "common.h"

namespace torch_circle {

std::tuple<at::Tensor, at::Tensor> fake_quantize_per_tensor_cachemask_allocate(const at::Tensor& input, double scale,
                                                                               int64_t zero_point, int64_t quant_min,
                                                                               int64_t quant_max);
std::tuple<at::Tensor, at::Tensor> fake_quantize_per_channel_cachemask_allocate(const at::Tensor& input,
                                                                                const at::Tensor& scales,
                                                                                const at::Tensor& zero_points,
                                                                                int64_t axis, int64_t quant_min,
                                                                                int64_t quant_max);

}  // namespace torch_circle
