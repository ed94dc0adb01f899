// Quantize / dequantize: schemas, argument checks and Meta kernels. The argument order and semantics are those of
// torch.ops.quantized_decomposed, so graphs can swap one for the other (docs/numerics.md).
#include "quantize.h"

namespace torch_circle {

at::Tensor quantize_per_tensor_allocate(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                        int64_t quant_max, at::ScalarType dtype) {
  const char* op = "circle_quant::quantize_per_tensor";
  check_float_input(op, input);
  check_quant_range(op, quant_min, quant_max, dtype);
  check_scale(op, scale);
  check_zero_point(op, zero_point, quant_min, quant_max);
  return empty_like_preserve(input, dtype);
}

at::Tensor dequantize_per_tensor_allocate(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                          int64_t quant_max, at::ScalarType dtype,
                                          c10::optional<at::ScalarType> out_dtype) {
  const char* op = "circle_quant::dequantize_per_tensor";
  check_quant_range(op, quant_min, quant_max, dtype);
  check_quantized_input(op, input, dtype);
  check_scale(op, scale);
  check_zero_point(op, zero_point, quant_min, quant_max);
  return empty_like_preserve(input, out_dtype.value_or(at::kFloat));
}

at::Tensor quantize_per_channel_allocate(const at::Tensor& input, const at::Tensor& scales,
                                         const at::Tensor& zero_points, int64_t axis, int64_t quant_min,
                                         int64_t quant_max, at::ScalarType dtype) {
  const char* op = "circle_quant::quantize_per_channel";
  check_float_input(op, input);
  check_quant_range(op, quant_min, quant_max, dtype);
  axis = check_axis(op, input, axis);
  check_channel_params(op, input, axis, scales, zero_points);
  return empty_like_preserve(input, dtype);
}

at::Tensor dequantize_per_channel_allocate(const at::Tensor& input, const at::Tensor& scales,
                                           const c10::optional<at::Tensor>& zero_points, int64_t axis,
                                           int64_t quant_min, int64_t quant_max, at::ScalarType dtype,
                                           c10::optional<at::ScalarType> out_dtype) {
  const char* op = "circle_quant::dequantize_per_channel";
  check_quant_range(op, quant_min, quant_max, dtype);
  check_quantized_input(op, input, dtype);
  axis = check_axis(op, input, axis);
  check_channel_params(op, input, axis, scales, zero_points);
  return empty_like_preserve(input, out_dtype.value_or(at::kFloat));
}

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{
  m.def(
      "quantize_per_tensor(Tensor input, float scale, int zero_point, int quant_min, "
      "int quant_max, ScalarType dtype) -> Tensor");
  m.def(
      "dequantize_per_tensor(Tensor input, float scale, int zero_point, int quant_min, "
      "int quant_max, ScalarType dtype, *, ScalarType? out_dtype=None) -> Tensor");
  m.def(
      "quantize_per_channel(Tensor input, Tensor scales, Tensor zero_points, int axis, "
      "int quant_min, int quant_max, ScalarType dtype) -> Tensor");
  m.def(
      "dequantize_per_channel(Tensor input, Tensor scales, Tensor? zero_points, int axis, "
      "int quant_min, int quant_max, ScalarType dtype, *, ScalarType? out_dtype=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(circle_quant, Meta, m)
{
  m.impl("quantize_per_tensor", &quantize_per_tensor_allocate);
  m.impl("dequantize_per_tensor", &dequantize_per_tensor_allocate);
  m.impl("quantize_per_channel", &quantize_per_channel_allocate);
  m.impl("dequantize_per_channel", &dequantize_per_channel_allocate);
}

}  // namespace torch_circle
