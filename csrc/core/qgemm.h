// Quantized GEMM with fused bias, activation clamp and requantization (torch-free core).
//
//   out[m, n] = requantize(acc[m, n] + bias[n]),   acc[m, n] = Σk (a[m,k] - za) · (b[n,k] - zb[n])
//
// A (activations) is uint8 or int8 with one zero point; B (weights, [N, K] row major as in
// torch's linear) is int8 or uint8 with per-channel (or broadcast per-tensor) scales and zero
// points. The numerics (int32 accumulation, both requantization families, clamping) are specified
// in docs/numerics.md ("Integer GEMM"); every ISA path is bit-exact with the scalar reference.
//
// Pipeline:
//   pack_weights()  once per layer: B → int8 blocks in the layout every microkernel reads, plus
//                   the per-channel sums that fold zero points into compensation terms.
//   make_output_stage() once per layer: multipliers, output zero point, clamp range.
//   qgemm()         per call, on a range of rows and output channels (the PyTorch layer splits
//                   rows/channels across threads; any split gives the same bits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "isa.h"

namespace circle_quant {

// ---------------------------------------------------------------------------------------------
// Packed weights.
//
// Layout (the same on every ISA): output channels in blocks of kGemmNr = 16, reduction in groups
// of 4 ("c4"): byte b(k, j) of block `nb` sits at data[nb * block_stride + (k / 4) * 64 + j * 4 +
// k % 4], block_stride = k_padded * 16. Padding (k ≥ K or channel ≥ N) is zero. This is what
// vpdpbusd (x86: 4 u8×s8 products per int32 lane) and sdot (ARM: 4 s8×s8 products per lane)
// consume directly.
//
// Stored values are int8: int8 weights as they are, uint8 weights minus 128 (the zero point moves
// by the same 128, so b - zb is unchanged).
constexpr size_t kGemmNr = 16;
constexpr size_t kGemmKr = 4;

// What the kernels read: plain pointers, so the PyTorch layer can keep the packed arrays in
// tensors (see csrc/ops/qgemm_plan.h) and the tests in vectors.
struct PackedWeightsView {
  int64_t n = 0;                        // output channels (N)
  int64_t k = 0;                        // reduction length (K)
  int64_t k_padded = 0;                 // K rounded up to kGemmKr
  int64_t n_blocks = 0;                 // ceil(N / kGemmNr)
  const int8_t* data = nullptr;         // n_blocks * block_stride() bytes
  const int32_t* zero_point = nullptr;  // zb[n] in the stored int8 domain (n entries)
  const int32_t* column_sum = nullptr;  // Σk stored b[n, k]; folds the activation zero point
  bool has_weight_zero_point = false;   // any zb[n] != 0: the row sums of A are needed per call
  // The working copy of B a kernel reads instead of `data` (prepack_gemm_b()), built once at pack
  // time, or nullptr; prepacked_layout is its layout number. qgemm() runs that kernel only on
  // weights that carry its layout, and otherwise one that reads `data`.
  const int8_t* prepacked_b = nullptr;
  int32_t prepacked_layout = 0;

  size_t block_stride() const { return static_cast<size_t>(k_padded) * kGemmNr; }
};

// Prepacked B (GemmMicrokernel::prepack_b): the working copy of the packed blocks that the kernel
// qgemm() runs under `isa` for many rows reads (AVX2: the k groups sorted into vpmaddubsw-safe and
// int16 tiles). Layout 0: that level's kernels read the packed bytes, nothing to build.
int32_t prepacked_b_layout(Isa isa);
// Bytes of layout `layout` for packed [n, k] weights (0 for layout 0); throws std::invalid_argument
// for a layout this build does not have.
size_t prepacked_b_bytes(int32_t layout, int64_t n, int64_t k);
// Builds it from pack_weights()' bytes into out (prepacked_b_bytes(), 64-byte aligned for speed).
// Runs the kernel's ISA code: only for prepacked_b_layout(isa) of an isa_supported() level.
void prepack_gemm_b(int32_t layout, const int8_t* packed, int64_t n, int64_t k, int8_t* out);
// Whether prepacked bytes hold valid control data (counts, offsets) where the kernel reads
// addresses from: a plan whose bytes were changed after prepacking fails it. Same ISA rule.
bool check_prepacked_gemm_b(int32_t layout, const int8_t* prepacked, int64_t n, int64_t k);

int64_t packed_k(int64_t k);                       // K rounded up to kGemmKr
size_t packed_weight_bytes(int64_t n, int64_t k);  // bytes of PackedWeightsView::data

// Packs weight ([n, k], row r at weight + r * row_stride elements, int8 or uint8 when
// is_unsigned) into caller-provided arrays: data (packed_weight_bytes), zero_point_out and
// column_sum_out (n entries each). zero_point has n entries or 1 (broadcast). Throws
// std::invalid_argument on a zero point outside the storage type's range or k > kMaxGemmK.
// Returns whether any stored zero point is non-zero.
bool pack_weights(const void* weight, bool is_unsigned, int64_t n, int64_t k, size_t row_stride,
                  const int32_t* zero_point, size_t zero_point_count, int8_t* data, int32_t* zero_point_out,
                  int32_t* column_sum_out);

// The same with element (c, i) at weight[c * n_stride + i * k_stride] (elements): the form for a
// B that is a run-time tensor, packed on every call (quantized_matmul: [K, N] row major is
// n_stride = 1, k_stride = N; a transposed [N, K] view is n_stride = K, k_stride = 1).
bool pack_weights_strided(const void* weight, bool is_unsigned, int64_t n, int64_t k, size_t n_stride, size_t k_stride,
                          const int32_t* zero_point, size_t zero_point_count, int8_t* data, int32_t* zero_point_out,
                          int32_t* column_sum_out);

// Weight zero point of `channel` (zero_point has `count` entries, or 1: broadcast) in the stored
// int8 domain (uint8 zero points minus 128, as the packed weights); throws std::invalid_argument
// when it is outside the weight type's range. Shared by the GEMM and conv packers.
int32_t stored_weight_zero_point(const int32_t* zero_point, size_t count, int64_t channel, bool is_unsigned);

// Owning form, for tests and C++ callers; it carries the prepacked B of the ISA active when it
// was packed (prepacked_b_layout(active_isa())).
struct PackedWeights {
  int64_t n = 0, k = 0;
  std::vector<int8_t> data;
  std::vector<int32_t> zero_point, column_sum;
  bool has_weight_zero_point = false;
  std::vector<int8_t> prepacked_b;
  int32_t prepacked_layout = 0;
  PackedWeightsView view() const;
};
PackedWeights pack_weights(const void* weight, bool is_unsigned, int64_t n, int64_t k, const int32_t* zero_point,
                           size_t zero_point_count);

// Up to this K every exact result Σ (a - za)(b - zb) fits in int32 (|·| ≤ K · 255 · 255), so
// int32 sums taken modulo 2^32 (what the SIMD kernels do) are exact.
constexpr int64_t kMaxGemmK = 32768;

// ---------------------------------------------------------------------------------------------
// Output stage.

enum class RequantMode {
  // PyTorch / FBGEMM / oneDNN family: out = nearbyint(float(acc) * multiplier[n]) + zy, in float
  // with ties to even; multiplier = float(sa * sb[n] / sy). Agrees with the PT2E reference graph
  // (dq → float op → q) to within one quantization step.
  kFloat = 0,
  // TFLite / ONE family: multiplier = M0 · 2^shift with a 31-bit M0; saturating rounding doubling
  // high multiply, then a rounding right shift that rounds half away from zero. Bit-exact with
  // what onert and LiteRT compute for the same Circle op.
  kFixedPoint = 1,
};

enum class OutputType { kUint8 = 0, kInt8 = 1, kInt16 = 2, kFloat = 3 };

struct ResidualAdd;

// What the kernels read (pointers into per-channel arrays, n entries each).
struct OutputStage {
  OutputType type = OutputType::kUint8;
  RequantMode mode = RequantMode::kFloat;
  const float* multiplier = nullptr;          // kFloat: sa·sb[n]/sy (float output: sa·sb[n])
  const int32_t* fixed_multiplier = nullptr;  // kFixedPoint: M0 of sa·sb[n]/sy
  const int32_t* fixed_shift = nullptr;       // kFixedPoint: exponent (left shift when > 0)
  int32_t zero_point = 0;                     // zy (0 for float output)
  // Clamp, including a fused ReLU / ReLU6 / clamp: integer bounds for quantized outputs, float
  // bounds for float output.
  int32_t qmin = 0, qmax = 255;
  float fmin = -std::numeric_limits<float>::infinity();
  float fmax = std::numeric_limits<float>::infinity();
  // Optional residual add applied to each output tile right after the stage above, while the
  // tile is still in L1 (quantized outputs only; see ResidualAdd).
  const ResidualAdd* residual = nullptr;
};

// A residual add fused into a layer's output (the ResNet / MobileNetV2 / transformer skip
// connection): with y the layer's quantized output (its own scale and zero point, clamp
// included) and r the other operand, of the same integer type and laid out like the output,
//
//   out = quantize_out(act(dequantize(y) + dequantize(r)))
//
// in place of y. Float family: exactly the PT2E reference graph's dequantize → add → [relu] →
// quantize, in float32. Fixed-point family: the TFLite / ONE integer ADD (inputs shifted left by
// 20 bits, 16-bit outputs by 15, and rescaled by 31-bit multipliers). docs/numerics.md, "Fused
// residual add".
struct ResidualAdd {
  const void* other = nullptr;  // r: element (m, n) at other + m * other_stride + n (elements)
  size_t other_stride = 0;
  // Float family.
  float layer_scale = 1, other_scale = 1, inv_output_scale = 1;
  int32_t layer_zero_point = 0, other_zero_point = 0, output_zero_point = 0;
  int32_t qmin = 0, qmax = 255;  // output clamp: activation bounds ∩ the type's range
  // Fixed-point family.
  int32_t left_shift = 20;
  int32_t layer_multiplier = 0, layer_shift = 0, other_multiplier = 0, other_shift = 0;
  int32_t output_multiplier = 0, output_shift = 0;
};

// Fills everything but other / other_stride. type: the common type of y, r and out (uint8, int8
// or int16); mode: the layer's requantization family. activation_min / max: real bounds applied
// after the add (−inf / +inf: none), made integer bounds as make_output_stage() does. Throws
// std::invalid_argument on non-positive or non-finite scales, zero points outside the type or
// activation_min > activation_max.
void make_residual_add(OutputType type, RequantMode mode, double layer_scale, int32_t layer_zero_point,
                       double other_scale, int32_t other_zero_point, double output_scale, int32_t output_zero_point,
                       double activation_min, double activation_max, ResidualAdd* add);

// Owning form of the per-channel arrays plus the stage pointing into them.
struct OutputStageStorage {
  std::vector<float> multiplier;
  std::vector<int32_t> fixed_multiplier, fixed_shift;
  OutputStage stage;  // points into the vectors above, so the storage is neither copied nor moved
  OutputStageStorage() = default;
  OutputStageStorage(const OutputStageStorage&) = delete;
  OutputStageStorage& operator=(const OutputStageStorage&) = delete;
};

// input_scale = sa, weight_scale[n] (or 1 entry, broadcast) = sb, output_scale = sy (ignored for
// float output). activation_min / max are the fused activation's real bounds (−inf / +inf for
// none, 0 / +inf for ReLU, 0 / 6 for ReLU6); quantized outputs get them as integer bounds
// (quantized with the output's parameters, docs/numerics.md), intersected with the type's range.
// Throws std::invalid_argument on non-positive or non-finite scales, a zero point outside the
// output type, or activation_min > activation_max.
void make_output_stage(OutputType type, RequantMode mode, double input_scale, const float* weight_scale,
                       size_t weight_scale_count, int64_t n, double output_scale, int32_t output_zero_point,
                       double activation_min, double activation_max, OutputStageStorage* storage);

// Fills multiplier / fixed_multiplier / fixed_shift (n entries) and the clamp of `stage` without
// owning storage: the form the PyTorch layer uses to keep the arrays in tensors.
void compute_output_stage(OutputType type, RequantMode mode, double input_scale, const float* weight_scale,
                          size_t weight_scale_count, int64_t n, double output_scale, int32_t output_zero_point,
                          double activation_min, double activation_max, float* multiplier, int32_t* fixed_multiplier,
                          int32_t* fixed_shift, OutputStage* stage);

// The real multiplier m > 0 as M0 · 2^shift with M0 in [2^30, 2^31) (TFLite's QuantizeMultiplier).
void quantize_multiplier(double m, int32_t* fixed_multiplier, int32_t* shift);
// TFLite's MultiplyByQuantizedMultiplier (double rounding) on one value.
int32_t multiply_by_quantized_multiplier(int32_t x, int32_t fixed_multiplier, int32_t shift);

// ---------------------------------------------------------------------------------------------
// GEMM.

struct GemmActivations {
  const void* data = nullptr;  // [m, k] with row stride `stride` (elements)
  bool is_signed = false;      // int8 (true) or uint8
  int32_t zero_point = 0;
  size_t stride = 0;
  // Implicit GEMM (a convolution without im2col): when set, row i's K bytes are `taps` runs of
  // K / taps bytes at data + i * stride + tap_offsets[t]. Only for kernels with accumulate_taps
  // (qgemm_taps_supported()), A in the kernel's domain (is_signed == its a_signed) and K / taps a
  // multiple of the kernel's tap_align (AMX 64, AVX-512 VNNI 16).
  const int64_t* tap_offsets = nullptr;
  size_t taps = 0;
  // Optional, tapped only: the byte sums of the runs, tap_run_sums[j] = Σ of the K / taps bytes
  // at data + j · (K / taps) (stride and tap offsets multiples of K / taps). The weight zero
  // point's row sums then cost `taps` additions per row instead of a pass over K bytes (a conv
  // sums each padded pixel once instead of once per tap).
  const int32_t* tap_run_sums = nullptr;
  // Virtual rows (a convolution's output rows read at one stride across their ends, so that
  // narrow rows fill whole tiles): when row_period > 0, of every row_period rows only the first
  // row_valid are outputs; GEMM row v is output row (v / row_period) · row_valid + v % row_period
  // and the others are computed and dropped. Their A bytes must be readable.
  size_t row_period = 0, row_valid = 0;
  // Optional, tapped only, for kernels that read them (GemmMicrokernel::reads_row_offsets, see
  // qgemm_rows_by_offset()): GEMM row i (m_begin <= i < m_end) starts at data + row_offsets[i]
  // instead of data + i * stride; with weight zero points tap_run_sums must be given and the
  // offsets be multiples of K / taps. A conv's GEMM rows are then exactly its output pixels,
  // across the ends of output rows.
  const int64_t* row_offsets = nullptr;
};

// Whether qgemm() under `isa` reads tapped activations (GemmActivations::tap_offsets) of tap_k
// bytes per tap for a call of `rows` rows over `blocks` 16-channel blocks of weights with
// prepacked layout `layout`.
bool qgemm_taps_supported(Isa isa, size_t blocks, size_t rows, int32_t layout, size_t tap_k);
// Whether such a call also takes GemmActivations::row_offsets.
bool qgemm_rows_by_offset(Isa isa, size_t blocks, size_t rows, int32_t layout);

// qgemm() reads the weights in column chunks of about this many bytes, each kept in L2 while every
// row of the call passes over it: weights larger than this are read from memory once per call, so
// callers with many rows (a conv's several images) give them to one call.
constexpr size_t kGemmChunkBytes = 256 * 1024;

// out[m, n] for rows [m_begin, m_end) and channels [n_begin, n_end); n_begin must be a multiple
// of kGemmNr (blocks are not split between threads). bias: int32 at scale sa·sb[n] (n entries) or
// nullptr. out: row stride out_stride (elements), element type from stage.type. Single-threaded;
// allocates only small thread-local scratch.
void qgemm(const GemmActivations& a, int64_t m_begin, int64_t m_end, const PackedWeightsView& w, int64_t n_begin,
           int64_t n_end, const int32_t* bias, const OutputStage& stage, void* out, size_t out_stride);

// Within its scope, qgemm() calls on this thread leave their kernel's state (AMX's tile
// configuration, about 300 cycles to load) to the next call, and the session releases it when it
// ends: for callers that make many small calls (the conv driver: one per output row or im2col
// tile). Sessions nest; only the outermost one releases.
class GemmSession {
 public:
  GemmSession();
  ~GemmSession();
  GemmSession(const GemmSession&) = delete;
  GemmSession& operator=(const GemmSession&) = delete;
};

// Name of the microkernel qgemm() uses under the active ISA (e.g. "qu8-gemm-8x48c4-avx512vnni").
const char* qgemm_kernel_name();

}  // namespace circle_quant
