// CPU kernels of the fake-quantize ops.
#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "../fake_quantize.h"
#include "core/quantize.h"

namespace torch_circle {
namespace {

using TensorPair = std::tuple<at::Tensor, at::Tensor>;

// Fills out (and mask, when want_mask) for the per-tensor op.
TensorPair fake_quantize_per_tensor_impl(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                         int64_t quant_max, bool want_mask) {
  auto [out, mask] = fake_quantize_per_tensor_cachemask_allocate(input, scale, zero_point, quant_min, quant_max);
  const auto x = with_strides_of(input, out);
  const auto p = circle_quant::make_quantize_params(scale, zero_point, quant_min, quant_max);
  const float* xp = x.data_ptr<float>();
  float* yp = out.data_ptr<float>();
  auto* mp = want_mask ? reinterpret_cast<uint8_t*>(mask.data_ptr<bool>()) : nullptr;
  std::atomic<bool> nan{false};
  at::parallel_for(0, x.numel(), kGrainSize, [&](int64_t b, int64_t e) {
    if (!circle_quant::fake_quantize(xp + b, yp + b, mp ? mp + b : nullptr, e - b, p, static_cast<float>(scale))) {
      nan = true;
    }
  });
  if (nan) fail_nan("circle_quant::fake_quantize_per_tensor", input);
  return {out, mask};
}

TensorPair fake_quantize_per_channel_impl(const at::Tensor& input, const at::Tensor& scales,
                                          const at::Tensor& zero_points, int64_t axis, int64_t quant_min,
                                          int64_t quant_max, bool want_mask) {
  const char* op = "circle_quant::fake_quantize_per_channel";
  auto [out, mask] =
      fake_quantize_per_channel_cachemask_allocate(input, scales, zero_points, axis, quant_min, quant_max);
  axis = check_axis(op, input, axis);
  check_channel_param_values(op, scales, zero_points, quant_min, quant_max, /*integral_zero_points=*/true);
  const auto x = with_strides_of(input, out);
  const auto l = channel_layout(x, axis);
  const int64_t channels = scales.numel();
  // Parameters repeated once per element of a [channels, inner] block, so every block is one
  // channelwise call whatever the layout.
  const auto s = scales.to(at::kFloat).contiguous();
  const auto z = zero_points.to(at::kFloat).contiguous();
  const int64_t block = channels * l.inner;
  std::vector<float> inv(block), zp(block), sc(block);
  for (int64_t c = 0; c < channels; ++c) {
    const float sv = s.data_ptr<float>()[c];
    for (int64_t i = 0; i < l.inner; ++i) {
      inv[c * l.inner + i] = static_cast<float>(1.0 / static_cast<double>(sv));
      zp[c * l.inner + i] = z.data_ptr<float>()[c];
      sc[c * l.inner + i] = sv;
    }
  }
  const auto bounds = circle_quant::make_quantize_params(1.0, 0, quant_min, quant_max);
  const float* xp = x.data_ptr<float>();
  float* yp = out.data_ptr<float>();
  auto* mp = want_mask ? reinterpret_cast<uint8_t*>(mask.data_ptr<bool>()) : nullptr;
  std::atomic<bool> nan{false};
  const int64_t grain = std::max<int64_t>(1, kGrainSize / std::max<int64_t>(1, block));
  at::parallel_for(0, l.outer, grain, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const int64_t off = o * block;
      if (!circle_quant::fake_quantize_channelwise(xp + off, yp + off, mp ? mp + off : nullptr, block, inv.data(),
                                                   zp.data(), sc.data(), bounds.qmin, bounds.qmax)) {
        nan = true;
      }
    }
  });
  if (nan) fail_nan(op, input);
  return {out, mask};
}

at::Tensor fake_quantize_per_tensor_cpu(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_min,
                                        int64_t quant_max) {
  return std::get<0>(fake_quantize_per_tensor_impl(input, scale, zero_point, quant_min, quant_max, false));
}

TensorPair fake_quantize_per_tensor_cachemask_cpu(const at::Tensor& input, double scale, int64_t zero_point,
                                                  int64_t quant_min, int64_t quant_max) {
  return fake_quantize_per_tensor_impl(input, scale, zero_point, quant_min, quant_max, true);
}

at::Tensor fake_quantize_per_channel_cpu(const at::Tensor& input, const at::Tensor& scales,
                                         const at::Tensor& zero_points, int64_t axis, int64_t quant_min,
                                         int64_t quant_max) {
  return std::get<0>(fake_quantize_per_channel_impl(input, scales, zero_points, axis, quant_min, quant_max, false));
}

TensorPair fake_quantize_per_channel_cachemask_cpu(const at::Tensor& input, const at::Tensor& scales,
                                                   const at::Tensor& zero_points, int64_t axis, int64_t quant_min,
                                                   int64_t quant_max) {
  return fake_quantize_per_channel_impl(input, scales, zero_points, axis, quant_min, quant_max, true);
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{
  m.impl("fake_quantize_per_tensor", &fake_quantize_per_tensor_cpu);
  m.impl("fake_quantize_per_channel", &fake_quantize_per_channel_cpu);
  m.impl("_fake_quantize_per_tensor_cachemask", &fake_quantize_per_tensor_cachemask_cpu);
  m.impl("_fake_quantize_per_channel_cachemask", &fake_quantize_per_channel_cachemask_cpu);
}

}  // namespace torch_circle
