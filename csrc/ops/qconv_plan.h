// A prepacked quantized conv2d layer as three plain tensors (the form of qgemm_plan.h), built by
// circle_quant::conv2d_prepack and run by circle_quant::quantized_conv2d.
//
//   packed_weight  int8 2-D, the bytes of circle_quant::pack_conv_weights():
//                    general conv: [groups · ceil(OC/groups / 16) · 16, packed_k(K)], the groups'
//                                  GEMM blocks back to back (K = KH·KW·C/groups, (kh, kw, ic));
//                    depthwise:    [bytes / 64, 64]: the int32 tap pairs, then the int8 tap
//                                  quads (qconv.h).
//   params         int32 1-D: kConvPlanHeader header entries (geometry, activation and output
//                  parameters), then kPlanRows rows of OC entries: bias, weight zero point,
//                  column sum, fixed-point multiplier, shift. Groups are contiguous channel
//                  ranges, so per-channel rows cover every group.
//   multiplier     float32 [OC]: the output stage's float multipliers.
//
// The bias quantization and output stage come from make_gemm_plan() on the weight seen as an
// [OC, K] matrix, so conv and linear layers quantize them identically; the weight layout is the
// conv's own.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

#include "core/qconv.h"
#include "qgemm_plan.h"

namespace torch_circle {

constexpr int64_t kConvPlanHeader = 32;

struct ConvPlan : PlanLayer {
  circle_quant::ConvWeightsView weights;
  std::array<int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
};

// Checks the conv arguments of both ops (two entries each; stride, dilation ≥ 1; padding ≥ 0;
// groups ≥ 1). Errors name `op` and the argument.
void check_conv_args(const char* op, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                     int64_t groups);

// weight: [OC, C/groups, KH, KW] int8 or uint8; the other arguments as make_gemm_plan().
std::tuple<at::Tensor, at::Tensor, at::Tensor> make_conv_plan(
    const char* op, const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    int64_t groups, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype, double output_scale,
    int64_t output_zero_point, at::ScalarType output_dtype, double activation_min, double activation_max,
    c10::string_view requant);

// Empty tensors of the plan's shapes for a weight of this shape and geometry (the prepack op's
// Meta kernel; stride and dilation decide whether the plan carries Winograd weights).
std::tuple<at::Tensor, at::Tensor, at::Tensor> empty_conv_plan(const char* op, const at::Tensor& weight,
                                                               at::IntArrayRef stride, at::IntArrayRef dilation,
                                                               int64_t groups, const at::TensorOptions& options);

// Checks the tensors (dtypes, shapes, header) and returns views into them; the tensors must
// outlive the view.
ConvPlan read_conv_plan(const char* op, const at::Tensor& packed_weight, const at::Tensor& params,
                        const at::Tensor& multiplier);

// Output channels of a plan, from shapes and dtypes only (Meta kernels).
int64_t conv_plan_channels(const char* op, const at::Tensor& packed_weight, const at::Tensor& params,
                           const at::Tensor& multiplier);

// [N, OC, OH, OW] of quantized_conv2d, checking the input's rank and dtype and the arguments.
std::vector<c10::SymInt> conv2d_output_sizes(const char* op, const at::Tensor& input, int64_t out_channels,
                                             at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                             at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

}  // namespace torch_circle
