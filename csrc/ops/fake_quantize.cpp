// Fake quantization: schemas, argument checks and Meta kernels.
#include "fake_quantize.h"

namespace torch_circle {
namespace {

void check_fake_range(const char* op, int64_t quant_min, int64_t quant_max) {
  // No dtype argument: the range itself must fit the widest quantized type, int32.
  check_quant_range(op, quant_min, quant_max, at::kInt);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> fake_quantize_per_tensor_cachemask_allocate(const at::Tensor& input, double scale,
                                                                               int64_t zero_point, int64_t quant_min,
                                                                               int64_t quant_max) {
  const char* op = "circle_quant::fake_quantize_per_tensor";
  TORCH_CHECK_TYPE(input.scalar_type() == at::kFloat, op, ": input must be float32, got ",
                   dtype_name(input.scalar_type()));
  check_fake_range(op, quant_min, quant_max);
  check_scale(op, scale);
  check_zero_point(op, zero_point, quant_min, quant_max);
  return {empty_like_preserve(input, at::kFloat), empty_like_preserve(input, at::kBool)};
}

std::tuple<at::Tensor, at::Tensor> fake_quantize_per_channel_cachemask_allocate(const at::Tensor& input,
                                                                                const at::Tensor& scales,
                                                                                const at::Tensor& zero_points,
                                                                                int64_t axis, int64_t quant_min,
                                                                                int64_t quant_max) {
  const char* op = "circle_quant::fake_quantize_per_channel";
  TORCH_CHECK_TYPE(input.scalar_type() == at::kFloat, op, ": input must be float32, got ",
                   dtype_name(input.scalar_type()));
  check_fake_range(op, quant_min, quant_max);
  axis = check_axis(op, input, axis);
  check_channel_params(op, input, axis, scales, zero_points);
  return {empty_like_preserve(input, at::kFloat), empty_like_preserve(input, at::kBool)};
}

namespace {

at::Tensor fake_quantize_per_tensor_meta(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                         int64_t quant_max) {
  return std::get<0>(fake_quantize_per_tensor_cachemask_allocate(input, scale, zero_point, quant_min, quant_max));
}

at::Tensor fake_quantize_per_channel_meta(const at::Tensor& input, const at::Tensor& scales,
                                          const at::Tensor& zero_points, int64_t axis, int64_t quant_min,
                                          int64_t quant_max) {
  return std::get<0>(
      fake_quantize_per_channel_cachemask_allocate(input, scales, zero_points, axis, quant_min, quant_max));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{
  m.def(
      "fake_quantize_per_tensor(Tensor input, float scale, int zero_point, int quant_min, "
      "int quant_max) -> Tensor");
  m.def(
      "fake_quantize_per_channel(Tensor input, Tensor scales, Tensor zero_points, int axis, "
      "int quant_min, int quant_max) -> Tensor");
  m.def(
      "_fake_quantize_per_tensor_cachemask(Tensor input, float scale, int zero_point, "
      "int quant_min, int quant_max) -> (Tensor output, Tensor mask)");
  m.def(
      "_fake_quantize_per_channel_cachemask(Tensor input, Tensor scales, Tensor zero_points, "
      "int axis, int quant_min, int quant_max) -> (Tensor output, Tensor mask)");
}

TORCH_LIBRARY_IMPL(circle_quant, Meta, m)
{
  m.impl("fake_quantize_per_tensor", &fake_quantize_per_tensor_meta);
  m.impl("fake_quantize_per_channel", &fake_quantize_per_channel_meta);
  m.impl("_fake_quantize_per_tensor_cachemask", &fake_quantize_per_tensor_cachemask_allocate);
  m.impl("_fake_quantize_per_channel_cachemask", &fake_quantize_per_channel_cachemask_allocate);
}

}  // namespace torch_circle
