// quantized_matmul: schema, argument checks and Meta kernel (quantized_matmul.h); the CPU kernel
// is cpu/quantized_matmul_kernel.cpp.
#include "quantized_matmul.h"

namespace torch_circle {

at::Tensor quantized_matmul_allocate(const at::Tensor& input, double input_scale, int64_t input_zero_point,
                                     const at::Tensor& other, double other_scale, int64_t other_zero_point,
                                     double output_scale, int64_t output_zero_point, at::ScalarType output_dtype,
                                     c10::string_view requant) {
  const char* op = "circle_quant::quantized_matmul";
  for (const auto* t : {&input, &other}) {
    const auto dtype = t->scalar_type();
    TORCH_CHECK_TYPE(dtype == at::kByte || dtype == at::kChar, op, ": ", t == &input ? "input" : "other",
                     " must be a uint8 or int8 tensor, got ", dtype_name(dtype));
  }
  TORCH_CHECK_TYPE(output_dtype == at::kByte || output_dtype == at::kChar || output_dtype == at::kShort, op,
                   ": output_dtype must be torch.uint8, torch.int8 or torch.int16, got ", dtype_name(output_dtype));
  TORCH_CHECK_VALUE(requant == "float" || requant == "fixed_point", op,
                    ": requant must be \"float\" or \"fixed_point\", got \"",
                    std::string(requant.data(), requant.size()), "\"");
  check_same_device(op, input, "other", other);
  TORCH_CHECK_VALUE(input.dim() >= 2 && other.dim() >= 2, op,
                    ": input and other must be at least 2-D ([..., M, K] and [..., K, N]), got shapes ",
                    input.sym_sizes(), " and ", other.sym_sizes());
  const auto in_sizes = input.sym_sizes(), other_sizes = other.sym_sizes();
  TORCH_SYM_CHECK(in_sizes.back().sym_eq(other_sizes[other.dim() - 2]), op, ": input ", in_sizes, " and other ",
                  other_sizes, " do not chain (input's last dimension must equal other's second to last)");
  if (other.dim() > 2) {
    TORCH_CHECK_VALUE(other.dim() == input.dim(), op, ": other ", other_sizes,
                      " must be 2-D or have input's leading dimensions ", in_sizes, " (no broadcasting)");
    for (int64_t d = 0; d + 2 < input.dim(); ++d) {
      TORCH_SYM_CHECK(in_sizes[d].sym_eq(other_sizes[d]), op, ": other ", other_sizes,
                      " must be 2-D or have input's leading dimensions ", in_sizes, " (no broadcasting)");
    }
  }
  const auto input_range = dtype_bounds(input.scalar_type()), other_range = dtype_bounds(other.scalar_type());
  const auto output_range = dtype_bounds(output_dtype);
  check_scale(op, input_scale);
  check_zero_point(op, input_zero_point, input_range.first, input_range.second);
  check_scale(op, other_scale);
  check_zero_point(op, other_zero_point, other_range.first, other_range.second);
  check_scale(op, output_scale);
  check_zero_point(op, output_zero_point, output_range.first, output_range.second);
  auto sizes = in_sizes.vec();
  sizes.back() = other_sizes.back();
  return empty_output(sizes, input.options().dtype(output_dtype));
}

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{
  m.def(
      "quantized_matmul(Tensor input, float input_scale, int input_zero_point, Tensor other, float other_scale, "
      "int other_zero_point, float output_scale, int output_zero_point, ScalarType output_dtype, "
      "str requant=\"float\") -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(circle_quant, Meta, m)
{ m.impl("quantized_matmul", &quantized_matmul_allocate); }

}  // namespace torch_circle
