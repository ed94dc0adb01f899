// Integer GEMM microkernels: the contract every ISA implements (see qgemm.h for the packed
// weight layout). Files are named qu8-gemm-<MR>x<16·blocks>c4-<isa>.cpp (A read as uint8, x86 and
// the scalar reference) or qs8-gemm-...-<isa>.cpp (A read as int8, ARM), and
// qs32-requantize-<isa>.cpp; the scalar ones are the reference the tests compare against.
//
// The driver (qgemm.cpp) splits the work into tiles; a tile is up to `mr` rows of A and up to
// `max_blocks` blocks of 16 output channels. For each tile it calls:
//   1. accumulate: raw dot products of A's bytes with the packed int8 weights (no zero points);
//   2. requantize: adds the per-channel and per-row compensation terms and the bias, then
//      converts to the output type, clamps and stores.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../isa.h"
#include "../qgemm.h"

namespace circle_quant {
namespace ukernels {

// acc[i * acc_stride + j] = Σ_{kk < k} A(i, kk) · B(kk, j)   for i < mr, j < 16 · blocks.
//   a and b are in the kernel's working layout: the packed bytes described here, or, for a kernel
//   with widen_a / prepack_b (GemmMicrokernel), what those functions wrote (strides in bytes).
//   A(i, kk) = a[i * a_stride + kk], read as uint8 on x86 (u8·s8 dot products) and as int8 on ARM
//   (s8·s8), see GemmMicrokernel::a_signed. The kernel reads no byte of a past a[i*a_stride+k-1]
//   (K need not be a multiple of 4), and nothing of rows i ≥ mr.
//   B: `blocks` consecutive packed blocks starting at b, block_stride bytes apart.
// Exact int32 arithmetic (callers guarantee K ≤ kMaxGemmK so no sum can overflow).
// blocks ≤ max_blocks, 1 ≤ mr ≤ GemmMicrokernel::mr (any mr ≥ 1 when GemmMicrokernel::any_rows),
// acc_stride ≥ 16 · blocks.
using GemmAccumulateFn = void (*)(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride,
                                  const int8_t* b, size_t block_stride, int32_t* acc, size_t acc_stride);

// The same sums with A gathered from `taps` places per row, without an im2col copy (the implicit
// GEMM of a convolution, kernels that have it: GemmMicrokernel::accumulate_taps):
//   A(i, t · tap_k + kk) = row_i[tap_offsets[t] + kk]   for t < taps, kk < tap_k,
// where row_i = a + i * a_stride, or a + row_offsets[i] when row_offsets is not null (a conv's
// output pixels across row ends; only kernels with GemmMicrokernel::reads_row_offsets take it).
// So k = taps · tap_k and B is the packed weights in that (tap, kk) order. tap_k is a multiple of
// the kernel's tap_align; the kernel reads nothing of a outside those taps · tap_k bytes per row.
using GemmAccumulateTapsFn = void (*)(size_t mr, size_t blocks, size_t taps, const int64_t* tap_offsets, size_t tap_k,
                                      const uint8_t* a, size_t a_stride, const int64_t* row_offsets, const int8_t* b,
                                      size_t block_stride, int32_t* acc, size_t acc_stride);
constexpr size_t kTapAlign = 64;  // AMX: one tile row of a tap's bytes per load

// out(i, j) for i < rows, j < cols:
//   total = acc[i * acc_stride + j] + channel_term[j] - (row_sum ? zb[j] * row_sum[i] : 0)
//   (int32 arithmetic modulo 2^32; the exact result fits, see kMaxGemmK), where the weight zero
//   points zb are stored ones, in [-128, 127] (stored_weight_zero_point), and |row_sum| < 2^23
//   (255 · kMaxGemmK): the x86 stages multiply them as 16-bit halves
//   then the output stage of `stage` for channel (n0 + j), stored at out + i * out_stride + j
//   (elements of stage.type).
// channel_term[j] = bias[j] - za'·column_sum[j] + K·za'·zb[j] (za' = activation zero point in the
// A domain the accumulate kernel read) is computed by the driver.
using RequantizeFn = void (*)(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride,
                              const int32_t* channel_term, const int32_t* zb, const int32_t* row_sum,
                              const OutputStage& stage, size_t n0, void* out, size_t out_stride);

// The fused residual add (ResidualAdd in qgemm.h) on one output tile, in place: for i < rows,
// j < cols, y = out[i * out_stride + j] (the layer's quantized output) and r = other[i *
// other_stride + j], both of `type` (uint8, int8 or int16), become the add's output under `mode`.
// Files q8-vadd-<isa>.cpp; SIMD versions must match q8_vadd_scalar bit for bit.
using ResidualAddFn = void (*)(size_t rows, size_t cols, void* out, size_t out_stride, const void* other,
                               size_t other_stride, OutputType type, RequantMode mode, const ResidualAdd& add);

// Optional working layouts a kernel reads instead of the packed bytes:
//   widen_a:   rows of A (uint8, a_stride bytes apart, k bytes each) → out, a_group_bytes per k
//              group of 4 per row (row stride groups · a_group_bytes); built by qgemm() once per call,
//              except that a_group_bytes == 4 declares the layout to be A's own bytes with K
//              padded to whole groups: qgemm() then passes A itself when K is a multiple of 4.
//   prepack_b: `blocks` packed blocks (block_stride apart) → out, b_group_bytes per k group per
//              block and b_block_tail_bytes after them (groups = ceil(k / 4)); the kernel defines
//              what they hold. Built once at pack time (prepack_gemm_b() in qgemm.h, stored in the
//              layer's plan), never per call: such a kernel runs only on weights that carry it.
//   The working blocks start on 64-byte boundaries: working_b_block_stride() apart.
using WidenAFn = void (*)(size_t rows, size_t k, const uint8_t* a, size_t a_stride, uint8_t* out);
using PrepackBFn = void (*)(size_t blocks, size_t k, const int8_t* b, size_t block_stride, int8_t* out);
// Whether `blocks` working blocks hold valid control data (counts, offsets) wherever the kernel
// reads addresses from: the check a plan's prepacked B passes before the kernel reads it.
using CheckPrepackedBFn = bool (*)(size_t blocks, size_t k, const int8_t* working);

// The driver's accumulator tile holds this many int32: mr · max_blocks · 16 must not exceed it.
constexpr size_t kMaxTileAccumulators = 1024;

struct GemmMicrokernel {
  const char* name;  // its file's name, e.g. "qu8-gemm-8x48c4-avx512vnni"
  GemmAccumulateFn accumulate;
  RequantizeFn requantize;
  size_t mr;                       // rows per tile
  size_t max_blocks;               // 16-channel blocks per tile
  bool a_signed;                   // A bytes are int8 (ARM sdot) rather than uint8 (x86 vpdpbusd)
  ResidualAddFn add_residual;      // the ISA's fused residual add (shared by its kernels)
  WidenAFn widen_a = nullptr;      // nullptr: reads the packed A bytes
  PrepackBFn prepack_b = nullptr;  // nullptr: reads the packed B blocks
  size_t a_group_bytes = kGemmKr;
  size_t b_group_bytes = kGemmKr * kGemmNr;
  size_t min_rows = 1;            // gemm_microkernel_for picks it only for calls of at least this many rows
  size_t b_block_tail_bytes = 0;  // prepack_b: bytes per block after its groups
  // prepack_b: the layout's number, stored in plans (PackedWeightsView::prepacked_layout); a new
  // or changed layout takes a new number, so a plan holding another one is never misread.
  int32_t prepacked_layout = 0;
  CheckPrepackedBFn check_prepacked_b = nullptr;
  // Called by the driver after a qgemm()'s last accumulate call on this thread (AMX: releases the
  // tile state the calls kept configured). nullptr: nothing to do.
  void (*finish)() = nullptr;
  // The implicit-GEMM form of accumulate (see GemmAccumulateTapsFn), or nullptr.
  GemmAccumulateTapsFn accumulate_taps = nullptr;
  // qgemm() cuts a call's rows into equal tiles rather than mr-row ones and a remainder: a tile of
  // another row count costs this kernel a reconfiguration (AMX: about 300 cycles).
  bool balance_row_tiles = false;
  // accumulate_taps: the bytes per tap (tap_k) must be a multiple of this.
  size_t tap_align = kTapAlign;
  // accumulate takes any number of rows (mr above is its tile's), and loops over its tiles itself:
  // qgemm() then makes one call per block for a group of rows, and the kernel reads a block's
  // set-up once for all of them.
  bool any_rows = false;
  // accumulate_taps takes row_offsets (rows anywhere in A): a conv then gives its GEMM exactly its
  // output pixels (qconv_im2col.cpp); without it, whole output rows read at one stride.
  bool reads_row_offsets = false;
};

// Distance between two working B blocks: the groups and the tail, rounded up to a cache line so
// that every block starts on one (vector loads that split lines cost twice).
constexpr size_t working_b_block_stride(size_t group_bytes, size_t tail_bytes, size_t groups) {
  return (groups * group_bytes + tail_bytes + 63) / 64 * 64;
}
inline size_t working_b_block_stride(const GemmMicrokernel& uk, size_t groups) {
  return working_b_block_stride(uk.b_group_bytes, uk.b_block_tail_bytes, groups);
}
// Each kernel file defines its descriptor as a constant, e.g.
//   extern constexpr GemmMicrokernel qu8_gemm_3x16c4_avx2 = {...};
// (constexpr: constant-initialized data, so nothing compiled with the ISA's flags runs before
// the dispatcher has checked the CPU.)

// Accumulate on the packed A and B whatever the kernel's working layout (builds it into scratch
// first when it has one): the form tests use to compare every kernel with the scalar one.
void accumulate_packed(const GemmMicrokernel& uk, size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride,
                       const int8_t* b, size_t block_stride, int32_t* acc, size_t acc_stride);

// The microkernels themselves are constants (data, no code runs to read one) defined in their
// files and listed with their ISA in the kernel registry (registry.h), which also chooses one:
// gemm_microkernel_for() there.

// The fused residual add of each ISA: scalar reference, and SIMD ones for the float family on
// 8-bit types (other cases go to the scalar code).
void q8_vadd_scalar(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
                    OutputType type, RequantMode mode, const ResidualAdd& add);
#if defined(__x86_64__)
void q8_vadd_avx2(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
                  OutputType type, RequantMode mode, const ResidualAdd& add);
void q8_vadd_avx512(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
                    OutputType type, RequantMode mode, const ResidualAdd& add);
#endif
#if defined(__aarch64__)
void q8_vadd_neon(size_t rows, size_t cols, void* out, size_t out_stride, const void* other, size_t other_stride,
                  OutputType type, RequantMode mode, const ResidualAdd& add);
#endif

// Scalar requantization of one tile: the reference output stage, also used by SIMD kernels for
// their column remainders.
void qs32_requantize_scalar(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride,
                            const int32_t* channel_term, const int32_t* zb, const int32_t* row_sum,
                            const OutputStage& stage, size_t n0, void* out, size_t out_stride);

#if defined(__x86_64__)
// SIMD output stages, bit-exact with the scalar one (shift in [-31, 30] for kFixedPoint).
void qs32_requantize_avx2(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                          const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, void* out,
                          size_t out_stride);
void qs32_requantize_avx512(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride,
                            const int32_t* channel_term, const int32_t* zb, const int32_t* row_sum,
                            const OutputStage& stage, size_t n0, void* out, size_t out_stride);
#endif

// The exact accumulator total of output (i, j) from a tile's raw dot product, modulo 2^32.
inline int32_t qgemm_total(int32_t acc, int32_t channel_term, const int32_t* zb, const int32_t* row_sum, size_t i,
                           size_t j) {
  uint32_t t = static_cast<uint32_t>(acc) + static_cast<uint32_t>(channel_term);
  if (row_sum != nullptr) t -= static_cast<uint32_t>(zb[j]) * static_cast<uint32_t>(row_sum[i]);
  return static_cast<int32_t>(t);
}

// Row sums: row_sum[i] = Σk A(i, k) for i < rows, in the A domain the GEMM kernel reads (bytes
// as uint8, or as int8 when a_signed), for weight zero points. Files q8-rowsum-<isa>.cpp; the
// registry's rowsum family (row_sum_kernel_for in registry.h) picks the ISA's.
using RowSumFn = void (*)(size_t rows, size_t k, const uint8_t* a, size_t a_stride, bool a_signed, int32_t* row_sum);
void q8_rowsum_scalar(size_t rows, size_t k, const uint8_t* a, size_t a_stride, bool a_signed, int32_t* row_sum);
void q8_rowsum_avx2(size_t rows, size_t k, const uint8_t* a, size_t a_stride, bool a_signed, int32_t* row_sum);
void q8_rowsum_avx512(size_t rows, size_t k, const uint8_t* a, size_t a_stride, bool a_signed, int32_t* row_sum);

}  // namespace ukernels
}  // namespace circle_quant
