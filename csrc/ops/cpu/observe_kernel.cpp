// CPU kernels of the observer ops. Reductions split the input across threads and combine exact
// partial results (min, max, integer counts), so every result is independent of the thread count.
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../observe.h"
#include "core/observe.h"
#include "core/qparams.h"

namespace torch_circle {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

at::Tensor dense_float32(const at::Tensor& input) {
  const auto x = input.scalar_type() == at::kFloat ? input : input.to(at::kFloat);
  return x.is_non_overlapping_and_dense() ? x : x.contiguous();
}

circle_quant::MinMax parallel_minmax(const float* x, int64_t n) {
  if (n <= kGrainSize) return circle_quant::minmax(x, n);  // one task: skip the partials
  std::vector<circle_quant::MinMax> part(at::get_num_threads(), {kInf, -kInf, false});
  at::parallel_for(0, n, kGrainSize, [&](int64_t b, int64_t e) {
    const auto r = circle_quant::minmax(x + b, e - b);
    auto& p = part[at::get_thread_num()];
    p.min = std::fmin(p.min, r.min);
    p.max = std::fmax(p.max, r.max);
    p.has_nan |= r.has_nan;
  });
  circle_quant::MinMax total{kInf, -kInf, false};
  for (const auto& p : part) {
    total.min = std::fmin(total.min, p.min);
    total.max = std::fmax(total.max, p.max);
    total.has_nan |= p.has_nan;
  }
  return total;
}

TensorPair minmax_cpu(const at::Tensor& input) {
  auto [mn, mx] = minmax_allocate(input);
  const auto x = dense_float32(input);
  const auto r = parallel_minmax(x.data_ptr<float>(), x.numel());
  if (r.has_nan) fail_nan("circle_quant::minmax", input);
  *mn.data_ptr<float>() = r.min;  // direct stores: fill_ would cost two more dispatcher calls
  *mx.data_ptr<float>() = r.max;
  return {mn, mx};
}

// Running min / max, or their moving average (torchao's MovingAverageMinMaxObserver):
// m <- m + c * (batch - m) once initialised.
void running_minmax_cpu(const at::Tensor& input, const at::Tensor& min_val, const at::Tensor& max_val,
                        c10::optional<double> averaging_constant) {
  running_minmax_check(input, min_val, max_val, averaging_constant);
  if (input.numel() == 0) return;
  const auto x = dense_float32(input);
  const auto r = parallel_minmax(x.data_ptr<float>(), x.numel());
  if (r.has_nan) fail_nan("circle_quant::running_minmax_", input);
  float* mn = min_val.data_ptr<float>();
  float* mx = max_val.data_ptr<float>();
  const bool initialized = !(*mn == kInf && *mx == -kInf);
  if (averaging_constant.has_value() && initialized) {
    const float c = static_cast<float>(*averaging_constant);
    *mn = *mn + c * (r.min - *mn);
    *mx = *mx + c * (r.max - *mx);
  } else {
    *mn = std::fmin(*mn, r.min);
    *mx = std::fmax(*mx, r.max);
  }
}

TensorPair minmax_per_channel_cpu(const at::Tensor& input, int64_t axis) {
  const char* op = "circle_quant::minmax_per_channel";
  auto [mn, mx] = minmax_per_channel_allocate(input, axis);
  axis = check_axis(op, input, axis);
  const auto x = dense_float32(input);
  const auto l = channel_layout(x, axis);
  const float* xp = x.data_ptr<float>();
  float* mnp = mn.data_ptr<float>();
  float* mxp = mx.data_ptr<float>();
  std::fill(mnp, mnp + mn.numel(), kInf);
  std::fill(mxp, mxp + mx.numel(), -kInf);
  std::atomic<bool> nan{false};
  if (l.inner == 1 && l.channels > 1) {
    // Channel axis innermost: each task takes a block of columns across all rows.
    const int64_t grain = std::max<int64_t>(1, kGrainSize / std::max<int64_t>(1, l.outer));
    at::parallel_for(0, l.channels, grain, [&](int64_t b, int64_t e) {
      if (circle_quant::minmax_columns(xp + b, l.outer, e - b, l.channels, mnp + b, mxp + b)) {
        nan = true;
      }
    });
  } else {
    const int64_t grain = std::max<int64_t>(1, kGrainSize / std::max<int64_t>(1, l.inner * l.outer));
    at::parallel_for(0, l.channels, grain, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        for (int64_t o = 0; o < l.outer; ++o) {
          const auto r = circle_quant::minmax(xp + (o * l.channels + c) * l.inner, l.inner);
          mnp[c] = std::fmin(mnp[c], r.min);
          mxp[c] = std::fmax(mxp[c], r.max);
          if (r.has_nan) nan = true;
        }
      }
    });
  }
  if (nan) fail_nan(op, input);
  return {mn, mx};
}

// Runs a core qparams computation, turning its std::invalid_argument into a ValueError that
// names the op (and the channel, for per-channel ranges).
circle_quant::QParams choose_or_fail(const char* op, float min, float max, const circle_quant::QParamsConfig& config,
                                     int64_t channel) {
  try {
    return circle_quant::choose_qparams(min, max, config);
  } catch (const std::invalid_argument& e) {
    if (channel >= 0) TORCH_CHECK_VALUE(false, op, " (channel ", channel, "): ", e.what());
    TORCH_CHECK_VALUE(false, op, ": ", e.what());
  }
}

circle_quant::QParamsConfig qparams_config(int64_t quant_min, int64_t quant_max, at::ScalarType dtype, bool symmetric,
                                           double eps, bool has_customized_qrange) {
  return {quant_min, quant_max, symmetric, symmetric_zero_point(dtype, quant_min, quant_max, has_customized_qrange),
          static_cast<float>(eps)};
}

TensorPair choose_qparams_cpu(const at::Tensor& min_val, const at::Tensor& max_val, int64_t quant_min,
                              int64_t quant_max, at::ScalarType dtype, bool symmetric, double eps,
                              bool has_customized_qrange) {
  const char* op = "circle_quant::choose_qparams";
  auto [scale, zero_point] =
      choose_qparams_allocate(min_val, max_val, quant_min, quant_max, dtype, symmetric, eps, has_customized_qrange);
  const auto config = qparams_config(quant_min, quant_max, dtype, symmetric, eps, has_customized_qrange);
  const auto mn = min_val.reshape({-1}).contiguous();
  const auto mx = max_val.reshape({-1}).contiguous();
  const bool per_channel = min_val.dim() == 1;
  for (int64_t c = 0; c < mn.numel(); ++c) {
    const auto q = choose_or_fail(op, mn.data_ptr<float>()[c], mx.data_ptr<float>()[c], config, per_channel ? c : -1);
    scale.data_ptr<float>()[c] = q.scale;
    zero_point.data_ptr<int64_t>()[c] = q.zero_point;
  }
  return {scale, zero_point};
}

// Adds `input` to the running histogram state (hist, *min, *max: `bins` floats and two scalars),
// in place. The functional op runs it on copies of the state, the in-place op on the state itself.
void observe_histogram(const at::Tensor& input, float* hist, int64_t bins, float* min_val, float* max_val,
                       int64_t upsample_rate) {
  const char* op = "circle_quant::histogram_observe";
  const float old_min = *min_val;
  const float old_max = *max_val;
  const bool initialized = !(old_min == kInf || old_max == -kInf);
  TORCH_CHECK_VALUE(!initialized || (std::isfinite(old_min) && std::isfinite(old_max) && old_min <= old_max), op,
                    ": the histogram state is corrupt: min_val = ", old_min, ", max_val = ", old_max);

  const auto x = dense_float32(input);
  const float* xp = x.data_ptr<float>();
  const int64_t n = x.numel();
  auto batch = parallel_minmax(xp, n);
  if (batch.has_nan) fail_nan(op, input);
  if (std::isinf(batch.min) || std::isinf(batch.max)) {
    if (n > 0) {
      TORCH_WARN(op, ": input of shape ", input.sizes(), " holds Inf values; they are left out of the histogram");
    }
    batch = circle_quant::finite_minmax(xp, n);
  }
  if (batch.min > batch.max) return;  // nothing (finite) to add: the state stays as it is

  const float new_min = initialized ? std::fmin(old_min, batch.min) : batch.min;
  const float new_max = initialized ? std::fmax(old_max, batch.max) : batch.max;
  float lo, hi;
  circle_quant::histogram_edges(new_min, new_max, &lo, &hi);

  // Per-thread integer counts, summed exactly (one set when a single task does all the work).
  const int threads = n <= kGrainSize ? 1 : at::get_num_threads();
  // Scratch reused across calls. Worker threads must use this thread's buffer through a plain
  // pointer: naming a thread_local inside the lambda would give each worker its own (empty) one.
  thread_local std::vector<uint32_t> part;
  part.assign(static_cast<size_t>(threads) * bins, 0);
  uint32_t* const part_data = part.data();
  at::parallel_for(0, n, kGrainSize, [&](int64_t b, int64_t e) {
    const size_t slot = threads == 1 ? 0 : static_cast<size_t>(at::get_thread_num());
    circle_quant::histogram_count(xp + b, e - b, lo, hi, bins, part_data + slot * bins);
  });
  thread_local std::vector<uint64_t> counts;
  counts.assign(bins, 0);
  for (int t = 0; t < threads; ++t) {
    for (int64_t b = 0; b < bins; ++b) counts[b] += part[static_cast<size_t>(t) * bins + b];
  }
  // histogram_merge reads the old histogram completely before writing the new one, so the two
  // may be the same buffer.
  circle_quant::histogram_merge(hist, initialized ? old_min : kInf, initialized ? old_max : -kInf, counts.data(),
                                new_min, new_max, bins, upsample_rate, hist);
  *min_val = new_min;
  *max_val = new_max;
}

TensorTriple histogram_observe_cpu(const at::Tensor& input, const at::Tensor& histogram, const at::Tensor& min_val,
                                   const at::Tensor& max_val, int64_t upsample_rate) {
  auto [hist_out, min_out, max_out] = histogram_observe_allocate(input, histogram, min_val, max_val, upsample_rate);
  hist_out.copy_(histogram);
  min_out.copy_(min_val);
  max_out.copy_(max_val);
  observe_histogram(input, hist_out.data_ptr<float>(), hist_out.numel(), min_out.data_ptr<float>(),
                    max_out.data_ptr<float>(), upsample_rate);
  return {hist_out, min_out, max_out};
}

// The observer's per-batch call: works on the state tensors directly when they are dense float32
// (always, for state the observer created), else through the functional op.
void histogram_observe_inplace_cpu(const at::Tensor& input, const at::Tensor& histogram, const at::Tensor& min_val,
                                   const at::Tensor& max_val, int64_t upsample_rate) {
  histogram_observe_inplace_check(input, histogram, min_val, max_val, upsample_rate);
  const bool direct = histogram.is_contiguous() && histogram.scalar_type() == at::kFloat &&
                      min_val.scalar_type() == at::kFloat && max_val.scalar_type() == at::kFloat;
  if (direct) {
    observe_histogram(input, histogram.data_ptr<float>(), histogram.numel(), min_val.data_ptr<float>(),
                      max_val.data_ptr<float>(), upsample_rate);
    return;
  }
  const auto [h, mn, mx] = histogram_observe_cpu(input, histogram, min_val, max_val, upsample_rate);
  histogram.copy_(h);
  min_val.copy_(mn);
  max_val.copy_(mx);
}

TensorPair histogram_choose_qparams_cpu(const at::Tensor& histogram, const at::Tensor& min_val,
                                        const at::Tensor& max_val, int64_t quant_min, int64_t quant_max,
                                        at::ScalarType dtype, bool symmetric, double eps, bool has_customized_qrange) {
  const char* op = "circle_quant::histogram_choose_qparams";
  auto [scale, zero_point] = histogram_choose_qparams_allocate(histogram, min_val, max_val, quant_min, quant_max, dtype,
                                                               symmetric, eps, has_customized_qrange);
  float min = min_val.item<float>();
  float max = max_val.item<float>();
  TORCH_CHECK_VALUE(!(min == kInf && max == -kInf), op,
                    ": no data was observed (min_val = +inf, max_val = -inf); run calibration "
                    "data through the model before computing quantization parameters");
  if (min < max) {
    const auto hist = histogram.contiguous();
    const double levels = std::ldexp(1.0, static_cast<int>(c10::elementSize(dtype) * 8));
    try {
      circle_quant::histogram_search_range(hist.data_ptr<float>(), hist.numel(), min, max, levels, &min, &max);
    } catch (const std::invalid_argument& e) {
      TORCH_CHECK_VALUE(false, op, ": ", e.what());
    }
  }
  const auto q = choose_or_fail(op, min, max,
                                qparams_config(quant_min, quant_max, dtype, symmetric, eps, has_customized_qrange), -1);
  scale.fill_(q.scale);
  zero_point.fill_(q.zero_point);
  return {scale, zero_point};
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{
  m.impl("minmax", &minmax_cpu);
  m.impl("minmax_per_channel", &minmax_per_channel_cpu);
  m.impl("choose_qparams", &choose_qparams_cpu);
  m.impl("histogram_observe", &histogram_observe_cpu);
  m.impl("running_minmax_", &running_minmax_cpu);
  m.impl("histogram_observe_", &histogram_observe_inplace_cpu);
  m.impl("histogram_choose_qparams", &histogram_choose_qparams_cpu);
}

}  // namespace torch_circle
