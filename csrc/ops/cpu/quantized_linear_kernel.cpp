// CPU kernels of linear_prepack / quantized_linear: the plan is built by make_gemm_plan
// (qgemm_plan.cpp), a call reads its header and runs circle_quant::qgemm over the rows, split
// across threads.
//
// Threading: every output element is computed by the same instructions whatever range of rows
// and 16-channel blocks a thread gets (qgemm.h), so results do not depend on the thread count.
// Small calls (BERT at batch 1: M = 1) run on the calling thread when starting the pool would
// cost more than the work; larger ones split channels first, then rows (output_split.h).
#include <ATen/Parallel.h>

#include <limits>

#include "../common.h"
#include "../fused_add.h"
#include "../output_split.h"
#include "../qgemm_plan.h"
#include "../quantized_linear.h"

namespace torch_circle {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_prepack_cpu(
    const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype,
    double output_scale, int64_t output_zero_point, at::ScalarType output_dtype, c10::optional<double> activation_min,
    c10::optional<double> activation_max, c10::string_view requant) {
  return make_gemm_plan("circle_quant::linear_prepack", weight, weight_scale, weight_zero_point, bias, input_scale,
                        input_zero_point, input_dtype, output_scale, output_zero_point, output_dtype,
                        activation_min.value_or(-std::numeric_limits<double>::infinity()),
                        activation_max.value_or(std::numeric_limits<double>::infinity()), requant);
}

at::Tensor run_linear(const char* op, const at::Tensor& input, const at::Tensor& packed_weight,
                      const at::Tensor& params, const at::Tensor& multiplier, at::ScalarType output_dtype,
                      const FusedAddArgs* add) {
  GemmPlan plan = read_gemm_plan(op, packed_weight, params, multiplier);
  const auto in_dtype = input.scalar_type();
  TORCH_CHECK_TYPE(in_dtype == at::kByte || in_dtype == at::kChar, op, ": input must be a uint8 or int8 tensor, got ",
                   dtype_name(in_dtype));
  TORCH_CHECK_TYPE(in_dtype == (plan.input_signed ? at::kChar : at::kByte), op, ": input has dtype ",
                   dtype_name(in_dtype), " but the weights were prepacked for ",
                   plan.input_signed ? "torch.int8" : "torch.uint8", " activations");
  TORCH_CHECK_VALUE(input.dim() >= 1 && input.size(-1) == plan.weights.k, op, ": input has shape ", input.sizes(),
                    " but the prepacked weight has in_features = ", plan.weights.k);
  TORCH_CHECK_TYPE(output_dtype == plan.output_dtype, op, ": output_dtype is ", dtype_name(output_dtype),
                   " but the weights were prepacked for ", dtype_name(plan.output_dtype), " output");
  TORCH_CHECK_VALUE(input.device().is_cpu(), op, ": input must be a CPU tensor, got ", input.device());

  const int64_t n = plan.weights.n, k = plan.weights.k;
  c10::SmallVector<int64_t, 6> sizes(input.sizes().begin(), input.sizes().end());
  sizes.back() = n;
  auto out = empty_output(c10::fromIntArrayRefSlow(sizes), input.options().dtype(output_dtype));
  FusedAdd fused;
  if (add != nullptr) {
    fused = make_fused_add(op, plan.stage, plan.output_scale, out, *add);
    plan.stage.residual = &fused.params;
  }
  const int64_t m = k > 0 ? input.numel() / k : out.numel() / n;
  if (m == 0) return out;

  // Rows may be strided (a slice of a wider tensor) as long as each row is dense.
  at::Tensor x = input;
  size_t row_stride = static_cast<size_t>(k);
  if (input.dim() == 2 && input.stride(1) == 1 && input.stride(0) >= k) {
    row_stride = static_cast<size_t>(input.stride(0));
  } else if (!input.is_contiguous()) {
    x = input.contiguous();
  }
  circle_quant::GemmActivations a;
  a.data = x.const_data_ptr();
  a.is_signed = plan.input_signed;
  a.zero_point = plan.input_zero_point;
  a.stride = row_stride;
  void* y = out.data_ptr();
  const size_t y_stride = static_cast<size_t>(n);

  auto run = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    circle_quant::qgemm(a, m0, m1, plan.weights, n0, n1, plan.bias, plan.stage, y, y_stride);
  };

  const int64_t blocks = plan.weights.n_blocks;
  const int64_t row_macs = blocks * kNr * plan.weights.k_padded;  // per row, all channels
  const int threads = at::get_num_threads();
  if (threads <= 1 || m * row_macs < 2 * kMinTaskMacs || at::in_parallel_region()) {
    run(0, m, 0, n);
    return out;
  }
  const int64_t row_tiles = (m + kRowTile - 1) / kRowTile;
  const OutputSplit split = split_output(std::min<int64_t>(threads, m * row_macs / kMinTaskMacs), blocks, row_tiles);
  parallel_over_split(split, row_tiles, blocks, [&](int64_t u0, int64_t u1, int64_t b0, int64_t b1) {
    run(u0 * kRowTile, std::min(m, u1 * kRowTile), b0 * kNr, std::min(n, b1 * kNr));
  });
  return out;
}

at::Tensor quantized_linear_cpu(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& params,
                                const at::Tensor& multiplier, at::ScalarType output_dtype) {
  return run_linear("circle_quant::quantized_linear", input, packed_weight, params, multiplier, output_dtype, nullptr);
}

at::Tensor quantized_linear_add_cpu(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& params,
                                    const at::Tensor& multiplier, at::ScalarType output_dtype, const at::Tensor& other,
                                    double other_scale, int64_t other_zero_point, double output_scale,
                                    int64_t output_zero_point, c10::optional<double> activation_min,
                                    c10::optional<double> activation_max) {
  const FusedAddArgs add{other,          other_scale,   other_zero_point, output_scale, output_zero_point,
                         activation_min, activation_max};
  return run_linear("circle_quant::quantized_linear_add", input, packed_weight, params, multiplier, output_dtype, &add);
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{
  m.impl("linear_prepack", &linear_prepack_cpu);
  m.impl("quantized_linear", &quantized_linear_cpu);
  m.impl("quantized_linear_add", &quantized_linear_add_cpu);
}

}  // namespace torch_circle
