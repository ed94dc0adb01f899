// CPU kernels of the quantize / dequantize ops: argument checks and output from *_allocate(),
// then the core microkernels over the flat buffer, split across threads.
//
// Fast paths cover what PT2E produces (float32 input and scales). Rarer argument types (float64
// scales, int32 per-channel dequantization, non-float32 out_dtype) take a reference path written
// with the same ATen operations as quantized_decomposed, so results stay bit-identical there too.
#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "../quantize.h"
#include "core/quantize.h"

namespace torch_circle {
namespace {

at::Tensor as_float32(const at::Tensor& x) { return x.scalar_type() == at::kFloat ? x : x.to(at::kFloat); }

std::vector<int64_t> channel_view_shape(const at::Tensor& input, int64_t axis, int64_t channels) {
  std::vector<int64_t> shape(input.dim(), 1);
  shape[axis] = channels;
  return shape;
}

// Per-channel parameters converted once to the float form the kernels take.
struct ChannelParams {
  std::vector<float> inv_scale, scale, zero_point;
};

ChannelParams channel_params(const at::Tensor& scales, const c10::optional<at::Tensor>& zero_points) {
  const int64_t channels = scales.numel();
  ChannelParams p;
  const auto s = scales.contiguous();
  const float* sp = s.data_ptr<float>();
  p.scale.assign(sp, sp + channels);
  p.inv_scale.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    p.inv_scale[c] = static_cast<float>(1.0 / static_cast<double>(sp[c]));
  }
  if (zero_points.has_value()) {
    const auto z = zero_points->to(at::kFloat).contiguous();
    p.zero_point.assign(z.data_ptr<float>(), z.data_ptr<float>() + channels);
  } else {
    p.zero_point.assign(channels, 0.0f);
  }
  return p;
}

// Runs body(begin, end) over [0, layout.outer * layout.channels) rows of `inner` elements, or, when
// the channel axis is innermost, channelwise(row) over the `outer` rows of `channels` elements.
template <typename RowFn, typename ChannelwiseFn>
void for_each_channel_row(const ChannelLayout& l, RowFn row_fn, ChannelwiseFn channelwise_fn) {
  if (l.inner == 1 && l.channels > 1) {
    const int64_t grain = std::max<int64_t>(1, kGrainSize / l.channels);
    at::parallel_for(0, l.outer, grain, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) channelwise_fn(o * l.channels);
    });
  } else {
    const int64_t grain = std::max<int64_t>(1, kGrainSize / std::max<int64_t>(1, l.inner));
    at::parallel_for(0, l.outer * l.channels, grain, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) row_fn(r % l.channels, r * l.inner);
    });
  }
}

at::Tensor quantize_per_tensor_cpu(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                   int64_t quant_max, at::ScalarType dtype) {
  const char* op = "circle_quant::quantize_per_tensor";
  auto out = quantize_per_tensor_allocate(input, scale, zero_point, quant_min, quant_max, dtype);
  const auto x = with_strides_of(as_float32(input), out);
  const float* xp = x.data_ptr<float>();
  std::atomic<bool> nan{false};
  TORCH_CIRCLE_DISPATCH_QTYPES(dtype, op, [&] {
    const auto p = circle_quant::make_quantize_params(scale, zero_point, quant_min, quant_max);
    Q* yp = static_cast<Q*>(out.data_ptr());
    at::parallel_for(0, x.numel(), kGrainSize, [&](int64_t b, int64_t e) {
      if (!circle_quant::quantize(xp + b, yp + b, e - b, p)) nan = true;
    });
  });
  if (nan) fail_nan(op, input);
  return out;
}

at::Tensor dequantize_per_tensor_cpu(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                     int64_t quant_max, at::ScalarType dtype, c10::optional<at::ScalarType> out_dtype) {
  const char* op = "circle_quant::dequantize_per_tensor";
  auto out = dequantize_per_tensor_allocate(input, scale, zero_point, quant_min, quant_max, dtype, out_dtype);
  if (out.scalar_type() != at::kFloat) {
    // Reference path: quantized_decomposed rounds to out_dtype after each operation.
    return out.copy_(at::mul(at::sub(input.to(out.scalar_type()), zero_point), scale));
  }
  const auto x = with_strides_of(input, out);
  float* yp = out.data_ptr<float>();
  const circle_quant::DequantizeParams p{static_cast<float>(scale), static_cast<float>(zero_point)};
  TORCH_CIRCLE_DISPATCH_QTYPES(dtype, op, [&] {
    const Q* xp = static_cast<const Q*>(x.data_ptr());
    at::parallel_for(0, x.numel(), kGrainSize,
                     [&](int64_t b, int64_t e) { circle_quant::dequantize(xp + b, yp + b, e - b, p); });
  });
  return out;
}

at::Tensor quantize_per_channel_cpu(const at::Tensor& input, const at::Tensor& scales, const at::Tensor& zero_points,
                                    int64_t axis, int64_t quant_min, int64_t quant_max, at::ScalarType dtype) {
  const char* op = "circle_quant::quantize_per_channel";
  auto out = quantize_per_channel_allocate(input, scales, zero_points, axis, quant_min, quant_max, dtype);
  axis = check_axis(op, input, axis);
  check_channel_param_values(op, scales, zero_points, quant_min, quant_max, /*integral_zero_points=*/true);
  const auto x = with_strides_of(as_float32(input), out);
  if (scales.scalar_type() != at::kFloat || zero_points.scalar_type() == at::kDouble) {
    // Reference path: float64 parameters promote quantized_decomposed's arithmetic to double.
    const auto shape = channel_view_shape(x, axis, scales.size(0));
    const auto inv = scales.reciprocal().view(shape);  // Python's `1.0 / scales`
    const auto q = at::clamp(at::round(x * inv) + zero_points.view(shape), quant_min, quant_max);
    return out.copy_(q.to(dtype));
  }
  const auto l = channel_layout(x, axis);
  const auto p = channel_params(scales, zero_points);
  const float* xp = x.data_ptr<float>();
  std::atomic<bool> nan{false};
  TORCH_CIRCLE_DISPATCH_QTYPES(dtype, op, [&] {
    Q* yp = static_cast<Q*>(out.data_ptr());
    const auto bounds = circle_quant::make_quantize_params(1.0, 0, quant_min, quant_max);
    for_each_channel_row(
        l,
        [&](int64_t c, int64_t offset) {
          const circle_quant::QuantizeParams pc{p.inv_scale[c], p.zero_point[c], bounds.qmin, bounds.qmax};
          if (!circle_quant::quantize(xp + offset, yp + offset, l.inner, pc)) nan = true;
        },
        [&](int64_t offset) {
          if (!circle_quant::quantize_channelwise(xp + offset, yp + offset, l.channels, p.inv_scale.data(),
                                                  p.zero_point.data(), bounds.qmin, bounds.qmax)) {
            nan = true;
          }
        });
  });
  if (nan) fail_nan(op, input);
  return out;
}

at::Tensor dequantize_per_channel_cpu(const at::Tensor& input, const at::Tensor& scales,
                                      const c10::optional<at::Tensor>& zero_points, int64_t axis, int64_t quant_min,
                                      int64_t quant_max, at::ScalarType dtype,
                                      c10::optional<at::ScalarType> out_dtype) {
  const char* op = "circle_quant::dequantize_per_channel";
  auto out = dequantize_per_channel_allocate(input, scales, zero_points, axis, quant_min, quant_max, dtype, out_dtype);
  axis = check_axis(op, input, axis);
  check_channel_param_values(op, scales, zero_points, quant_min, quant_max, /*integral_zero_points=*/false);
  const bool zp_double = zero_points.has_value() && zero_points->scalar_type() == at::kDouble;
  if (out.scalar_type() != at::kFloat || scales.scalar_type() != at::kFloat || zp_double || dtype == at::kInt) {
    // Reference path: quantized_decomposed subtracts in the integer type (int32 values may not
    // be exact in float) and multiplies in the promoted type.
    const auto shape = channel_view_shape(input, axis, scales.size(0));
    const auto shifted = zero_points.has_value() ? input - zero_points->view(shape) : input;
    return out.copy_((shifted * scales.view(shape)).to(out.scalar_type()));
  }
  const auto x = with_strides_of(input, out);
  const auto l = channel_layout(x, axis);
  const auto p = channel_params(scales, zero_points);
  float* yp = out.data_ptr<float>();
  TORCH_CIRCLE_DISPATCH_QTYPES(dtype, op, [&] {
    const Q* xp = static_cast<const Q*>(x.data_ptr());
    for_each_channel_row(
        l,
        [&](int64_t c, int64_t offset) {
          circle_quant::dequantize(xp + offset, yp + offset, l.inner,
                                   circle_quant::DequantizeParams{p.scale[c], p.zero_point[c]});
        },
        [&](int64_t offset) {
          circle_quant::dequantize_channelwise(xp + offset, yp + offset, l.channels, p.scale.data(),
                                               p.zero_point.data());
        });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{
  m.impl("quantize_per_tensor", &quantize_per_tensor_cpu);
  m.impl("dequantize_per_tensor", &dequantize_per_tensor_cpu);
  m.impl("quantize_per_channel", &quantize_per_channel_cpu);
  m.impl("dequantize_per_channel", &dequantize_per_channel_cpu);
}

}  // namespace torch_circle
