// quantized_softmax: quantize(softmax(dequantize(input)), dim=-1) on 8-bit integers, the PT2E
// reference graph's dequantize → softmax → quantize in one pass per row. exp() of a dequantized
// byte minus the row's maximum depends only on their byte distance, so it is read from one
// 256-entry table built per call (docs/numerics.md, "Quantized softmax").
#pragma once

#include "common.h"

namespace torch_circle {

// Argument checks and the output (the input's shape, `dtype`); the Meta kernel.
at::Tensor quantized_softmax_allocate(const at::Tensor& input, double input_scale, int64_t input_zero_point,
                                      double output_scale, int64_t output_zero_point, int64_t quant_min,
                                      int64_t quant_max, at::ScalarType dtype);

}  // namespace torch_circle
