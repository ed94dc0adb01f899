// Observer ops: schemas, argument checks and Meta kernels.
#include "observe.h"

#include <cmath>

namespace torch_circle {
namespace {

at::Tensor scalar_float(const at::Tensor& like) { return at::empty({}, like.options().dtype(at::kFloat)); }

void check_range_state(const char* op, const at::Tensor& min_val, const at::Tensor& max_val) {
  for (const auto* t : {&min_val, &max_val}) {
    TORCH_CHECK_TYPE(t->scalar_type() == at::kFloat, op, ": ", t == &min_val ? "min_val" : "max_val",
                     " must be a float32 tensor, got ", dtype_name(t->scalar_type()));
  }
  TORCH_CHECK_VALUE(min_val.sym_sizes() == max_val.sym_sizes(), op, ": min_val has shape ", min_val.sym_sizes(),
                    " but max_val has shape ", max_val.sym_sizes());
  check_same_device(op, min_val, "max_val", max_val, "min_val");
}

void check_histogram_state(const char* op, const at::Tensor& histogram, const at::Tensor& min_val,
                           const at::Tensor& max_val) {
  TORCH_CHECK_TYPE(histogram.scalar_type() == at::kFloat, op, ": histogram must be a float32 tensor, got ",
                   dtype_name(histogram.scalar_type()));
  TORCH_CHECK_VALUE(histogram.dim() == 1 && histogram.sym_size(0) > 0, op,
                    ": histogram must be 1-D with at least one bin, got shape ", histogram.sym_sizes());
  check_range_state(op, min_val, max_val);
  check_same_device(op, histogram, "min_val", min_val, "histogram");
  TORCH_CHECK_VALUE(min_val.sym_numel() == 1, op, ": min_val and max_val must hold one value each, got shape ",
                    min_val.sym_sizes());
}

void check_eps(const char* op, double eps) {
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
}

}  // namespace

int64_t symmetric_zero_point(at::ScalarType dtype, int64_t quant_min, int64_t quant_max, bool has_customized_qrange) {
  if (dtype == at::kByte) return has_customized_qrange ? (quant_min + quant_max) / 2 : 128;
  if (dtype == at::kUInt16) return 1 << 15;
  return 0;
}

TensorPair minmax_allocate(const at::Tensor& input) {
  check_float_input("circle_quant::minmax", input);
  return {scalar_float(input), scalar_float(input)};
}

TensorPair minmax_per_channel_allocate(const at::Tensor& input, int64_t axis) {
  const char* op = "circle_quant::minmax_per_channel";
  check_float_input(op, input);
  axis = check_axis(op, input, axis);
  const auto opts = input.options().dtype(at::kFloat);
  return {at::empty_symint({input.sym_size(axis)}, opts), at::empty_symint({input.sym_size(axis)}, opts)};
}

TensorPair choose_qparams_allocate(const at::Tensor& min_val, const at::Tensor& max_val, int64_t quant_min,
                                   int64_t quant_max, at::ScalarType dtype, bool symmetric, double eps,
                                   bool has_customized_qrange) {
  const char* op = "circle_quant::choose_qparams";
  check_range_state(op, min_val, max_val);
  TORCH_CHECK_VALUE(min_val.dim() <= 1, op,
                    ": min_val / max_val must be 0-D (per tensor) or 1-D (per channel), got shape ",
                    min_val.sym_sizes());
  check_quant_range(op, quant_min, quant_max, dtype);
  check_eps(op, eps);
  // Like torchao's observers, a per-tensor result has shape [1].
  const c10::SymInt n = min_val.dim() == 0 ? c10::SymInt(1) : min_val.sym_size(0);
  return {at::empty_symint({n}, min_val.options()), at::empty_symint({n}, min_val.options().dtype(at::kLong))};
}

void running_minmax_check(const at::Tensor& input, const at::Tensor& min_val, const at::Tensor& max_val,
                          c10::optional<double> averaging_constant) {
  const char* op = "circle_quant::running_minmax_";
  check_float_input(op, input);
  check_range_state(op, min_val, max_val);
  check_same_device(op, input, "min_val", min_val);
  TORCH_CHECK_VALUE(min_val.sym_numel() == 1, op, ": min_val and max_val must hold one value each, got shape ",
                    min_val.sym_sizes());
  if (averaging_constant.has_value()) {
    const double c = *averaging_constant;
    TORCH_CHECK_VALUE(c > 0 && c <= 1, op, ": averaging_constant must be in (0, 1], got ", c);
  }
}

void histogram_observe_inplace_check(const at::Tensor& input, const at::Tensor& histogram, const at::Tensor& min_val,
                                     const at::Tensor& max_val, int64_t upsample_rate) {
  const char* op = "circle_quant::histogram_observe";
  check_float_input(op, input);
  check_same_device(op, input, "histogram", histogram);
  check_histogram_state(op, histogram, min_val, max_val);
  TORCH_CHECK_VALUE(upsample_rate >= 1, op, ": upsample_rate must be >= 1, got ", upsample_rate);
}

TensorTriple histogram_observe_allocate(const at::Tensor& input, const at::Tensor& histogram, const at::Tensor& min_val,
                                        const at::Tensor& max_val, int64_t upsample_rate) {
  histogram_observe_inplace_check(input, histogram, min_val, max_val, upsample_rate);
  return {at::empty_like(histogram), at::empty_like(min_val), at::empty_like(max_val)};
}

TensorPair histogram_choose_qparams_allocate(const at::Tensor& histogram, const at::Tensor& min_val,
                                             const at::Tensor& max_val, int64_t quant_min, int64_t quant_max,
                                             at::ScalarType dtype, bool symmetric, double eps,
                                             bool has_customized_qrange) {
  const char* op = "circle_quant::histogram_choose_qparams";
  check_histogram_state(op, histogram, min_val, max_val);
  check_quant_range(op, quant_min, quant_max, dtype);
  check_eps(op, eps);
  return {at::empty({1}, min_val.options()), at::empty({1}, min_val.options().dtype(at::kLong))};
}

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{
  m.def("minmax(Tensor input) -> (Tensor min, Tensor max)");
  m.def("minmax_per_channel(Tensor input, int axis) -> (Tensor min, Tensor max)");
  m.def(
      "choose_qparams(Tensor min_val, Tensor max_val, int quant_min, int quant_max, "
      "ScalarType dtype, bool symmetric, float eps, bool has_customized_qrange=False) "
      "-> (Tensor scale, Tensor zero_point)");
  m.def(
      "histogram_observe(Tensor input, Tensor histogram, Tensor min_val, Tensor max_val, "
      "int upsample_rate=16) -> (Tensor histogram, Tensor min_val, Tensor max_val)");
  m.def(
      "running_minmax_(Tensor input, Tensor(a!) min_val, Tensor(b!) max_val, "
      "float? averaging_constant=None) -> ()");
  m.def(
      "histogram_observe_(Tensor input, Tensor(a!) histogram, Tensor(b!) min_val, "
      "Tensor(c!) max_val, int upsample_rate=16) -> ()");
  m.def(
      "histogram_choose_qparams(Tensor histogram, Tensor min_val, Tensor max_val, int quant_min, "
      "int quant_max, ScalarType dtype, bool symmetric, float eps, "
      "bool has_customized_qrange=False) -> (Tensor scale, Tensor zero_point)");
}

TORCH_LIBRARY_IMPL(circle_quant, Meta, m)
{
  m.impl("minmax", &minmax_allocate);
  m.impl("minmax_per_channel", &minmax_per_channel_allocate);
  m.impl("choose_qparams", &choose_qparams_allocate);
  m.impl("histogram_observe", &histogram_observe_allocate);
  m.impl("running_minmax_", &running_minmax_check);
  m.impl("histogram_observe_", &histogram_observe_inplace_check);
  m.impl("histogram_choose_qparams", &histogram_choose_qparams_allocate);
}

}  // namespace torch_circle
