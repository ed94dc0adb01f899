// Autograd kernels of the fake-quantize ops: forward through the *_cachemask op (below the
// autograd key), backward multiplies the incoming gradient by the saved mask (straight-through
// estimator, clipped to the quantization range). scale and zero_point get no gradient.
#include <torch/autograd.h>
#include <torch/library.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

namespace torch_circle {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FakeQuantizePerTensor : public torch::autograd::Function<FakeQuantizePerTensor> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, double scale, int64_t zero_point,
                            int64_t quant_min, int64_t quant_max) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("circle_quant::_fake_quantize_per_tensor_cachemask", "")
            .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, double, int64_t, int64_t, int64_t)>();
    auto [out, mask] = op.call(input, scale, zero_point, quant_min, quant_max);
    ctx->save_for_backward({mask});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const auto mask = ctx->get_saved_variables()[0];
    return {at::mul(grad[0], mask), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class FakeQuantizePerChannel : public torch::autograd::Function<FakeQuantizePerChannel> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& scales,
                            const at::Tensor& zero_points, int64_t axis, int64_t quant_min, int64_t quant_max) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("circle_quant::_fake_quantize_per_channel_cachemask", "")
                         .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                   const at::Tensor&, int64_t, int64_t, int64_t)>();
    auto [out, mask] = op.call(input, scales, zero_points, axis, quant_min, quant_max);
    ctx->save_for_backward({mask});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const auto mask = ctx->get_saved_variables()[0];
    return {at::mul(grad[0], mask), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor fake_quantize_per_tensor_autograd(const at::Tensor& input, double scale, int64_t zero_point,
                                             int64_t quant_min, int64_t quant_max) {
  return FakeQuantizePerTensor::apply(input, scale, zero_point, quant_min, quant_max);
}

at::Tensor fake_quantize_per_channel_autograd(const at::Tensor& input, const at::Tensor& scales,
                                              const at::Tensor& zero_points, int64_t axis, int64_t quant_min,
                                              int64_t quant_max) {
  return FakeQuantizePerChannel::apply(input, scales, zero_points, axis, quant_min, quant_max);
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, Autograd, m)
{
  m.impl("fake_quantize_per_tensor", &fake_quantize_per_tensor_autograd);
  m.impl("fake_quantize_per_channel", &fake_quantize_per_channel_autograd);
}

}  // namespace torch_circle
