// CPU kernels of the quantized conv2d ops: conv2d_prepack builds the plan (qconv_plan.h);
// quantized_conv2d checks the input against it and runs circle_quant::qconv2d() over ranges of
// output pixels and channels on the intra-op threads (output_split.h: channels first where the
// weights are wide). Each output element is computed by the same instructions whatever range a
// thread gets, so results do not depend on the thread count.
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>

#include "../common.h"
#include "../fused_add.h"
#include "../output_split.h"
#include "../qconv_plan.h"
#include "../quantized_conv2d.h"
#include "core/qconv.h"

namespace torch_circle {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_prepack_cpu(
    const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    int64_t groups, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype, double output_scale,
    int64_t output_zero_point, at::ScalarType output_dtype, c10::optional<double> activation_min,
    c10::optional<double> activation_max, c10::string_view requant) {
  return make_conv_plan("circle_quant::conv2d_prepack", weight, weight_scale, weight_zero_point, bias, stride, padding,
                        dilation, groups, input_scale, input_zero_point, input_dtype, output_scale, output_zero_point,
                        output_dtype, activation_min.value_or(-std::numeric_limits<double>::infinity()),
                        activation_max.value_or(std::numeric_limits<double>::infinity()), requant);
}

// The input in channels-last memory, which the kernels walk. A model's first conv usually gets
// NCHW bytes of a few channels (the quantized image), which circle_quant::nchw_to_nhwc_bytes
// rearranges several times faster than ATen's copy; other layouts take ATen's.
at::Tensor channels_last_input(const at::Tensor& input) {
  constexpr int64_t kOwnCopyMaxChannels = 4;
  if (input.is_contiguous(at::MemoryFormat::ChannelsLast)) return input;
  if (!input.is_contiguous() || input.size(1) > kOwnCopyMaxChannels || input.element_size() != 1) {
    return input.contiguous(at::MemoryFormat::ChannelsLast);
  }
  auto out = empty_output(input.sym_sizes(), input.options(), at::MemoryFormat::ChannelsLast);
  const int64_t channels = input.size(1), pixels = input.size(2) * input.size(3);
  const auto* src = static_cast<const uint8_t*>(input.const_data_ptr());
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  // Flat over (image, pixel): each task does whole pixels of one or more images.
  at::parallel_for(0, input.size(0) * pixels, kGrainSize, [&](int64_t begin, int64_t end) {
    while (begin < end) {
      const int64_t n = begin / pixels, p0 = begin % pixels, p1 = std::min(pixels, p0 + (end - begin));
      const size_t image = static_cast<size_t>(n * channels * pixels);
      circle_quant::nchw_to_nhwc_bytes(src + image, channels, pixels, p0, p1, dst + image);
      begin += p1 - p0;
    }
  });
  return out;
}

void check_matches_plan(const char* op, const char* name, at::IntArrayRef given, const std::array<int64_t, 2>& packed) {
  TORCH_CHECK_VALUE(given[0] == packed[0] && given[1] == packed[1], op, ": ", name, " ", given,
                    " differs from the prepacked weight's [", packed[0], ", ", packed[1], "]");
}

at::Tensor run_conv2d(const char* op, const at::Tensor& input, const at::Tensor& packed_weight,
                      const at::Tensor& params, const at::Tensor& multiplier, at::IntArrayRef kernel_size,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      at::ScalarType output_dtype, const FusedAddArgs* add) {
  auto out = quantized_conv2d_allocate(input, packed_weight, params, multiplier, kernel_size, stride, padding, dilation,
                                       groups, output_dtype);
  ConvPlan plan = read_conv_plan(op, packed_weight, params, multiplier);
  const auto& shape = plan.weights.shape;
  check_matches_plan(op, "kernel_size", kernel_size, {shape.kernel_h, shape.kernel_w});
  check_matches_plan(op, "stride", stride, plan.stride);
  check_matches_plan(op, "padding", padding, plan.padding);
  check_matches_plan(op, "dilation", dilation, plan.dilation);
  TORCH_CHECK_VALUE(groups == shape.groups, op, ": groups ", groups, " differs from the prepacked weight's ",
                    shape.groups);
  TORCH_CHECK_TYPE(output_dtype == plan.output_dtype, op, ": output_dtype ", dtype_name(output_dtype),
                   " differs from the prepacked output_dtype ", dtype_name(plan.output_dtype));
  const at::ScalarType input_dtype = plan.input_signed ? at::kChar : at::kByte;
  TORCH_CHECK_TYPE(input.scalar_type() == input_dtype, op, ": input must be ", dtype_name(input_dtype),
                   " like the prepacked weight's input_dtype, got ", dtype_name(input.scalar_type()));
  TORCH_CHECK_VALUE(input.size(1) == shape.in_channels(), op, ": input has ", input.size(1),
                    " channels but the prepacked weight expects ", shape.in_channels(), " (", shape.groups,
                    " groups of ", shape.group_in_channels, ")");
  TORCH_CHECK_VALUE(input.device().is_cpu(), op, ": input must be a CPU tensor, got ", input.device());

  const auto x = channels_last_input(input);
  circle_quant::Conv2dGeometry geo;
  geo.batch = x.size(0);
  geo.in_h = x.size(2);
  geo.in_w = x.size(3);
  geo.stride_h = stride[0];
  geo.stride_w = stride[1];
  geo.pad_h = padding[0];
  geo.pad_w = padding[1];
  geo.dilation_h = dilation[0];
  geo.dilation_w = dilation[1];
  FusedAdd fused;
  if (add != nullptr) {
    fused = make_fused_add(op, plan.stage, plan.output_scale, out, *add);
    plan.stage.residual = &fused.params;
  }
  const int64_t pixels = out.size(0) * out.size(2) * out.size(3);
  if (pixels == 0) return out;

  const circle_quant::ConvActivations activations{x.const_data_ptr(), plan.input_signed, plan.input_zero_point};
  void* out_data = out.data_ptr();
  const int64_t out_h = out.size(2), out_w = out.size(3), out_channels = shape.out_channels;
  const auto run = [&](int64_t begin, int64_t end, int64_t channel_begin, int64_t channel_end) {
    circle_quant::qconv2d(activations, geo, plan.weights, plan.bias, plan.stage, begin, end, channel_begin, channel_end,
                          out_data);
  };
  const int64_t macs = pixels * std::max<int64_t>(1, circle_quant::qconv_macs_per_pixel(shape));
  const int64_t tasks = std::min<int64_t>(at::get_num_threads(), macs / kMinTaskMacs);
  if (tasks <= 1 || at::in_parallel_region()) {
    run(0, pixels, 0, out_channels);
    return out;
  }
  // Rows of the split: Winograd tiles cover two output rows, so its ranges are whole pairs of rows
  // (each tile computed once); other paths take ranges of pixels, counted in tiles of kRowTile.
  const bool row_pairs = circle_quant::conv_winograd_runs(plan.weights, geo, circle_quant::active_isa());
  const int64_t units =
      row_pairs ? circle_quant::qconv2d_row_pair_count(geo.batch, out_h) : (pixels + kRowTile - 1) / kRowTile;
  const int64_t blocks = circle_quant::qconv2d_splits_channels(plan.weights) ? (out_channels + kNr - 1) / kNr : 1;
  const OutputSplit split = split_output(tasks, blocks, units);
  const auto pixel_of = [&](int64_t unit) {
    return std::min(pixels, row_pairs ? circle_quant::qconv2d_row_pair_start(unit, out_h, out_w) : unit * kRowTile);
  };
  parallel_over_split(split, units, blocks, [&](int64_t u0, int64_t u1, int64_t b0, int64_t b1) {
    run(pixel_of(u0), pixel_of(u1), b0 * kNr, blocks == 1 ? out_channels : std::min(out_channels, b1 * kNr));
  });
  return out;
}

at::Tensor quantized_conv2d_cpu(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& params,
                                const at::Tensor& multiplier, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                at::ScalarType output_dtype) {
  return run_conv2d("circle_quant::quantized_conv2d", input, packed_weight, params, multiplier, kernel_size, stride,
                    padding, dilation, groups, output_dtype, nullptr);
}

at::Tensor quantized_conv2d_add_cpu(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& params,
                                    const at::Tensor& multiplier, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                    at::ScalarType output_dtype, const at::Tensor& other, double other_scale,
                                    int64_t other_zero_point, double output_scale, int64_t output_zero_point,
                                    c10::optional<double> activation_min, c10::optional<double> activation_max) {
  const FusedAddArgs add{other,          other_scale,   other_zero_point, output_scale, output_zero_point,
                         activation_min, activation_max};
  return run_conv2d("circle_quant::quantized_conv2d_add", input, packed_weight, params, multiplier, kernel_size, stride,
                    padding, dilation, groups, output_dtype, &add);
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{
  m.impl("conv2d_prepack", &conv2d_prepack_cpu);
  m.impl("quantized_conv2d", &quantized_conv2d_cpu);
  m.impl("quantized_conv2d_add", &quantized_conv2d_add_cpu);
}

}  // namespace torch_circle
