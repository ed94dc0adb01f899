// A prepacked quantized layer (linear or conv2d) as three plain tensors, shared by the
// *_prepack ops that build it and the quantized_* ops that run it.
//
// Plain tensors rather than a custom class: torch.export, torch.compile (as graph constants),
// TorchScript and the Meta kernels all handle them without extra registration, and a module
// caches them as buffers.
//
//   packed_weight  int8 [n_blocks * 16 + prepacked rows, k_padded]: the blocks of
//                  circle_quant::pack_weights() (the shape gives the padded sizes), then, when the
//                  kernel the prepacking ISA runs reads one, the prepacked B of
//                  circle_quant::prepack_gemm_b() (the header's layout number; AVX2: the k groups
//                  sorted into vpmaddubsw-safe and int16 tiles) in whole rows.
//   params         int32 1-D: kPlanHeader header entries, then kPlanRows rows of N entries
//                  (bias, weight zero point, column sum, fixed-point multiplier, shift).
//   multiplier     float32 [N]: the output stage's float multipliers. N = multiplier.numel()
//                  is what the Meta kernels read.
//
// Everything static is computed at pack time (bias quantized with scale sa·sb[n] as the Circle
// file stores it, multipliers, clamp bounds); a call only adds the activation zero point's
// O(N) compensation (qgemm.cpp).
#pragma once

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <tuple>

#include "core/qgemm.h"

namespace torch_circle {

// params = kPlanHeader int32 header entries (layout in qgemm_plan.cpp: magic, version, N, K,
// then the layer block below), then kPlanRows rows of N entries.
constexpr int64_t kPlanHeader = 17;
// Header entries of the output stage (type, requantization mode, zero point, clamp bounds,
// output scale), the same block in linear and conv plans.
constexpr int64_t kOutputStageEntries = 8;

// --- What linear and conv plans share (qconv_plan.h builds on it) -----------------------------

// Every plan header starts with these two entries. The magic number tells a plan of one kind
// from any other int32 tensor; the version changes whenever the layout does, so a plan saved by
// another build is rejected instead of misread.
enum PlanHeaderStart : int64_t { kMagicIndex = 0, kVersionIndex, kPlanHeaderStartEntries };

// The layer block of a header: activation, output stage and flags, the same entries in linear
// and conv plans at the offset each plan's header gives it.
enum PlanLayerEntry : int64_t {
  kInputZeroPointEntry = 0,  // za
  kInputSignedEntry,         // 1: int8 activations, 0: uint8
  kOutputStageEntry,         // kOutputStageEntries entries (write_output_stage)
  kHasWeightZeroPointEntry = kOutputStageEntry + kOutputStageEntries,
  kHasBiasEntry,
  // circle_quant::prepacked_b_layout() of the ISA active at prepacking: its prepacked B follows
  // the packed blocks in packed_weight (0: none). Run under a level whose kernels read another
  // layout (or none), the section is left unread and a kernel reading the packed blocks runs.
  kPrepackedLayoutEntry,
  kPlanLayerEntries,
};

// The per-channel rows after the header, N (or OC) entries each, in both plans.
enum PlanRow : int64_t { kBiasRow = 0, kZeroPointRow, kColumnSumRow, kFixedMultRow, kFixedShiftRow, kPlanRows };

// What the layer block and rows describe, read back and checked (both plans' views extend it).
struct PlanLayer {
  circle_quant::OutputStage stage;
  const int32_t* bias = nullptr;  // N entries, int32 at scale sa·sb[n], or nullptr
  int32_t input_zero_point = 0;
  bool input_signed = false;  // the activations the plan was packed for: int8 or uint8
  at::ScalarType output_dtype = at::kByte;
  float output_scale = 1;  // sy (1 for float output)
  bool has_weight_zero_point = false;
  int32_t prepacked_layout = 0;  // kPrepackedLayoutEntry
};

// Rows of a packed_weight `width` bytes wide that hold `bytes` of prepacked B (the last one
// zero padded).
int64_t prepacked_rows(size_t bytes, int64_t width);

// Whether a plan's prepacked B of `layout` is the one the active ISA's kernel reads (and so is
// checked and read on this call); otherwise the kernels read the packed blocks.
bool prepacked_b_in_use(int32_t layout);
// The error for prepacked B whose control data fails its check (changed after prepacking).
[[noreturn]] void prepacked_b_tampered(const char* op);

// View of a linear plan, checked against the tensors' shapes and header.
struct GemmPlan : PlanLayer {
  circle_quant::PackedWeightsView weights;
};

at::ScalarType output_scalar_type(circle_quant::OutputType type);
// The output type of a uint8 / int8 / int16 / float32 output dtype, and the requantization family
// named "float" or "fixed_point"; anything else is a TORCH_CHECK error naming `op`.
circle_quant::OutputType output_type(const char* op, at::ScalarType dtype);
circle_quant::RequantMode requant_mode(const char* op, c10::string_view requant);

// The output stage's scalar fields and output scale, stored at fields[0, kOutputStageEntries) of
// a plan header, and read back with the per-channel arrays (n entries) pointed at the plan's rows.
// Reading checks every value the kernels need for defined behaviour (clamp bounds, zero point,
// shifts); errors name `op`.
void write_output_stage(const circle_quant::OutputStage& stage, double output_scale, int32_t* fields);
circle_quant::OutputStage read_output_stage(const char* op, const int32_t* fields, const float* multiplier,
                                            const int32_t* fixed_multiplier, const int32_t* fixed_shift, int64_t n,
                                            float* output_scale);

// The activation zero point and the weight zero points (n entries, stored int8 domain) of a
// plan, checked on every call like read_output_stage(): the driver adds 128 to the former and
// the kernels assume the latter fit int8.
void check_plan_zero_points(const char* op, int32_t input_zero_point, bool input_signed,
                            const int32_t* weight_zero_point, int64_t n);

// Writes a plan's layer block (kPlanLayerEntries entries at `block`).
void write_plan_layer(int32_t* block, const PlanLayer& layer);
// Reads and checks the layer block and the rows (n channels) of a plan (errors name `op`).
PlanLayer read_plan_layer(const char* op, const int32_t* block, const int32_t* rows, int64_t n,
                          const float* multiplier);

// Checks the dtypes and ranks of a plan's three tensors, as `producer` (the prepack op) returns
// them, and that params holds a header of header_size plus the rows of multiplier's channels;
// returns the channel count. `what` names the plan in the error ("prepacked layer").
int64_t plan_channels(const char* op, const char* producer, const char* what, int64_t header_size,
                      const at::Tensor& packed_weight, const at::Tensor& params, const at::Tensor& multiplier);
// What a call needs of the three tensors before reading them: contiguous, on the CPU, and a
// header with this kind's magic number and version (errors name the kind of plan and the op
// that makes it, `producer`).
void check_plan_header(const char* op, const char* kind, const char* producer, const at::Tensor& packed_weight,
                       const at::Tensor& params, const at::Tensor& multiplier, int32_t magic, int32_t version);

// The core throws std::invalid_argument with a "circle_quant: ..." message; this names the op
// instead (a TORCH_CHECK_VALUE error).
template <typename Fn>
auto core_call(const char* op, Fn&& fn) {
  try {
    return fn();
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    const std::string prefix = "circle_quant: ";
    if (what.compare(0, prefix.size(), prefix) == 0) what = what.substr(prefix.size());
    TORCH_CHECK_VALUE(false, op, ": ", what);
  }
}

// --- Linear plans --------------------------------------------------------------------------------

// weight: [N, K] int8 or uint8 (row major; conv weights are reordered to (kh, kw, ic) by the
// caller). weight_scale / weight_zero_point: N entries or 1. bias: float [N] or none.
// requant: "float" (PyTorch family) or "fixed_point" (TFLite / ONE family), docs/numerics.md.
// output_dtype: uint8, int8, int16 or float32. Errors name `op`.
std::tuple<at::Tensor, at::Tensor, at::Tensor> make_gemm_plan(
    const char* op, const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& weight_zero_point,
    const c10::optional<at::Tensor>& bias, double input_scale, int64_t input_zero_point, at::ScalarType input_dtype,
    double output_scale, int64_t output_zero_point, at::ScalarType output_dtype, double activation_min,
    double activation_max, c10::string_view requant);

// The plan's three tensors are on the input's device (a linear or conv plan; Meta kernels too).
void check_plan_device(const char* op, const at::Tensor& input, const at::Tensor& packed_weight,
                       const at::Tensor& params, const at::Tensor& multiplier);

// Checks the three tensors (dtypes, shapes, header) and returns views into them; the tensors
// must outlive the view. Errors name `op`.
GemmPlan read_gemm_plan(const char* op, const at::Tensor& packed_weight, const at::Tensor& params,
                        const at::Tensor& multiplier);

// The number of output channels a plan produces (for Meta kernels: multiplier.size(0)), checking
// only shapes and dtypes.
int64_t gemm_plan_channels(const char* op, const at::Tensor& packed_weight, const at::Tensor& params,
                           const at::Tensor& multiplier);

}  // namespace torch_circle
