// Building and reading prepacked conv2d plans (qconv_plan.h).
#include "qconv_plan.h"

#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "common.h"
#include "qgemm_plan.h"

namespace torch_circle {
namespace {

// Header entries after magic and version (qgemm_plan.h); the conv magic number tells a conv plan
// from a linear one.
enum ConvPlanHeader : int64_t {
  kKindIndex = kPlanHeaderStartEntries,  // circle_quant::ConvKind
  kOutChannelsIndex,
  kGroupInChannelsIndex,
  kKernelHIndex,
  kKernelWIndex,
  kGroupsIndex,
  kStrideHIndex,
  kStrideWIndex,
  kPadHIndex,
  kPadWIndex,
  kDilationHIndex,
  kDilationWIndex,
  kConvLayerIndex,  // the layer block (PlanLayerEntry in qgemm_plan.h)
  kConvHeaderEntries = kConvLayerIndex + kPlanLayerEntries,
};
static_assert(kConvHeaderEntries <= kConvPlanHeader, "conv plan header overflows kConvPlanHeader");

constexpr int32_t kConvMagic = 0x56435143;  // "CQCV" in little-endian bytes
// 2: the output scale is stored; 3: the prepacked B; 4: Winograd weights after it
constexpr int32_t kConvVersion = 4;

void check_pair(const char* op, const char* name, at::IntArrayRef v, int64_t min) {
  TORCH_CHECK_VALUE(v.size() == 2, op, ": ", name, " must have 2 entries (height, width), got ", v);
  TORCH_CHECK_VALUE(v[0] >= min && v[1] >= min, op, ": ", name, " must be >= ", min, ", got ", v);
  // The plan stores them as int32 (and the kernels compute with them in int64 products).
  constexpr int64_t max = std::numeric_limits<int32_t>::max();
  TORCH_CHECK_VALUE(v[0] <= max && v[1] <= max, op, ": ", name, " must be <= ", max, ", got ", v);
}

circle_quant::ConvWeightShape weight_shape(const char* op, const at::Tensor& weight, int64_t groups) {
  TORCH_CHECK_TYPE(weight.scalar_type() == at::kChar || weight.scalar_type() == at::kByte, op,
                   ": weight must be an int8 or uint8 tensor, got ", dtype_name(weight.scalar_type()));
  TORCH_CHECK_VALUE(weight.dim() == 4, op,
                    ": weight must be 4-D [out_channels, in_channels / groups, kernel_h, kernel_w], "
                    "got shape ",
                    weight.sizes());
  TORCH_CHECK_VALUE(groups >= 1, op, ": groups must be >= 1, got ", groups);
  circle_quant::ConvWeightShape s;
  s.out_channels = weight.size(0);
  s.group_in_channels = weight.size(1);
  s.kernel_h = weight.size(2);
  s.kernel_w = weight.size(3);
  s.groups = groups;
  TORCH_CHECK_VALUE(s.out_channels > 0 && s.group_in_channels > 0 && s.kernel_h > 0 && s.kernel_w > 0, op,
                    ": weight shape ", weight.sizes(), " has an empty dimension");
  TORCH_CHECK_VALUE(s.out_channels % groups == 0, op, ": out_channels (", s.out_channels,
                    ") must be divisible by groups (", groups, ")");
  TORCH_CHECK_VALUE(
      s.reduction() <= circle_quant::kMaxGemmK, op, ": kernel_h * kernel_w * in_channels / groups = ", s.reduction(),
      " exceeds the int8 kernels' limit of ", circle_quant::kMaxGemmK, " (int32 accumulators could overflow)");
  return s;
}

// Shape of packed_weight for these weights and prepacked B (general path: the groups' blocks,
// then the groups' prepacked B of `prepacked_bytes`, in whole rows).
std::array<int64_t, 2> packed_shape(const circle_quant::ConvWeightShape& s, size_t prepacked_bytes) {
  if (circle_quant::conv_kind(s) == circle_quant::ConvKind::kDepthwise) {
    // Two sections of whole 64-byte rows (qconv.h).
    return {static_cast<int64_t>(circle_quant::conv_packed_weight_bytes(s)) / 64, 64};
  }
  const int64_t nr = static_cast<int64_t>(circle_quant::kGemmNr);
  const int64_t blocks = (s.group_out_channels() + nr - 1) / nr;
  const int64_t width = circle_quant::packed_k(s.reduction());
  return {s.groups * blocks * nr + prepacked_rows(prepacked_bytes, width), width};
}

// Bytes of the active ISA's prepacked B for these weights (0 for depthwise).
size_t active_prepacked_bytes(const char* op, const circle_quant::ConvWeightShape& s) {
  return core_call(op, [&] {
    return circle_quant::conv_prepacked_b_bytes(circle_quant::prepacked_b_layout(circle_quant::active_isa()), s);
  });
}

// Bytes of Winograd weights a plan of this layout, shape and geometry carries after its prepacked
// B (qconv.h): only where qconv2d() can run them (stride 1, dilation 1).
size_t plan_winograd_bytes(int32_t layout, const circle_quant::ConvWeightShape& s, int64_t stride_h, int64_t stride_w,
                           int64_t dilation_h, int64_t dilation_w) {
  const bool runs = circle_quant::conv_winograd_layout(layout) && circle_quant::conv_winograd_shape(s) &&
                    stride_h == 1 && stride_w == 1 && dilation_h == 1 && dilation_w == 1;
  return runs ? circle_quant::winograd_weight_bytes(s) : 0;
}

}  // namespace

void check_conv_args(const char* op, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                     int64_t groups) {
  check_pair(op, "stride", stride, 1);
  check_pair(op, "padding", padding, 0);
  check_pair(op, "dilation", dilation, 1);
  TORCH_CHECK_VALUE(groups >= 1, op, ": groups must be >= 1, got ", groups);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> empty_conv_plan(const char* op, const at::Tensor& weight,
                                                               at::IntArrayRef stride, at::IntArrayRef dilation,
                                                               int64_t groups, const at::TensorOptions& options) {
  // The same checks and shapes as weight_shape() / packed_shape(), on symbolic sizes so that
  // tracing with dynamic shapes works too.
  TORCH_CHECK_TYPE(weight.scalar_type() == at::kChar || weight.scalar_type() == at::kByte, op,
                   ": weight must be an int8 or uint8 tensor, got ", dtype_name(weight.scalar_type()));
  TORCH_CHECK_VALUE(weight.dim() == 4, op,
                    ": weight must be 4-D [out_channels, in_channels / groups, kernel_h, kernel_w], "
                    "got shape ",
                    weight.sym_sizes());
  TORCH_CHECK_VALUE(groups >= 1, op, ": groups must be >= 1, got ", groups);
  const auto sz = weight.sym_sizes();
  const c10::SymInt& oc = sz[0];
  const c10::SymInt& cg = sz[1];
  TORCH_CHECK_VALUE(oc > 0 && cg > 0 && sz[2] > 0 && sz[3] > 0, op, ": weight shape ", sz, " has an empty dimension");
  TORCH_CHECK_VALUE(oc % groups == 0, op, ": out_channels (", oc, ") must be divisible by groups (", groups, ")");
  const c10::SymInt taps = sz[2] * sz[3];
  const c10::SymInt k = taps * cg;
  TORCH_CHECK_VALUE(k <= circle_quant::kMaxGemmK, op, ": kernel_h * kernel_w * in_channels / groups = ", k,
                    " exceeds the int8 kernels' limit of ", circle_quant::kMaxGemmK,
                    " (int32 accumulators could overflow)");
  const int64_t nr = static_cast<int64_t>(circle_quant::kGemmNr);
  const int64_t align = circle_quant::kDepthwiseChannelAlign;
  std::vector<c10::SymInt> packed;
  if (cg == 1 && oc == groups) {
    // conv_packed_weight_bytes() / 64: the int32 pairs, then the 256-byte quad blocks.
    const int64_t quad = circle_quant::kDepthwiseQuadChannels;
    const c10::SymInt pairs_rows = (taps + 1) / 2 * ((oc + (align - 1)) / align * align) * 4 / 64;
    const c10::SymInt quads_rows = (taps + 3) / 4 * ((oc + (quad - 1)) / quad) * 4;
    packed = {pairs_rows + quads_rows, c10::SymInt(64)};
  } else {
    const int64_t kr = static_cast<int64_t>(circle_quant::kGemmKr);
    packed = {(oc / groups + (nr - 1)) / nr * nr * groups, (k + (kr - 1)) / kr * kr};
    const int32_t layout = circle_quant::prepacked_b_layout(circle_quant::active_isa());
    if (layout != 0) {
      // The prepacked B's size is the kernel's (working_b_block_stride): weights are constants,
      // so their sizes are concrete here.
      circle_quant::ConvWeightShape s;
      s.out_channels = oc.guard_int(__FILE__, __LINE__);
      s.group_in_channels = cg.guard_int(__FILE__, __LINE__);
      s.kernel_h = sz[2].guard_int(__FILE__, __LINE__);
      s.kernel_w = sz[3].guard_int(__FILE__, __LINE__);
      s.groups = groups;
      const size_t extra = active_prepacked_bytes(op, s) +
                           plan_winograd_bytes(layout, s, stride[0], stride[1], dilation[0], dilation[1]);
      const std::array<int64_t, 2> shape = packed_shape(s, extra);
      packed = {c10::SymInt(shape[0]), c10::SymInt(shape[1])};
    }
  }
  return {at::empty_symint(packed, options.dtype(at::kChar)),
          at::empty_symint({oc * kPlanRows + kConvPlanHeader}, options.dtype(at::kInt)),
          at::empty_symint({oc}, options.dtype(at::kFloat))};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> make_conv_plan(
    const char* op, const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    int64_t groups, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype, double output_scale,
    int64_t output_zero_point, at::ScalarType output_dtype, double activation_min, double activation_max,
    c10::string_view requant) {
  check_conv_args(op, stride, padding, dilation, groups);
  const auto s = weight_shape(op, weight, groups);
  TORCH_CHECK_VALUE(weight.device().is_cpu(), op, ": weight must be a CPU tensor, got ", weight.device());
  const int64_t oc = s.out_channels, k = s.reduction();

  // Bias, output stage and every argument check as the linear layer's: the weight as [OC, K]
  // rows in the (kh, kw, ic) order of the patches.
  const auto rows = weight.permute({0, 2, 3, 1}).contiguous().view({oc, k});
  const auto [gemm_packed, gemm_params, multiplier] =
      make_gemm_plan(op, rows, weight_scale, weight_zero_point, bias, input_scale, input_zero_point, input_dtype,
                     output_scale, output_zero_point, output_dtype, activation_min, activation_max, requant);
  const GemmPlan gemm = read_gemm_plan(op, gemm_packed, gemm_params, multiplier);

  auto [packed, params, unused_multiplier] = empty_conv_plan(op, weight, stride, dilation, groups, weight.options());
  const size_t prepacked_bytes = active_prepacked_bytes(op, s);
  const int32_t layout = prepacked_bytes > 0 ? circle_quant::prepacked_b_layout(circle_quant::active_isa()) : 0;
  const size_t winograd_bytes = plan_winograd_bytes(layout, s, stride[0], stride[1], dilation[0], dilation[1]);
  const size_t packed_bytes = circle_quant::conv_packed_weight_bytes(s);
  const std::array<int64_t, 2> shape = packed_shape(s, prepacked_bytes + winograd_bytes);
  TORCH_INTERNAL_ASSERT(packed.size(0) == shape[0] && packed.size(1) == shape[1] &&
                            packed.numel() >= static_cast<int64_t>(packed_bytes + prepacked_bytes + winograd_bytes),
                        op, ": packed_weight's shape disagrees with the core's packed size");
  packed.zero_();
  params.zero_();
  int32_t* p = params.data_ptr<int32_t>();
  int32_t* row_base = p + kConvPlanHeader;
  auto row = [&](int64_t r) { return row_base + r * oc; };

  const auto w = weight.contiguous();
  const auto wz = weight_zero_point.to(at::kInt).contiguous().view(-1);
  const bool has_wzp = core_call(op, [&] {
    return circle_quant::pack_conv_weights(w.data_ptr(), w.scalar_type() == at::kByte, s, wz.data_ptr<int32_t>(),
                                           static_cast<size_t>(wz.numel()), packed.data_ptr<int8_t>(),
                                           row(kZeroPointRow), row(kColumnSumRow));
  });
  int8_t* bytes = packed.data_ptr<int8_t>();
  circle_quant::prepack_conv_b(layout, s, bytes, bytes + packed_bytes);
  if (winograd_bytes > 0) {
    circle_quant::ConvWeightsView view;
    view.shape = s;
    view.kind = circle_quant::conv_kind(s);
    view.data = bytes;
    view.zero_point = row(kZeroPointRow);
    view.column_sum = row(kColumnSumRow);
    circle_quant::pack_winograd_weights(view, reinterpret_cast<int16_t*>(bytes + packed_bytes + prepacked_bytes));
  }
  if (gemm.bias != nullptr) std::memcpy(row(kBiasRow), gemm.bias, sizeof(int32_t) * oc);
  std::memcpy(row(kFixedMultRow), gemm.stage.fixed_multiplier, sizeof(int32_t) * oc);
  std::memcpy(row(kFixedShiftRow), gemm.stage.fixed_shift, sizeof(int32_t) * oc);

  p[kMagicIndex] = kConvMagic;
  p[kVersionIndex] = kConvVersion;
  p[kKindIndex] = static_cast<int32_t>(circle_quant::conv_kind(s));
  p[kOutChannelsIndex] = static_cast<int32_t>(oc);
  p[kGroupInChannelsIndex] = static_cast<int32_t>(s.group_in_channels);
  p[kKernelHIndex] = static_cast<int32_t>(s.kernel_h);
  p[kKernelWIndex] = static_cast<int32_t>(s.kernel_w);
  p[kGroupsIndex] = static_cast<int32_t>(groups);
  p[kStrideHIndex] = static_cast<int32_t>(stride[0]);
  p[kStrideWIndex] = static_cast<int32_t>(stride[1]);
  p[kPadHIndex] = static_cast<int32_t>(padding[0]);
  p[kPadWIndex] = static_cast<int32_t>(padding[1]);
  p[kDilationHIndex] = static_cast<int32_t>(dilation[0]);
  p[kDilationWIndex] = static_cast<int32_t>(dilation[1]);
  PlanLayer layer = gemm;  // the linear plan's activation, output stage and bias
  layer.has_weight_zero_point = has_wzp;
  layer.prepacked_layout = layout;
  write_plan_layer(p + kConvLayerIndex, layer);
  return {packed, params, multiplier};
}

int64_t conv_plan_channels(const char* op, const at::Tensor& packed_weight, const at::Tensor& params,
                           const at::Tensor& multiplier) {
  return plan_channels(op, "conv2d_prepack", "conv2d_prepack result", kConvPlanHeader, packed_weight, params,
                       multiplier);
}

ConvPlan read_conv_plan(const char* op, const at::Tensor& packed_weight, const at::Tensor& params,
                        const at::Tensor& multiplier) {
  const int64_t oc = conv_plan_channels(op, packed_weight, params, multiplier);
  check_plan_header(op, "conv2d", "circle_quant::conv2d_prepack", packed_weight, params, multiplier, kConvMagic,
                    kConvVersion);
  const int32_t* p = params.const_data_ptr<int32_t>();

  ConvPlan plan;
  auto& w = plan.weights;
  w.shape.out_channels = p[kOutChannelsIndex];
  w.shape.group_in_channels = p[kGroupInChannelsIndex];
  w.shape.kernel_h = p[kKernelHIndex];
  w.shape.kernel_w = p[kKernelWIndex];
  w.shape.groups = p[kGroupsIndex];
  const bool sane = w.shape.out_channels == oc && w.shape.group_in_channels > 0 && w.shape.kernel_h > 0 &&
                    w.shape.kernel_w > 0 && w.shape.groups > 0 && oc % w.shape.groups == 0 &&
                    w.shape.reduction() <= circle_quant::kMaxGemmK;
  TORCH_CHECK_VALUE(sane, op, ": params header describes an invalid conv (", w.shape.out_channels, " output channels, ",
                    w.shape.group_in_channels, " input channels per group, kernel ", w.shape.kernel_h, "x",
                    w.shape.kernel_w, ", groups ", w.shape.groups, ")");
  w.kind = circle_quant::conv_kind(w.shape);
  const int32_t* rows = p + kConvPlanHeader;
  static_cast<PlanLayer&>(plan) =
      read_plan_layer(op, p + kConvLayerIndex, rows, oc, multiplier.const_data_ptr<float>());
  const size_t prepacked_bytes =
      core_call(op, [&] { return circle_quant::conv_prepacked_b_bytes(plan.prepacked_layout, w.shape); });
  const int32_t stride_h = p[kStrideHIndex], stride_w = p[kStrideWIndex];
  const int32_t dilation_h = p[kDilationHIndex], dilation_w = p[kDilationWIndex];
  const size_t winograd_bytes =
      plan_winograd_bytes(plan.prepacked_layout, w.shape, stride_h, stride_w, dilation_h, dilation_w);
  const auto ps = packed_shape(w.shape, prepacked_bytes + winograd_bytes);
  TORCH_CHECK_VALUE(
      p[kKindIndex] == static_cast<int32_t>(w.kind) && packed_weight.size(0) == ps[0] && packed_weight.size(1) == ps[1],
      op, ": packed_weight ", packed_weight.sizes(), " does not match the params header (expected [", ps[0], ", ",
      ps[1], "] with ", prepacked_bytes, " bytes of prepacked B and ", winograd_bytes, " of Winograd weights, layout ",
      plan.prepacked_layout, ")");

  w.data = packed_weight.const_data_ptr<int8_t>();
  w.zero_point = rows + kZeroPointRow * oc;
  w.column_sum = rows + kColumnSumRow * oc;
  w.has_weight_zero_point = plan.has_weight_zero_point;
  if (prepacked_bytes > 0 && prepacked_b_in_use(plan.prepacked_layout)) {
    w.prepacked_b = w.data + circle_quant::conv_packed_weight_bytes(w.shape);
    w.prepacked_layout = plan.prepacked_layout;
    if (!circle_quant::check_prepacked_conv_b(w.prepacked_layout, w.shape, w.prepacked_b)) prepacked_b_tampered(op);
    // Winograd weights are plain numbers (no addresses come from them): no check needed.
    if (winograd_bytes > 0) {
      w.winograd = reinterpret_cast<const int16_t*>(w.prepacked_b + prepacked_bytes);
    }
  }
  plan.stride = {p[kStrideHIndex], p[kStrideWIndex]};
  plan.padding = {p[kPadHIndex], p[kPadWIndex]};
  plan.dilation = {p[kDilationHIndex], p[kDilationWIndex]};
  return plan;
}

std::vector<c10::SymInt> conv2d_output_sizes(const char* op, const at::Tensor& input, int64_t out_channels,
                                             at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                             at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  check_pair(op, "kernel_size", kernel_size, 1);
  check_conv_args(op, stride, padding, dilation, groups);
  TORCH_CHECK_TYPE(input.scalar_type() == at::kByte || input.scalar_type() == at::kChar, op,
                   ": input must be a uint8 or int8 tensor, got ", dtype_name(input.scalar_type()));
  TORCH_CHECK_VALUE(input.dim() == 4, op, ": input must be 4-D [N, C, H, W], got shape ", input.sym_sizes());
  const auto sizes = input.sym_sizes();
  TORCH_CHECK_VALUE(sizes[1] % groups == 0, op, ": input has ", sizes[1], " channels, not divisible by groups (",
                    groups, ")");
  std::vector<c10::SymInt> out{sizes[0], c10::SymInt(out_channels)};
  for (int i = 0; i < 2; ++i) {
    const c10::SymInt in = sizes[2 + i];
    const int64_t reach = dilation[i] * (kernel_size[i] - 1) + 1;
    const c10::SymInt padded = in + 2 * padding[i];
    TORCH_CHECK_VALUE(padded >= reach, op, ": the ", i == 0 ? "height" : "width", " ", in, " plus padding ",
                      2 * padding[i], " is smaller than the dilated kernel (", reach, ")");
    out.push_back((padded - reach) / stride[i] + 1);
  }
  return out;
}

}  // namespace torch_circle
