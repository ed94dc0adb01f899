// The residual add fused into quantized_linear_add / quantized_conv2d_add (ResidualAdd in
// core/qgemm.h): argument checks shared by the Meta and CPU kernels, and the add's parameters.
//
//   out = quantize(act(dequantize(layer(input)) + dequantize(other)), output_scale, output_zero_point)
//
// `other` has the layer output's shape and integer dtype (no broadcasting); the result has the
// same dtype. The layer's own output quantization (scale, zero point, its fused activation) is
// the plan's.
#pragma once

#include <ATen/ATen.h>

#include "core/qgemm.h"

namespace torch_circle {

// Shape / dtype / device checks of `other` against the layer's output (real or Meta). Errors
// name `op`.
void check_fused_add_operand(const char* op, const at::Tensor& layer_out, const at::Tensor& other);

// The add's arguments as the *_add ops take them.
struct FusedAddArgs {
  const at::Tensor& other;
  double other_scale;
  int64_t other_zero_point;
  double output_scale;
  int64_t output_zero_point;
  c10::optional<double> activation_min, activation_max;
};

struct FusedAdd {
  circle_quant::ResidualAdd params;
  at::Tensor other;  // `other` in the output's memory layout, kept alive for params.other
};

// Checks the arguments and builds the add's parameters after the plan's output stage (whose
// scale is `layer_scale`); `layer_out` is the allocated output, whose layout `other` is brought
// into.
FusedAdd make_fused_add(const char* op, const circle_quant::OutputStage& layer_stage, float layer_scale,
                        const at::Tensor& layer_out, const FusedAddArgs& args);

}  // namespace torch_circle
