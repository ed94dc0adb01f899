// A prepacked quantized GEMM layer as three tensors (qgemm_plan.h): building it once, reading it
// per call.
//
// params (int32) = header (kPlanHeader entries, below) followed by kPlanRows rows of N entries:
//   row 0  bias          int32 at scale float(sa)·float(sb[n]) (0 without a bias)
//   row 1  zero_point    weight zero point in the stored int8 domain (PackedWeightsView)
//   row 2  column_sum    Σk stored weight (PackedWeightsView)
//   row 3  fixed_mult    M0 of the fixed-point multiplier (0 in float mode)
//   row 4  fixed_shift   its exponent
// Everything a call needs is in the header, so read_gemm_plan() checks O(1) entries, never the
// per-channel data (that was validated when the plan was built).
#include "qgemm_plan.h"

#include <c10/util/string_view.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "core/quantize_constants.h"

namespace torch_circle {
namespace {

// Header entries after magic and version (qgemm_plan.h).
enum GemmPlanHeader : int64_t {
  kChannelsIndex = kPlanHeaderStartEntries,  // N
  kReductionIndex,                           // K
  kGemmLayerIndex,                           // the layer block (PlanLayerEntry)
  kGemmHeaderEntries = kGemmLayerIndex + kPlanLayerEntries,
};
static_assert(kGemmHeaderEntries == kPlanHeader, "header layout and kPlanHeader disagree");

constexpr int32_t kGemmMagic = 0x50475143;  // "CQGP" in little-endian bytes
constexpr int32_t kGemmVersion = 3;         // 2: the output scale is stored; 3: the prepacked B

// Output stage entries, relative to the stage's first header entry.
enum OutputStageEntry : int64_t {
  kTypeEntry = 0,   // circle_quant::OutputType
  kModeEntry,       // circle_quant::RequantMode
  kZeroPointEntry,  // zy
  kQminEntry,       // integer clamp (fused activation ∩ type range)
  kQmaxEntry,
  kFminBitsEntry,  // float clamp (float output), as IEEE bits
  kFmaxBitsEntry,
  kScaleBitsEntry,  // sy as float bits (1 for float output): what a fused residual add needs
};
static_assert(kScaleBitsEntry + 1 == kOutputStageEntries, "output stage entries disagree");

int32_t float_bits(float f) {
  int32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

float bits_float(int32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// 1 entry (per tensor) or n entries (per channel), 0-D or 1-D.
void check_param_count(const char* op, const at::Tensor& t, const char* name, int64_t n) {
  TORCH_CHECK_VALUE(t.dim() <= 1, op, ": ", name, " must be 0-D or 1-D, got shape ", t.sizes());
  TORCH_CHECK_VALUE(t.numel() == 1 || t.numel() == n, op, ": ", name, " has ", t.numel(),
                    " entries; expected 1 (per tensor) or ", n, " (one per output channel)");
}

// make_gemm_plan()'s arguments once checked: every argument error is raised before any work.
struct GemmPlanArgs {
  int64_t n = 0, k = 0;
  int64_t input_min = 0, input_max = 0;  // the activation type's range
  circle_quant::OutputType output_type = circle_quant::OutputType::kUint8;
  circle_quant::RequantMode mode = circle_quant::RequantMode::kFloat;
  at::Tensor bias;               // float32 [N], finite; undefined without a bias
  at::Tensor weight_scale;       // float32, 1 or N entries, finite and > 0
  at::Tensor weight_zero_point;  // int32, 1 or N entries
};

GemmPlanArgs check_gemm_plan_args(const char* op, const at::Tensor& weight, const at::Tensor& weight_scale,
                                  const at::Tensor& weight_zero_point, const c10::optional<at::Tensor>& bias,
                                  double input_scale, int64_t input_zero_point, at::ScalarType input_dtype,
                                  double output_scale, at::ScalarType output_dtype, double activation_min,
                                  double activation_max, c10::string_view requant) {
  GemmPlanArgs args;
  TORCH_CHECK_TYPE(weight.scalar_type() == at::kChar || weight.scalar_type() == at::kByte, op,
                   ": weight must be an int8 or uint8 tensor, got ", dtype_name(weight.scalar_type()));
  TORCH_CHECK_VALUE(weight.dim() == 2, op, ": weight must be 2-D [out_features, in_features], got shape ",
                    weight.sizes());
  TORCH_CHECK_VALUE(weight.device().is_cpu(), op, ": weight must be a CPU tensor, got ", weight.device());
  const int64_t n = weight.size(0), k = weight.size(1);
  TORCH_CHECK_VALUE(n > 0, op, ": weight has no output channels");
  TORCH_CHECK_VALUE(k <= circle_quant::kMaxGemmK, op, ": in_features = ", k, " exceeds the int8 GEMM's limit of ",
                    circle_quant::kMaxGemmK, " (int32 accumulators could overflow)");
  args.n = n;
  args.k = k;

  TORCH_CHECK_TYPE(at::isFloatingType(weight_scale.scalar_type()), op, ": weight_scale must be a float tensor, got ",
                   dtype_name(weight_scale.scalar_type()));
  check_param_count(op, weight_scale, "weight_scale", n);
  TORCH_CHECK_TYPE(at::isIntegralType(weight_zero_point.scalar_type(), /*includeBool=*/false), op,
                   ": weight_zero_point must be an integer tensor, got ", dtype_name(weight_zero_point.scalar_type()));
  check_param_count(op, weight_zero_point, "weight_zero_point", n);

  TORCH_CHECK_TYPE(input_dtype == at::kByte || input_dtype == at::kChar, op,
                   ": input_dtype must be torch.uint8 or torch.int8, got ", dtype_name(input_dtype));
  const int64_t in_lo = input_dtype == at::kByte ? 0 : -128, in_hi = input_dtype == at::kByte ? 255 : 127;
  TORCH_CHECK_VALUE(input_zero_point >= in_lo && input_zero_point <= in_hi, op, ": input_zero_point ", input_zero_point,
                    " is outside ", dtype_name(input_dtype), "'s range [", in_lo, ", ", in_hi, "]");
  TORCH_CHECK_VALUE(std::isfinite(input_scale) && input_scale > 0, op, ": input_scale must be finite and > 0, got ",
                    input_scale);
  args.input_min = in_lo;
  args.input_max = in_hi;
  args.output_type = output_type(op, output_dtype);
  args.mode = requant_mode(op, requant);
  if (args.output_type != circle_quant::OutputType::kFloat) {
    TORCH_CHECK_VALUE(std::isfinite(output_scale) && output_scale > 0, op,
                      ": output_scale must be finite and > 0, got ", output_scale);
  }
  TORCH_CHECK_VALUE(!std::isnan(activation_min) && !std::isnan(activation_max) && activation_min <= activation_max, op,
                    ": activation_min (", activation_min, ") must not be greater than activation_max (", activation_max,
                    ")");

  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK_TYPE(at::isFloatingType(bias->scalar_type()), op, ": bias must be a float tensor, got ",
                     dtype_name(bias->scalar_type()));
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == n, op, ": bias must have shape [", n,
                      "] (one entry per output channel), got ", bias->sizes());
    args.bias = bias->to(at::kFloat).contiguous();
    const float* b = args.bias.data_ptr<float>();
    for (int64_t c = 0; c < n; ++c) {
      TORCH_CHECK_VALUE(std::isfinite(b[c]), op, ": bias[", c, "] = ", b[c],
                        " is not finite (NaN or Inf cannot be quantized)");
    }
  }

  args.weight_scale = weight_scale.to(at::kFloat).contiguous().view(-1);
  args.weight_zero_point = weight_zero_point.to(at::kInt).contiguous().view(-1);
  const float* ws_p = args.weight_scale.data_ptr<float>();
  for (int64_t c = 0; c < args.weight_scale.numel(); ++c) {
    TORCH_CHECK_VALUE(std::isfinite(ws_p[c]) && ws_p[c] > 0, op, ": weight_scale[", c, "] = ", ws_p[c],
                      " must be finite and > 0");
  }
  return args;
}

}  // namespace

circle_quant::OutputType output_type(const char* op, at::ScalarType dtype) {
  switch (dtype) {
    case at::kByte: return circle_quant::OutputType::kUint8;
    case at::kChar: return circle_quant::OutputType::kInt8;
    case at::kShort: return circle_quant::OutputType::kInt16;
    case at::kFloat: return circle_quant::OutputType::kFloat;
    default:
      TORCH_CHECK_TYPE(false, op, ": output_dtype must be torch.uint8, torch.int8, torch.int16 or ",
                       "torch.float32, got ", dtype_name(dtype));
  }
}

circle_quant::RequantMode requant_mode(const char* op, c10::string_view requant) {
  if (requant == "float") return circle_quant::RequantMode::kFloat;
  if (requant == "fixed_point") return circle_quant::RequantMode::kFixedPoint;
  TORCH_CHECK_VALUE(false, op, ": requant must be \"float\" or \"fixed_point\", got \"",
                    std::string(requant.data(), requant.size()), "\"");
}

at::ScalarType output_scalar_type(circle_quant::OutputType type) {
  switch (type) {
    case circle_quant::OutputType::kUint8: return at::kByte;
    case circle_quant::OutputType::kInt8: return at::kChar;
    case circle_quant::OutputType::kInt16: return at::kShort;
    case circle_quant::OutputType::kFloat: return at::kFloat;
  }
  return at::kFloat;
}

void write_output_stage(const circle_quant::OutputStage& stage, double output_scale, int32_t* fields) {
  fields[kTypeEntry] = static_cast<int32_t>(stage.type);
  fields[kModeEntry] = static_cast<int32_t>(stage.mode);
  fields[kZeroPointEntry] = stage.zero_point;
  fields[kQminEntry] = stage.qmin;
  fields[kQmaxEntry] = stage.qmax;
  fields[kFminBitsEntry] = float_bits(stage.fmin);
  fields[kFmaxBitsEntry] = float_bits(stage.fmax);
  fields[kScaleBitsEntry] =
      float_bits(stage.type == circle_quant::OutputType::kFloat ? 1.0f : static_cast<float>(output_scale));
}

circle_quant::OutputStage read_output_stage(const char* op, const int32_t* fields, const float* multiplier,
                                            const int32_t* fixed_multiplier, const int32_t* fixed_shift, int64_t n,
                                            float* output_scale) {
  // A plan is an input like any other (a state_dict or TorchScript file can carry an edited
  // one), so every value the kernels rely on for defined behaviour is checked on each call:
  // O(N), against the O(M·N·K) GEMM.
  const int32_t type = fields[kTypeEntry], mode = fields[kModeEntry];
  TORCH_CHECK_VALUE(type >= 0 && type <= 3 && (mode == 0 || mode == 1), op,
                    ": params has an invalid output type or requantization mode");
  circle_quant::OutputStage s;
  s.type = static_cast<circle_quant::OutputType>(type);
  s.mode = static_cast<circle_quant::RequantMode>(mode);
  s.multiplier = multiplier;
  s.fixed_multiplier = fixed_multiplier;
  s.fixed_shift = fixed_shift;
  s.zero_point = fields[kZeroPointEntry];
  s.qmin = fields[kQminEntry];
  s.qmax = fields[kQmaxEntry];
  s.fmin = bits_float(fields[kFminBitsEntry]);
  s.fmax = bits_float(fields[kFmaxBitsEntry]);
  *output_scale = bits_float(fields[kScaleBitsEntry]);
  const char* tampered = ": params was modified after prepacking (";
  if (s.type == circle_quant::OutputType::kFloat) {
    TORCH_CHECK_VALUE(!(s.fmin > s.fmax) && !std::isnan(s.fmin) && !std::isnan(s.fmax), op, tampered, "float clamp [",
                      s.fmin, ", ", s.fmax, "]); prepack the weights again");
  } else {
    const auto [lo, hi] = dtype_bounds(output_scalar_type(s.type));
    TORCH_CHECK_VALUE(s.qmin >= lo && s.qmax <= hi && s.qmin <= s.qmax && s.zero_point >= lo && s.zero_point <= hi &&
                          std::isfinite(*output_scale) && *output_scale > 0,
                      op, tampered, "output zero point ", s.zero_point, ", clamp [", s.qmin, ", ", s.qmax, "], scale ",
                      *output_scale, " for ", dtype_name(output_scalar_type(s.type)), "); prepack the weights again");
  }
  for (int64_t c = 0; c < n; ++c) {
    TORCH_CHECK_VALUE(std::isfinite(multiplier[c]) && multiplier[c] >= 0, op, tampered, "multiplier[", c,
                      "] = ", multiplier[c], "); prepack the weights again");
    // quantize_multiplier's exponents: a shift outside [-31, 30] is an undefined C++ shift.
    TORCH_CHECK_VALUE(fixed_shift[c] >= -31 && fixed_shift[c] <= 30 && fixed_multiplier[c] >= 0, op, tampered,
                      "fixed-point multiplier ", fixed_multiplier[c], " with shift ", fixed_shift[c], " of channel ", c,
                      "); prepack the weights again");
  }
  return s;
}

void write_plan_layer(int32_t* block, const PlanLayer& layer) {
  block[kInputZeroPointEntry] = layer.input_zero_point;
  block[kInputSignedEntry] = layer.input_signed ? 1 : 0;
  write_output_stage(layer.stage, layer.output_scale, block + kOutputStageEntry);
  block[kHasWeightZeroPointEntry] = layer.has_weight_zero_point ? 1 : 0;
  block[kHasBiasEntry] = layer.bias != nullptr ? 1 : 0;
  block[kPrepackedLayoutEntry] = layer.prepacked_layout;
}

int64_t prepacked_rows(size_t bytes, int64_t width) {
  if (bytes == 0) return 0;
  TORCH_INTERNAL_ASSERT(width > 0, "prepacked B in a packed_weight without columns");
  return static_cast<int64_t>((bytes + static_cast<size_t>(width) - 1) / static_cast<size_t>(width));
}

bool prepacked_b_in_use(int32_t layout) {
  return layout != 0 && layout == circle_quant::prepacked_b_layout(circle_quant::active_isa());
}

void prepacked_b_tampered(const char* op) {
  TORCH_CHECK_VALUE(false, op,
                    ": packed_weight was modified after prepacking (its prepacked B has an invalid tile count or "
                    "offset); prepack the weights again");
}

PlanLayer read_plan_layer(const char* op, const int32_t* block, const int32_t* rows, int64_t n,
                          const float* multiplier) {
  PlanLayer layer;
  layer.stage = read_output_stage(op, block + kOutputStageEntry, multiplier, rows + kFixedMultRow * n,
                                  rows + kFixedShiftRow * n, n, &layer.output_scale);
  layer.bias = block[kHasBiasEntry] != 0 ? rows + kBiasRow * n : nullptr;
  layer.input_zero_point = block[kInputZeroPointEntry];
  layer.input_signed = block[kInputSignedEntry] != 0;
  layer.has_weight_zero_point = block[kHasWeightZeroPointEntry] != 0;
  layer.prepacked_layout = block[kPrepackedLayoutEntry];
  check_plan_zero_points(op, layer.input_zero_point, layer.input_signed, rows + kZeroPointRow * n, n);
  layer.output_dtype = output_scalar_type(layer.stage.type);
  return layer;
}

int64_t plan_channels(const char* op, const char* producer, const char* what, int64_t header_size,
                      const at::Tensor& packed_weight, const at::Tensor& params, const at::Tensor& multiplier) {
  TORCH_CHECK_TYPE(packed_weight.scalar_type() == at::kChar, op, ": packed_weight must be int8 (from ", producer,
                   "), got ", dtype_name(packed_weight.scalar_type()));
  TORCH_CHECK_TYPE(params.scalar_type() == at::kInt, op, ": params must be int32 (from ", producer, "), got ",
                   dtype_name(params.scalar_type()));
  TORCH_CHECK_TYPE(multiplier.scalar_type() == at::kFloat, op, ": multiplier must be float32 (from ", producer,
                   "), got ", dtype_name(multiplier.scalar_type()));
  TORCH_CHECK_VALUE(packed_weight.dim() == 2 && params.dim() == 1 && multiplier.dim() == 1, op,
                    ": packed_weight, params, multiplier must be 2-D, 1-D, 1-D (", producer, "'s outputs), got shapes ",
                    packed_weight.sizes(), ", ", params.sizes(), ", ", multiplier.sizes());
  const int64_t n = multiplier.size(0);
  TORCH_CHECK_VALUE(params.size(0) == header_size + kPlanRows * n, op, ": params ", params.sizes(), " and multiplier ",
                    multiplier.sizes(), " do not belong to one ", what);
  return n;
}

void check_plan_header(const char* op, const char* kind, const char* producer, const at::Tensor& packed_weight,
                       const at::Tensor& params, const at::Tensor& multiplier, int32_t magic, int32_t version) {
  TORCH_CHECK_VALUE(packed_weight.is_contiguous() && params.is_contiguous() && multiplier.is_contiguous(), op,
                    ": the prepacked tensors must be contiguous");
  TORCH_CHECK_VALUE(packed_weight.device().is_cpu() && params.device().is_cpu() && multiplier.device().is_cpu(), op,
                    ": the prepacked tensors must be on the CPU");
  const int32_t* p = params.const_data_ptr<int32_t>();
  TORCH_CHECK_VALUE(params.numel() >= kPlanHeaderStartEntries && p[kMagicIndex] == magic, op, ": params is not a ",
                    kind, " plan (bad magic number); build it with ", producer);
  TORCH_CHECK_VALUE(p[kVersionIndex] == version, op, ": params has ", kind, " plan version ", p[kVersionIndex],
                    " but this build reads version ", version, "; prepack the weights again");
}

void check_plan_zero_points(const char* op, int32_t input_zero_point, bool input_signed,
                            const int32_t* weight_zero_point, int64_t n) {
  const auto [lo, hi] = dtype_bounds(input_signed ? at::kChar : at::kByte);
  TORCH_CHECK_VALUE(input_zero_point >= lo && input_zero_point <= hi, op,
                    ": params was modified after prepacking (input zero point ", input_zero_point,
                    "); prepack the weights again");
  for (int64_t c = 0; c < n; ++c) {
    TORCH_CHECK_VALUE(weight_zero_point[c] >= -128 && weight_zero_point[c] <= 127, op,
                      ": params was modified after prepacking (weight zero point ", weight_zero_point[c],
                      " of channel ", c, "); prepack the weights again");
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> make_gemm_plan(
    const char* op, const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype,
    double output_scale, int64_t output_zero_point, at::ScalarType output_dtype, double activation_min,
    double activation_max, c10::string_view requant) {
  // --- arguments -------------------------------------------------------------------------------
  const GemmPlanArgs args =
      check_gemm_plan_args(op, weight, weight_scale, weight_zero_point, bias, input_scale, input_zero_point,
                           input_dtype, output_scale, output_dtype, activation_min, activation_max, requant);
  const int64_t n = args.n, k = args.k, in_lo = args.input_min, in_hi = args.input_max;
  const at::Tensor &bias_f = args.bias, &ws = args.weight_scale, &wz = args.weight_zero_point;
  const float* ws_p = ws.data_ptr<float>();

  // --- packing -----------------------------------------------------------------------------------
  const int64_t kp = circle_quant::packed_k(k);
  const int64_t blocks =
      (n + static_cast<int64_t>(circle_quant::kGemmNr) - 1) / static_cast<int64_t>(circle_quant::kGemmNr);
  // The prepacked B of the kernel this ISA runs on many rows, after the packed blocks (qgemm_plan.h).
  const size_t prepacked_bytes = core_call(op, [&] {
    return circle_quant::prepacked_b_bytes(circle_quant::prepacked_b_layout(circle_quant::active_isa()), n, k);
  });
  const int32_t layout =
      prepacked_bytes > 0 ? circle_quant::prepacked_b_layout(circle_quant::active_isa()) : 0;  // none for K = 0
  const int64_t packed_rows = blocks * static_cast<int64_t>(circle_quant::kGemmNr);
  auto packed = at::zeros({packed_rows + prepacked_rows(prepacked_bytes, kp), kp}, at::kChar);
  auto params = at::zeros({kPlanHeader + kPlanRows * n}, at::kInt);
  auto multiplier = at::empty({n}, at::kFloat);
  int32_t* p = params.data_ptr<int32_t>();
  int32_t* rows = p + kPlanHeader;
  auto row = [&](int64_t r) { return rows + r * n; };

  const auto w = weight.contiguous();
  const bool has_wzp = core_call(op, [&] {
    return circle_quant::pack_weights(w.data_ptr(), w.scalar_type() == at::kByte, n, k, static_cast<size_t>(k),
                                      wz.data_ptr<int32_t>(), static_cast<size_t>(wz.numel()),
                                      packed.data_ptr<int8_t>(), row(kZeroPointRow), row(kColumnSumRow));
  });
  int8_t* packed_bytes = packed.data_ptr<int8_t>();
  circle_quant::prepack_gemm_b(layout, packed_bytes, n, k, packed_bytes + packed_rows * kp);

  circle_quant::OutputStage stage;
  core_call(op, [&] {
    circle_quant::compute_output_stage(args.output_type, args.mode, input_scale, ws_p, static_cast<size_t>(ws.numel()),
                                       n, output_scale, static_cast<int32_t>(output_zero_point), activation_min,
                                       activation_max, multiplier.data_ptr<float>(), row(kFixedMultRow),
                                       row(kFixedShiftRow), &stage);
    return 0;
  });

  // Bias as the Circle exporter stores it: both call circle_quant::quantize_bias (scale
  // float(sa)·float(sb[n]), the spec's x · (1 / scale), ties to even; docs/numerics.md). The kernels accumulate bias +
  // Σ (a − za)(b − zb) in int32, so a bias that could push that total past int32 is refused here rather than wrapped at
  // run time: |Σ| ≤ max|a − za| · Σk |b[n, k] − zb[n]| bounds it exactly for this input zero point.
  if (bias_f.defined()) {
    const float* b = bias_f.data_ptr<float>();
    const float sa = static_cast<float>(input_scale);
    const int64_t max_a = std::max(input_zero_point - in_lo, in_hi - input_zero_point);
    const bool unsigned_w = w.scalar_type() == at::kByte;
    constexpr double int32_max = std::numeric_limits<int32_t>::max();
    std::vector<double> bias_q(static_cast<size_t>(n));
    const int64_t underflow = circle_quant::quantize_bias(b, static_cast<size_t>(n), sa, ws_p,
                                                          static_cast<size_t>(ws.numel()), bias_q.data());
    TORCH_CHECK_VALUE(underflow < 0, op, ": the bias scale input_scale * weight_scale[", underflow,
                      "] = ", circle_quant::bias_scale(sa, ws_p[ws.numel() == 1 ? 0 : underflow]),
                      " underflows float32");
    for (int64_t c = 0; c < n; ++c) {
      const float scale = circle_quant::bias_scale(sa, ws_p[ws.numel() == 1 ? 0 : c]);
      const double q = bias_q[c];
      TORCH_CHECK_VALUE(std::abs(q) <= int32_max, op, ": bias[", c, "] = ", b[c], " is ", q,
                        " at its scale input_scale * weight_scale = ", scale,
                        ", outside int32 (the bias is stored and accumulated as int32)");
      const int32_t zb = wz.data_ptr<int32_t>()[wz.numel() == 1 ? 0 : c];
      int64_t weight_reach = 0;  // Σk |b[c, k] − zb|
      for (int64_t i = 0; i < k; ++i) {
        const int32_t v = unsigned_w ? static_cast<const uint8_t*>(w.const_data_ptr())[c * k + i]
                                     : static_cast<const int8_t*>(w.const_data_ptr())[c * k + i];
        weight_reach += std::abs(v - zb);
      }
      const double reach = static_cast<double>(max_a) * static_cast<double>(weight_reach);
      TORCH_CHECK_VALUE(std::abs(q) + reach <= int32_max, op, ": bias[", c, "] = ", b[c], " is ", q,
                        " at its scale input_scale * weight_scale = ", scale,
                        "; with this channel's weights the int32 accumulator could reach ", std::abs(q) + reach,
                        ", past int32's range (the result would wrap). Use a "
                        "larger input_scale or weight_scale, or a smaller bias");
      row(kBiasRow)[c] = static_cast<int32_t>(q);
    }
  }

  // --- header ------------------------------------------------------------------------------------
  p[kMagicIndex] = kGemmMagic;
  p[kVersionIndex] = kGemmVersion;
  p[kChannelsIndex] = static_cast<int32_t>(n);
  p[kReductionIndex] = static_cast<int32_t>(k);
  PlanLayer layer;
  layer.stage = stage;
  layer.input_zero_point = static_cast<int32_t>(input_zero_point);
  layer.input_signed = input_dtype == at::kChar;
  layer.output_scale = static_cast<float>(output_scale);
  layer.has_weight_zero_point = has_wzp;
  layer.bias = bias_f.defined() ? row(kBiasRow) : nullptr;
  layer.prepacked_layout = layout;
  write_plan_layer(p + kGemmLayerIndex, layer);
  return {packed, params, multiplier};
}

int64_t gemm_plan_channels(const char* op, const at::Tensor& packed_weight, const at::Tensor& params,
                           const at::Tensor& multiplier) {
  const int64_t n =
      plan_channels(op, "the *_prepack op", "prepacked layer", kPlanHeader, packed_weight, params, multiplier);
  // (The rows of prepacked B after the blocks depend on the header: read_gemm_plan() checks them.)
  TORCH_CHECK_VALUE(packed_weight.size(0) >= n, op, ": packed_weight ", packed_weight.sizes(), ", params ",
                    params.sizes(), " and multiplier ", multiplier.sizes(), " do not belong to one prepacked layer");
  return n;
}

void check_plan_device(const char* op, const at::Tensor& input, const at::Tensor& packed_weight,
                       const at::Tensor& params, const at::Tensor& multiplier) {
  check_same_device(op, input, "packed_weight", packed_weight);
  check_same_device(op, input, "params", params);
  check_same_device(op, input, "multiplier", multiplier);
}

GemmPlan read_gemm_plan(const char* op, const at::Tensor& packed_weight, const at::Tensor& params,
                        const at::Tensor& multiplier) {
  const int64_t n = gemm_plan_channels(op, packed_weight, params, multiplier);
  check_plan_header(op, "prepacked", "the *_prepack op", packed_weight, params, multiplier, kGemmMagic, kGemmVersion);
  const int32_t* p = params.const_data_ptr<int32_t>();
  const int64_t k = p[kReductionIndex];
  TORCH_CHECK_VALUE(p[kChannelsIndex] == n && k >= 0 && k <= circle_quant::kMaxGemmK &&
                        packed_weight.size(1) == circle_quant::packed_k(k),
                    op, ": params header (N = ", p[kChannelsIndex], ", K = ", k, ") disagrees with packed_weight ",
                    packed_weight.sizes(), " and multiplier ", multiplier.sizes());
  const int64_t kp = packed_weight.size(1);
  const int32_t* rows = p + kPlanHeader;
  GemmPlan plan;
  static_cast<PlanLayer&>(plan) = read_plan_layer(op, p + kGemmLayerIndex, rows, n, multiplier.const_data_ptr<float>());
  const int64_t nr = static_cast<int64_t>(circle_quant::kGemmNr);
  const int64_t packed_rows = (n + nr - 1) / nr * nr;
  const size_t prepacked_bytes =
      core_call(op, [&] { return circle_quant::prepacked_b_bytes(plan.prepacked_layout, n, k); });
  TORCH_CHECK_VALUE(packed_weight.size(0) == packed_rows + prepacked_rows(prepacked_bytes, kp), op, ": packed_weight ",
                    packed_weight.sizes(), " does not hold the ", packed_rows, " rows of blocks and ", prepacked_bytes,
                    " bytes of prepacked B (layout ", plan.prepacked_layout, ") that params describes");
  auto& w = plan.weights;
  w.n = n;
  w.k = k;
  w.k_padded = packed_weight.size(1);
  w.n_blocks = packed_rows / static_cast<int64_t>(circle_quant::kGemmNr);
  w.data = packed_weight.const_data_ptr<int8_t>();
  w.zero_point = rows + kZeroPointRow * n;
  w.column_sum = rows + kColumnSumRow * n;
  w.has_weight_zero_point = plan.has_weight_zero_point;
  if (prepacked_bytes > 0 && prepacked_b_in_use(plan.prepacked_layout)) {
    w.prepacked_b = w.data + packed_rows * kp;
    w.prepacked_layout = plan.prepacked_layout;
    if (!circle_quant::check_prepacked_gemm_b(w.prepacked_layout, w.prepacked_b, n, k)) prepacked_b_tampered(op);
  }
  return plan;
}

}  // namespace torch_circle
