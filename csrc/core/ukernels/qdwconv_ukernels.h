// Depthwise convolution microkernels: the contract every ISA implements. Files are named
// q8-dwconv-c<channels per step>-<isa>.cpp; the scalar one is the reference, and every kernel
// produces its exact int32 sums.
//
// The driver (qconv_depthwise.cpp) walks output rows. A run of output pixels whose taps all fall inside the
// image horizontally takes one call: the row form (DwConvRowsFn, sliding window) when the kernel
// has one and the geometry allows, else one pointer per tap plus the step between pixels
// (DwConvAccumulateFn). A pixel at the left or right border gets tap pointers of its own. Rows
// above or below the image, and padding taps, point into a buffer of the input zero point. Then
// the GEMM output stage (RequantizeFn, with the per-channel compensation term and no row sums)
// runs on the int32 tile.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../qconv.h"

namespace circle_quant {
namespace ukernels {

// The packed depthwise weights (qconv.h) as the kernels read them.
struct DwConvWeights {
  const int32_t* pairs = nullptr;       // int16 pair layout, tap pair q at pairs + q * pair_stride
  size_t pair_stride = 0;               // depthwise_channel_stride(C) int32
  const int8_t* quads = nullptr;        // int8 quad layout (VNNI kernels), tap group g at
  size_t quad_stride = 0;               //   quads + g * quad_stride bytes
  const int32_t* zero_point = nullptr;  // zb[c] in the stored int8 domain, or nullptr if all 0
  const int32_t* weight_sum = nullptr;  // Σ_t w'(t, c)
};

// The kernels' view of depthwise ConvWeightsView (defined in qconv_pack.cpp).
DwConvWeights dwconv_weights(const ConvWeightsView& w);

// acc[p * acc_stride + c] = Σ_{t < taps} x(p, t, c) · w'(t, c)   for p < pixels, c < channels
//   x(p, t, c) = input[t][p * input_stride + c], read as uint8 (accumulate_u8) or int8
//   (accumulate_s8): one pointer per tap for the first pixel; consecutive output pixels of a
//   row read input_stride (= stride_w · C) bytes further on;
//   w'(t, c) = w(t, c) - zb[c], from either packed layout.
// The kernel reads no input byte at or past input[t][p * input_stride + channels]; it may write
// acc up to c < round_up(channels, kDepthwiseAccumulatorAlign), so acc_stride must be at least
// that. Exact int32 (|x · w'| ≤ 255 · 255 and taps ≤ kMaxGemmK).
using DwConvAccumulateFn = void (*)(size_t pixels, size_t channels, size_t taps, const uint8_t* const* input,
                                    size_t input_stride, const DwConvWeights& weights, int32_t* acc, size_t acc_stride);
constexpr size_t kDepthwiseAccumulatorAlign = 64;

// Row form, for a run of output pixels whose taps all lie inside the image along W, with unit
// dilation along W, kernel_w = 3 or 5 and stride_w = 1 or 2: input pixels are `channels` bytes
// apart, so a kernel can slide a window of widened columns along the row and load each input
// column once per kernel row instead of once per tap.
//   acc[p * acc_stride + c] = Σ_{kh < kernel_h, kw < kernel_w}
//                               x(rows[kh] + (p · stride_w + kw) · channels + c) · w'(kh · kernel_w + kw, c)
// Same reads, writes and exactness bounds as DwConvAccumulateFn (the sums are equal to it with
// the matching tap pointers).
using DwConvRowsFn = void (*)(size_t pixels, size_t channels, size_t kernel_h, size_t kernel_w, size_t stride_w,
                              const uint8_t* const* rows, const DwConvWeights& weights, int32_t* acc,
                              size_t acc_stride);

inline bool dwconv_rows_supported(int64_t kernel_w, int64_t stride_w, int64_t dilation_w) {
  return (kernel_w == 3 || kernel_w == 5) && (stride_w == 1 || stride_w == 2) && dilation_w == 1;
}

struct DwConvMicrokernel {
  const char* name;  // its file's name, e.g. "q8-dwconv-c64-avx512vnni"
  DwConvAccumulateFn accumulate_u8;
  DwConvAccumulateFn accumulate_s8;
  DwConvRowsFn rows_u8 = nullptr;  // optional (nullptr: the driver uses accumulate_*)
  DwConvRowsFn rows_s8 = nullptr;
};

// Each kernel file defines its descriptor as a constant (extern constexpr DwConvMicrokernel
// q8_dwconv_c32_avx2 = {...}), listed with its ISA in the kernel registry (registry.h).

// w'(t, c) from the pair layout.
inline int32_t dwconv_weight(const DwConvWeights& w, size_t t, size_t c) {
  const uint32_t pair = static_cast<uint32_t>(w.pairs[(t / 2) * w.pair_stride + c]);
  return static_cast<int32_t>(static_cast<int16_t>(static_cast<uint16_t>(pair >> (t % 2 ? 16 : 0))));
}

}  // namespace ukernels
}  // namespace circle_quant
