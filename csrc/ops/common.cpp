#include "common.h"

#include <c10/util/irange.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace torch_circle {

std::string dtype_name(at::ScalarType dtype) { return "torch." + std::string(c10::getDtypeNames(dtype).first); }

bool is_quant_dtype(at::ScalarType dtype) {
  switch (dtype) {
    case at::kByte:
    case at::kChar:
    case at::kUInt16:
    case at::kShort:
    case at::kInt: return true;
    default: return false;
  }
}

std::pair<int64_t, int64_t> dtype_bounds(at::ScalarType dtype) {
  switch (dtype) {
    case at::kByte: return {0, 255};
    case at::kChar: return {-128, 127};
    case at::kUInt16: return {0, 65535};
    case at::kShort: return {-32768, 32767};
    default: return {INT32_MIN, INT32_MAX};
  }
}

void check_quant_range(const char* op, int64_t quant_min, int64_t quant_max, at::ScalarType dtype) {
  TORCH_CHECK_TYPE(is_quant_dtype(dtype), op, ": dtype must be one of torch.uint8, torch.int8, ",
                   "torch.uint16, torch.int16, torch.int32; got ", dtype_name(dtype));
  const auto [lo, hi] = dtype_bounds(dtype);
  TORCH_CHECK_VALUE(quant_min >= lo && quant_max <= hi, op, ": the range [quant_min, quant_max] = [", quant_min, ", ",
                    quant_max, "] does not fit in ", dtype_name(dtype), " [", lo, ", ", hi, "]");
  TORCH_CHECK_VALUE(quant_min <= quant_max, op, ": quant_min (", quant_min, ") is greater than quant_max (", quant_max,
                    ")");
}

void check_scale(const char* op, double scale) {
  TORCH_CHECK_VALUE(std::isfinite(scale) && scale > 0, op, ": scale must be finite and > 0, got ", scale);
}

void check_zero_point(const char* op, int64_t zero_point, int64_t quant_min, int64_t quant_max) {
  TORCH_CHECK_VALUE(zero_point >= quant_min && zero_point <= quant_max, op, ": zero_point ", zero_point,
                    " is outside [quant_min, quant_max] = [", quant_min, ", ", quant_max, "]");
}

void check_float_input(const char* op, const at::Tensor& input, const char* name) {
  const auto t = input.scalar_type();
  TORCH_CHECK_TYPE(t == at::kFloat || t == at::kHalf || t == at::kBFloat16, op, ": ", name,
                   " must be a float32, float16 or bfloat16 tensor, got ", dtype_name(t));
}

void check_quantized_input(const char* op, const at::Tensor& input, at::ScalarType dtype) {
  TORCH_CHECK_TYPE(input.scalar_type() == dtype, op, ": input has dtype ", dtype_name(input.scalar_type()),
                   " but the dtype argument says ", dtype_name(dtype));
}

void check_same_device(const char* op, const at::Tensor& input, const char* name, const at::Tensor& tensor,
                       const char* input_name) {
  TORCH_CHECK_VALUE(tensor.device() == input.device(), op, ": ", name, " is on ", tensor.device(), " but ", input_name,
                    " is on ", input.device(), " (every tensor argument must be on one device)");
}

int64_t check_axis(const char* op, const at::Tensor& input, int64_t axis) {
  const int64_t dim = input.dim();
  TORCH_CHECK_INDEX(dim > 0, op, ": per-channel ops need an input with at least one dimension");
  TORCH_CHECK_INDEX(axis >= -dim && axis < dim, op, ": axis ", axis, " is out of range for an input with ", dim,
                    " dimensions");
  return axis < 0 ? axis + dim : axis;
}

void check_channel_params(const char* op, const at::Tensor& input, int64_t axis, const at::Tensor& scales,
                          const c10::optional<at::Tensor>& zero_points) {
  // sym_size: Meta kernels run this on tensors with symbolic shapes (torch.export dynamic dims).
  const c10::SymInt channels = input.sym_size(axis);
  TORCH_CHECK_TYPE(at::isFloatingType(scales.scalar_type()), op, ": scales must be a floating-point tensor, got ",
                   dtype_name(scales.scalar_type()));
  TORCH_CHECK_VALUE(scales.dim() == 1 && scales.sym_size(0) == channels, op, ": scales has shape ", scales.sym_sizes(),
                    " but input has ", channels, " channels along axis ", axis);
  check_same_device(op, input, "scales", scales);
  if (zero_points.has_value()) {
    const auto& zp = *zero_points;
    TORCH_CHECK_TYPE(zp.scalar_type() != at::kBool && !at::isComplexType(zp.scalar_type()), op,
                     ": zero_points must be an integer or floating-point tensor, got ", dtype_name(zp.scalar_type()));
    TORCH_CHECK_VALUE(zp.dim() == 1 && zp.sym_size(0) == channels, op, ": zero_points has shape ", zp.sym_sizes(),
                      " but input has ", channels, " channels along axis ", axis);
    check_same_device(op, input, "zero_points", zp);
  }
}

void check_channel_param_values(const char* op, const at::Tensor& scales, const c10::optional<at::Tensor>& zero_points,
                                int64_t quant_min, int64_t quant_max, bool integral_zero_points) {
  const auto s = scales.to(at::kDouble).contiguous();
  const double* sp = s.data_ptr<double>();
  for (const auto c : c10::irange(s.numel())) {
    TORCH_CHECK_VALUE(std::isfinite(sp[c]) && sp[c] > 0, op, ": scales must be finite and > 0, but scales[", c,
                      "] = ", sp[c]);
  }
  if (!zero_points.has_value()) return;
  const auto z = zero_points->to(at::kDouble).contiguous();
  const double* zp = z.data_ptr<double>();
  for (const auto c : c10::irange(z.numel())) {
    TORCH_CHECK_VALUE(zp[c] >= static_cast<double>(quant_min) && zp[c] <= static_cast<double>(quant_max), op,
                      ": zero_points[", c, "] = ", zp[c], " is outside [quant_min, quant_max] = [", quant_min, ", ",
                      quant_max, "]");
    TORCH_CHECK_VALUE(!integral_zero_points || zp[c] == std::nearbyint(zp[c]), op, ": zero_points[", c, "] = ", zp[c],
                      " is not an integer (quantization needs integer zero points)");
  }
}

void fail_nan(const char* op, const at::Tensor& input, const char* name) {
  const auto flat = at::isnan(input).reshape({-1}).nonzero();
  const int64_t count = flat.size(0);
  if (count == 0) TORCH_CHECK_VALUE(false, op, ": ", name, " contains NaN");
  const int64_t first = flat[0][0].item<int64_t>();
  // Translate the flat (row-major) position into an index tuple the user can look up.
  std::vector<int64_t> index(input.dim());
  int64_t rest = first;
  for (int64_t d = input.dim() - 1; d >= 0; --d) {
    index[d] = rest % input.size(d);
    rest /= input.size(d);
  }
  TORCH_CHECK_VALUE(false, op, ": ", name, " of shape ", input.sizes(), " contains ", count,
                    " NaN value(s), the first at index ", c10::IntArrayRef(index),
                    "; quantization needs finite data (check the model and calibration inputs)");
}

at::Tensor empty_like_preserve(const at::Tensor& input, at::ScalarType dtype) {
  const auto options = input.options().dtype(dtype);
  if (input.is_cpu() && input.is_non_overlapping_and_dense()) {
    return empty_output_strided(input.sym_sizes(), input.sym_strides(), options);
  }
  return at::empty_like(input, options, at::MemoryFormat::Preserve);
}

at::Tensor with_strides_of(const at::Tensor& input, const at::Tensor& like) {
  if (input.strides() == like.strides() && input.is_non_overlapping_and_dense()) return input;
  auto copy = at::empty_strided(like.sizes(), like.strides(), input.options());
  copy.copy_(input);
  return copy;
}

ChannelLayout channel_layout(const at::Tensor& dense, int64_t axis) {
  const int64_t channels = dense.size(axis);
  if (channels <= 1 || dense.numel() == 0) return {1, channels, channels == 0 ? 0 : dense.numel()};
  // In a dense, non-overlapping tensor the channel stride is the product of the sizes of the
  // dimensions laid out inside it.
  const int64_t inner = dense.stride(axis);
  return {dense.numel() / (channels * inner), channels, inner};
}

}  // namespace torch_circle
