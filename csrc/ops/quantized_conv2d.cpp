// Quantized conv2d: schemas, argument checks and Meta kernels. conv2d_prepack packs the weights
// once (qconv_plan.h); quantized_conv2d runs the layer on uint8 / int8 NHWC activations (a
// channels_last tensor; contiguous NCHW is converted) and returns a channels_last tensor;
// quantized_conv2d_add also adds a residual `other` in the same pass (fused_add.h).
#include "quantized_conv2d.h"

#include "common.h"
#include "fused_add.h"
#include "qconv_plan.h"
#include "qgemm_plan.h"

namespace torch_circle {

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_prepack_allocate(
    const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    int64_t groups, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype, double output_scale,
    int64_t output_zero_point, at::ScalarType output_dtype, c10::optional<double> activation_min,
    c10::optional<double> activation_max, c10::string_view requant) {
  const char* op = "circle_quant::conv2d_prepack";
  check_conv_args(op, stride, padding, dilation, groups);
  return empty_conv_plan(op, weight, stride, dilation, groups, weight.options());
}

at::Tensor quantized_conv2d_allocate(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& params,
                                     const at::Tensor& multiplier, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                     at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                     at::ScalarType output_dtype) {
  const char* op = "circle_quant::quantized_conv2d";
  const int64_t out_channels = conv_plan_channels(op, packed_weight, params, multiplier);
  TORCH_CHECK_TYPE(output_dtype == at::kByte || output_dtype == at::kChar || output_dtype == at::kShort ||
                       output_dtype == at::kFloat,
                   op, ": output_dtype must be torch.uint8, torch.int8, torch.int16 or torch.float32, got ",
                   dtype_name(output_dtype));
  check_plan_device(op, input, packed_weight, params, multiplier);
  // Checks groups >= 1 (with the other arguments) before anything divides by it.
  const auto sizes = conv2d_output_sizes(op, input, out_channels, kernel_size, stride, padding, dilation, groups);
  TORCH_CHECK_VALUE(out_channels % groups == 0, op, ": the prepacked weight's ", out_channels,
                    " output channels are not divisible by groups (", groups, ")");
  return empty_output(sizes, input.options().dtype(output_dtype), at::MemoryFormat::ChannelsLast);
}

at::Tensor quantized_conv2d_add_allocate(const at::Tensor& input, const at::Tensor& packed_weight,
                                         const at::Tensor& params, const at::Tensor& multiplier,
                                         at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                         at::IntArrayRef dilation, int64_t groups, at::ScalarType output_dtype,
                                         const at::Tensor& other, double other_scale, int64_t other_zero_point,
                                         double output_scale, int64_t output_zero_point,
                                         c10::optional<double> activation_min, c10::optional<double> activation_max) {
  auto out = quantized_conv2d_allocate(input, packed_weight, params, multiplier, kernel_size, stride, padding, dilation,
                                       groups, output_dtype);
  check_fused_add_operand("circle_quant::quantized_conv2d_add", out, other);
  return out;
}

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{
  m.def(
      "conv2d_prepack(Tensor weight, Tensor weight_scale, Tensor weight_zero_point, Tensor? bias, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups, float input_scale, "
      "int input_zero_point, ScalarType input_dtype, float output_scale, int output_zero_point, "
      "ScalarType output_dtype, float? activation_min=None, float? activation_max=None, "
      "str requant=\"float\") -> (Tensor, Tensor, Tensor)");
  m.def(
      "quantized_conv2d(Tensor input, Tensor packed_weight, Tensor params, Tensor multiplier, "
      "int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, int groups, "
      "ScalarType output_dtype) -> Tensor");
  m.def(
      "quantized_conv2d_add(Tensor input, Tensor packed_weight, Tensor params, Tensor multiplier, "
      "int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, int groups, "
      "ScalarType output_dtype, Tensor other, float other_scale, int other_zero_point, "
      "float output_scale, int output_zero_point, float? activation_min=None, "
      "float? activation_max=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(circle_quant, Meta, m)
{
  m.impl("conv2d_prepack", &conv2d_prepack_allocate);
  m.impl("quantized_conv2d", &quantized_conv2d_allocate);
  m.impl("quantized_conv2d_add", &quantized_conv2d_add_allocate);
}

// Inference ops, not differentiable (as the linear ones).
TORCH_LIBRARY_IMPL(circle_quant, Autograd, m)
{
  m.impl("conv2d_prepack", torch::CppFunction::makeFallthrough());
  m.impl("quantized_conv2d", torch::CppFunction::makeFallthrough());
  m.impl("quantized_conv2d_add", torch::CppFunction::makeFallthrough());
}

}  // namespace torch_circle
