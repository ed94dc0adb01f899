// Quantized linear: schemas and Meta kernels (CPU kernels in cpu/quantized_linear_kernel.cpp).
//
//   linear_prepack(weight, weight_scale, weight_zero_point, bias, input_scale, input_zero_point,
//                  input_dtype, output_scale, output_zero_point, output_dtype, activation_min,
//                  activation_max, requant) -> (packed_weight, params, multiplier)
//     Packs an int8 / uint8 [N, K] weight, quantizes the bias and computes the output stage once
//     (qgemm_plan.h). Run it at model-compile time, keep the three tensors (as buffers or graph
//     constants) and pass them to every quantized_linear call.
//   quantized_linear(input, packed_weight, params, multiplier, output_dtype) -> Tensor
//     input [..., K] uint8 / int8 (the dtype the plan was packed for) → output [..., N] in
//     output_dtype (must equal the plan's: uint8, int8, int16 or float32).
//   quantized_linear_add(input, packed_weight, params, multiplier, output_dtype, other,
//                        other_scale, other_zero_point, output_scale, output_zero_point,
//                        activation_min, activation_max) -> Tensor
//     quantized_linear followed by a residual add, in one pass (fused_add.h): other has the
//     output's shape and dtype; the result is quantized with (output_scale, output_zero_point).
//
// The schemas and what each argument means: docs/kernels.md. Numerics: docs/numerics.md.
#include "quantized_linear.h"

#include "common.h"
#include "fused_add.h"
#include "qgemm_plan.h"

namespace torch_circle {

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_prepack_meta(
    const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype,
    double output_scale, int64_t output_zero_point, at::ScalarType output_dtype, c10::optional<double> activation_min,
    c10::optional<double> activation_max, c10::string_view requant) {
  const char* op = "circle_quant::linear_prepack";
  TORCH_CHECK_TYPE(weight.scalar_type() == at::kChar || weight.scalar_type() == at::kByte, op,
                   ": weight must be an int8 or uint8 tensor, got ", dtype_name(weight.scalar_type()));
  TORCH_CHECK_VALUE(weight.dim() == 2, op, ": weight must be 2-D [out_features, in_features], got shape ",
                    weight.sizes());
  const int64_t n = weight.size(0), k = weight.size(1);
  const int64_t nr = static_cast<int64_t>(circle_quant::kGemmNr);
  const auto options = weight.options();
  // make_gemm_plan()'s shape: the blocks, then the active ISA's prepacked B.
  const int64_t kp = circle_quant::packed_k(k);
  const size_t prepacked_bytes = core_call(op, [&] {
    return circle_quant::prepacked_b_bytes(circle_quant::prepacked_b_layout(circle_quant::active_isa()), n, k);
  });
  return {at::empty({(n + nr - 1) / nr * nr + prepacked_rows(prepacked_bytes, kp), kp}, options.dtype(at::kChar)),
          at::empty({kPlanHeader + kPlanRows * n}, options.dtype(at::kInt)), at::empty({n}, options.dtype(at::kFloat))};
}

at::Tensor quantized_linear_allocate(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& params,
                                     const at::Tensor& multiplier, at::ScalarType output_dtype) {
  const char* op = "circle_quant::quantized_linear";
  TORCH_CHECK_TYPE(input.scalar_type() == at::kByte || input.scalar_type() == at::kChar, op,
                   ": input must be a uint8 or int8 tensor, got ", dtype_name(input.scalar_type()));
  TORCH_CHECK_VALUE(input.dim() >= 1, op, ": input must have at least one dimension [..., in_features]");
  TORCH_CHECK_TYPE(output_dtype == at::kByte || output_dtype == at::kChar || output_dtype == at::kShort ||
                       output_dtype == at::kFloat,
                   op, ": output_dtype must be torch.uint8, torch.int8, torch.int16 or torch.float32, got ",
                   dtype_name(output_dtype));
  const int64_t n = gemm_plan_channels(op, packed_weight, params, multiplier);
  check_plan_device(op, input, packed_weight, params, multiplier);
  // sym_sizes: torch.export / torch.compile trace with symbolic batch dimensions.
  auto sizes = input.sym_sizes().vec();
  sizes.back() = c10::SymInt(n);
  return empty_output(sizes, input.options().dtype(output_dtype));
}

at::Tensor quantized_linear_add_allocate(const at::Tensor& input, const at::Tensor& packed_weight,
                                         const at::Tensor& params, const at::Tensor& multiplier,
                                         at::ScalarType output_dtype, const at::Tensor& other, double other_scale,
                                         int64_t other_zero_point, double output_scale, int64_t output_zero_point,
                                         c10::optional<double> activation_min, c10::optional<double> activation_max) {
  auto out = quantized_linear_allocate(input, packed_weight, params, multiplier, output_dtype);
  check_fused_add_operand("circle_quant::quantized_linear_add", out, other);
  return out;
}

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{
  // activation_min / max: the fused activation's real bounds (None = unbounded; ReLU: 0 / None,
  // ReLU6: 0 / 6). The schema language has no -inf literal, hence the optionals.
  m.def(
      "linear_prepack(Tensor weight, Tensor weight_scale, Tensor weight_zero_point, Tensor? bias, "
      "float input_scale, int input_zero_point, ScalarType input_dtype, float output_scale, "
      "int output_zero_point, ScalarType output_dtype, float? activation_min=None, "
      "float? activation_max=None, str requant=\"float\") -> (Tensor, Tensor, Tensor)");
  m.def(
      "quantized_linear(Tensor input, Tensor packed_weight, Tensor params, Tensor multiplier, "
      "ScalarType output_dtype) -> Tensor");
  m.def(
      "quantized_linear_add(Tensor input, Tensor packed_weight, Tensor params, Tensor multiplier, "
      "ScalarType output_dtype, Tensor other, float other_scale, int other_zero_point, "
      "float output_scale, int output_zero_point, float? activation_min=None, "
      "float? activation_max=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(circle_quant, Meta, m)
{
  m.impl("linear_prepack", &linear_prepack_meta);
  m.impl("quantized_linear", &quantized_linear_allocate);
  m.impl("quantized_linear_add", &quantized_linear_add_allocate);
}

// Inference ops, not differentiable: outputs carry no gradient history (rather than autograd's
// "no autograd kernel registered" warning when a float bias that requires grad was prepacked).
TORCH_LIBRARY_IMPL(circle_quant, Autograd, m)
{
  m.impl("linear_prepack", torch::CppFunction::makeFallthrough());
  m.impl("quantized_linear", torch::CppFunction::makeFallthrough());
  m.impl("quantized_linear_add", torch::CppFunction::makeFallthrough());
}

}  // namespace torch_circle
