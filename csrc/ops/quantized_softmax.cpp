// quantized_softmax: schema, argument checks and Meta kernel (quantized_softmax.h).
#include "quantized_softmax.h"

namespace torch_circle {

at::Tensor quantized_softmax_allocate(const at::Tensor& input, double input_scale, int64_t input_zero_point,
                                      double output_scale, int64_t output_zero_point, int64_t quant_min,
                                      int64_t quant_max, at::ScalarType dtype) {
  const char* op = "circle_quant::quantized_softmax";
  const auto in = input.scalar_type();
  TORCH_CHECK_TYPE(in == at::kByte || in == at::kChar, op, ": input must be uint8 or int8, got ", dtype_name(in));
  TORCH_CHECK_TYPE(dtype == at::kByte || dtype == at::kChar, op, ": output dtype must be uint8 or int8, got ",
                   dtype_name(dtype));
  TORCH_CHECK_VALUE(input.dim() >= 1, op, ": input must have at least one dimension (softmax runs over the last)");
  const int64_t in_min = in == at::kByte ? 0 : -128, in_max = in == at::kByte ? 255 : 127;
  check_scale(op, input_scale);
  check_zero_point(op, input_zero_point, in_min, in_max);
  check_quant_range(op, quant_min, quant_max, dtype);
  check_scale(op, output_scale);
  check_zero_point(op, output_zero_point, quant_min, quant_max);
  return empty_output(input.sym_sizes(), input.options().dtype(dtype));
}

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{
  m.def(
      "quantized_softmax(Tensor input, float input_scale, int input_zero_point, float output_scale, "
      "int output_zero_point, int quant_min, int quant_max, ScalarType dtype) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(circle_quant, Meta, m)
{ m.impl("quantized_softmax", &quantized_softmax_allocate); }

}  // namespace torch_circle
