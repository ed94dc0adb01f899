// Quantized 2-D convolution (torch-free core): im2col + the integer GEMM of qgemm.h, and a
// depthwise kernel of its own.
//
//   out[n, oh, ow, oc] = requantize(acc + bias[oc]),
//   acc = Σ_{kh, kw, ic} (x[n, oh·sh - ph + kh·dh, ow·sw - pw + kw·dw, g·Cg + ic] - za)
//                        · (w[oc, ic, kh, kw] - zb[oc])          (g = oc / (OC / groups))
//
// Taps outside the image read as za, so they contribute (za - za) · (...) = 0: this is PyTorch's
// zero padding of the dequantized input. Activations and outputs are NHWC (channels innermost,
// PyTorch's channels_last); weights arrive in torch's [OC, C/groups, KH, KW] layout. Numerics
// (int32 accumulation, output stages) are qgemm.h's; docs/numerics.md ("Integer GEMM", "Conv").
//
// Paths:
//   - general (any groups): per group, the input patches of a tile of output pixels are gathered
//     into rows of K = KH·KW·Cg bytes in (kh, kw, ic) order (im2col), then qgemm() multiplies
//     them with the group's packed weights. A 1x1, stride-1, unpadded conv with groups == 1 needs
//     no gather: the NHWC input rows are the GEMM rows. Where the GEMM kernel reads tapped rows
//     (AMX) and groups == 1 with channels a multiple of 64, the gather is replaced by per-tap
//     offsets into a padded copy of each image (the implicit GEMM, qconv_im2col.cpp).
//   - depthwise (Cg == 1 and OC == groups): q8-dwconv microkernels (ukernels/qdwconv_ukernels.h),
//     SIMD across channels, walking output rows; then the GEMM's output stage.
//   Depthwise with a channel multiplier (Cg == 1, OC = m·groups, m > 1) takes the general path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "isa.h"
#include "qgemm.h"

namespace circle_quant {

enum class ConvKind { kGemm = 0, kDepthwise = 1 };

// The weight tensor's geometry ([out_channels, group_in_channels, kernel_h, kernel_w]).
struct ConvWeightShape {
  int64_t out_channels = 0;
  int64_t group_in_channels = 0;  // C / groups
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t groups = 1;

  int64_t in_channels() const { return group_in_channels * groups; }
  int64_t group_out_channels() const { return groups > 0 ? out_channels / groups : 0; }
  int64_t taps() const { return kernel_h * kernel_w; }
  int64_t reduction() const { return taps() * group_in_channels; }  // K = KH·KW·C/groups
  // K of one group's packed GEMM: K rounded up to kGemmKr, the padding taps reading the input
  // zero point (so they add (za - za)·(w - zb) = 0) and saving the GEMM kernels their partial
  // last group of 4. 1x1 kernels keep K = C/groups: the pointwise path reads the input rows.
  int64_t gemm_reduction() const { return taps() == 1 ? reduction() : packed_k(reduction()); }
};

// Throws std::invalid_argument unless every size is positive, groups divides out_channels and
// the reduction fits kMaxGemmK.
void check_conv_weight_shape(const ConvWeightShape& shape);

ConvKind conv_kind(const ConvWeightShape& shape);

// Depthwise packed layout, two sections (kernels read one or the other):
//   pairs: for tap pair q (taps 2q and 2q + 1, (kh, kw) order) and channel c, one int32 at
//          [q · depthwise_channel_stride(C) + c] whose low int16 is w'(2q, c) and high int16
//          w'(2q + 1, c), w' = w - zb[c] (exact in int16: |w'| ≤ 255). What one vpmaddwd lane
//          multiplies (scalar, AVX2, AVX-512 kernels).
//   quads: for tap group g (taps 4g .. 4g + 3) and 64-channel block b, 256 bytes at
//          [(g · blocks + b) · 256]: byte k·64 + l·16 + j·4 + i holds the stored int8 weight
//          (uint8 weights minus 128) of tap 4g + i, channel 64b + 16l + 4k + j. That is the
//          order in which byte and word unpacks of four taps' channel vectors leave the input
//          bytes, so one vpdpbusd lane multiplies 4 taps of a channel (VNNI kernels).
//   The missing taps of the last pair / group and the padding channels are 0.
constexpr int64_t kDepthwiseChannelAlign = 16;
int64_t depthwise_channel_stride(int64_t channels);
constexpr int64_t kDepthwiseQuadChannels = 64;
size_t depthwise_pairs_bytes(const ConvWeightShape& shape);
size_t depthwise_quads_bytes(const ConvWeightShape& shape);

// Bytes of packed weight data: general conv: `groups` blocks of packed_weight_bytes(OC/groups, K)
// back to back; depthwise: the pairs section, then the quads section (both multiples of 64).
size_t conv_packed_weight_bytes(const ConvWeightShape& shape);

// Packs torch-layout weights (contiguous [OC, Cg, KH, KW], int8, or uint8 when is_unsigned) into
// caller-provided arrays: data (conv_packed_weight_bytes, 4-byte aligned), zero_point_out and
// column_sum_out (OC entries each). zero_point has OC entries or 1 (broadcast).
//   general:   each group through pack_weights() with the reduction in (kh, kw, ic) order;
//              zero_point_out / column_sum_out are pack_weights()'s, group after group.
//   depthwise: zero_point_out = zb in the stored int8 domain (uint8 zero points minus 128, as
//              pack_weights() stores them), column_sum_out[c] = Σ_t w'(t, c).
// Throws std::invalid_argument on a bad shape or zero point. Returns whether any weight zero point
// is non-zero (general path: the GEMM then needs row sums).
bool pack_conv_weights(const void* weight, bool is_unsigned, const ConvWeightShape& shape, const int32_t* zero_point,
                       size_t zero_point_count, int8_t* data, int32_t* zero_point_out, int32_t* column_sum_out);

// The general path's prepacked B (qgemm.h, prepack_gemm_b()) for every group, group after group
// (each group's prepacked_b_bytes(layout, OC/groups, gemm_reduction())); 0 bytes for depthwise
// weights and for layout 0.
size_t conv_prepacked_b_bytes(int32_t layout, const ConvWeightShape& shape);
// Builds it from pack_conv_weights()' bytes (same ISA rule as prepack_gemm_b()).
void prepack_conv_b(int32_t layout, const ConvWeightShape& shape, const int8_t* packed, int8_t* out);
// check_prepacked_gemm_b() on every group.
bool check_prepacked_conv_b(int32_t layout, const ConvWeightShape& shape, const int8_t* prepacked);

// Winograd F(2x2, 3x3) weights (layout in ukernels/qwinograd_ukernels.h). Shapes that can take
// them: 3x3, groups == 1, C ≤ kWinogradMaxChannels (so 4 · the exact sums fits int32).
bool conv_winograd_shape(const ConvWeightShape& shape);
// Whether weights packed with this prepacked B layout get them: the layout of the exact AVX2 GEMM
// (prepacked_b_layout(Isa::kAvx2)), whose levels (avx2, avx512) run the Winograd microkernels.
bool conv_winograd_layout(int32_t prepacked_layout);
size_t winograd_weight_bytes(const ConvWeightShape& shape);  // int16, a multiple of 64 bytes

struct ConvWeightsView;
// The transformed weights of `w` (general path, conv_winograd_shape()), from its packed bytes.
void pack_winograd_weights(const ConvWeightsView& w, int16_t* out);

struct ConvWeightsView {
  ConvWeightShape shape;
  ConvKind kind = ConvKind::kGemm;
  const int8_t* data = nullptr;
  const int32_t* zero_point = nullptr;  // OC entries
  const int32_t* column_sum = nullptr;  // OC entries
  bool has_weight_zero_point = false;
  const int8_t* prepacked_b = nullptr;  // conv_prepacked_b_bytes() of prepacked_layout, or nullptr
  int32_t prepacked_layout = 0;
  const int16_t* winograd = nullptr;  // winograd_weight_bytes(), or nullptr

  // The packed GEMM weights of group g (general path only).
  PackedWeightsView group(int64_t g) const;
};

// Owning form, for tests and C++ callers; like PackedWeights it carries the prepacked B of the
// ISA active when it was packed.
struct ConvWeights {
  ConvWeightShape shape;
  std::vector<int32_t> storage;  // int32 so the depthwise layout is aligned
  std::vector<int32_t> zero_point, column_sum;
  bool has_weight_zero_point = false;
  std::vector<int8_t> prepacked_b;
  int32_t prepacked_layout = 0;
  std::vector<int16_t> winograd;  // when the shape and layout take them (any stride: checked per call)
  ConvWeightsView view() const;
};
ConvWeights pack_conv_weights(const void* weight, bool is_unsigned, const ConvWeightShape& shape,
                              const int32_t* zero_point, size_t zero_point_count);

// Spatial geometry of one call.
struct Conv2dGeometry {
  int64_t batch = 0, in_h = 0, in_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
};

// floor((in + 2·pad - dilation·(kernel - 1) - 1) / stride) + 1, as PyTorch; ≤ 0 when the
// dilated kernel does not fit.
int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);

struct ConvActivations {
  const void* data = nullptr;  // NHWC, contiguous [batch, in_h, in_w, C]
  bool is_signed = false;      // int8 (true) or uint8
  int32_t zero_point = 0;      // inside the type's range
};

// Output pixels [pixel_begin, pixel_end) of the flattened (n, oh, ow) index, output channels
// [channel_begin, channel_end): out is NHWC contiguous [batch, out_h, out_w, OC] of stage.type.
// bias: int32 at scale sa·sb[oc] (OC entries) or nullptr. channel_begin is a multiple of kGemmNr,
// and a range short of all OC channels needs qconv2d_splits_channels(w). Single-threaded
// (thread-local scratch only); every output element is computed by the same instructions whatever
// part of the output a call covers, so any split across threads gives the same bits.
void qconv2d(const ConvActivations& x, const Conv2dGeometry& geometry, const ConvWeightsView& w, const int32_t* bias,
             const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, int64_t channel_begin,
             int64_t channel_end, void* out);
// Whether qconv2d() takes part of these weights' output channels: the GEMM path with one group
// (a depthwise or grouped conv's channels are its groups, split with the pixels).
bool qconv2d_splits_channels(const ConvWeightsView& w);

// Pixels [pixel_begin, pixel_end) of one NCHW image of `channels` planes of `pixels` bytes,
// written channels-last: nhwc[p·channels + c] = nchw[c·pixels + p]. The first conv of most models
// gets its input NCHW; ATen's channels-last copy moved few-channel bytes at about 1 GB/s.
void nchw_to_nhwc_bytes(const uint8_t* nchw, int64_t channels, int64_t pixels, int64_t pixel_begin, int64_t pixel_end,
                        uint8_t* nhwc);

// Whether qconv2d() runs these weights and geometry under `isa` through Winograd tiles: then
// the caller's pixel ranges should be whole pairs of output rows (qconv2d_row_pairs()), or the
// tiles at a range's ends are computed twice.
bool conv_winograd_runs(const ConvWeightsView& w, const Conv2dGeometry& geometry, Isa isa);
// Output pixel where the pair of output rows `pair` (of all images, pairs of each image counted
// from its top, the last pair of an odd height one row) begins; pair = qconv2d_row_pair_count() gives
// the end of the output.
int64_t qconv2d_row_pair_count(int64_t batch, int64_t out_h);
int64_t qconv2d_row_pair_start(int64_t pair, int64_t out_h, int64_t out_w);

// Multiply-accumulates per output pixel (for choosing a parallel grain).
int64_t qconv_macs_per_pixel(const ConvWeightShape& shape);

// The microkernel qconv2d() uses for these weights under the active ISA
// (e.g. "q8-dwconv-c64-avx512vnni", or qgemm_kernel_name()).
const char* qconv_kernel_name(const ConvWeightsView& w);

}  // namespace circle_quant
