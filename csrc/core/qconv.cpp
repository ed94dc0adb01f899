// Quantized conv2d: output geometry and the entry point, which takes the depthwise path or the
// im2col + GEMM one (qconv.h). Packing: qconv_pack.cpp; the paths: qconv_drivers.h.
#include "qconv.h"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "isa.h"
#include "qconv_drivers.h"
#include "ukernels/registry.h"

namespace circle_quant {

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;
  return span / stride + 1;
}

int64_t qconv_macs_per_pixel(const ConvWeightShape& s) { return s.out_channels * s.reduction(); }

namespace {

// A fixed channel count lets the compiler unroll the inner loop (ATen's copy walked it generically).
template <int64_t kChannels>
void interleave_planes(const uint8_t* nchw, int64_t channels, int64_t pixels, int64_t begin, int64_t end,
                       uint8_t* nhwc) {
  const int64_t c_n = kChannels > 0 ? kChannels : channels;
  for (int64_t p = begin; p < end; ++p) {
    for (int64_t c = 0; c < c_n; ++c) nhwc[p * c_n + c] = nchw[c * pixels + p];
  }
}

}  // namespace

void nchw_to_nhwc_bytes(const uint8_t* nchw, int64_t channels, int64_t pixels, int64_t pixel_begin, int64_t pixel_end,
                        uint8_t* nhwc) {
  switch (channels) {
    case 1: std::memcpy(nhwc + pixel_begin, nchw + pixel_begin, static_cast<size_t>(pixel_end - pixel_begin)); break;
    case 2: interleave_planes<2>(nchw, channels, pixels, pixel_begin, pixel_end, nhwc); break;
    case 3: interleave_planes<3>(nchw, channels, pixels, pixel_begin, pixel_end, nhwc); break;
    case 4: interleave_planes<4>(nchw, channels, pixels, pixel_begin, pixel_end, nhwc); break;
    default: interleave_planes<0>(nchw, channels, pixels, pixel_begin, pixel_end, nhwc); break;
  }
}

bool qconv2d_splits_channels(const ConvWeightsView& w) { return w.kind == ConvKind::kGemm && w.shape.groups == 1; }

void qconv2d(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
             const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, int64_t channel_begin,
             int64_t channel_end, void* out) {
  if (pixel_begin >= pixel_end || channel_begin >= channel_end) return;
  const ConvWeightShape& s = w.shape;
  if (channel_begin < 0 || channel_end > s.out_channels || channel_begin % static_cast<int64_t>(kGemmNr) != 0) {
    throw std::invalid_argument(fmt::format(
        "circle_quant: conv output channels [{}, {}) are not a range of the {} channels starting at a multiple of {}",
        channel_begin, channel_end, s.out_channels, kGemmNr));
  }
  if ((channel_begin > 0 || channel_end < s.out_channels) && !qconv2d_splits_channels(w)) {
    throw std::invalid_argument(
        fmt::format("circle_quant: a {} conv ({} groups) computes all its output channels per call, not [{}, {})",
                    w.kind == ConvKind::kDepthwise ? "depthwise" : "grouped", s.groups, channel_begin, channel_end));
  }
  const int64_t out_h = conv_output_size(geo.in_h, s.kernel_h, geo.stride_h, geo.pad_h, geo.dilation_h);
  const int64_t out_w = conv_output_size(geo.in_w, s.kernel_w, geo.stride_w, geo.pad_w, geo.dilation_w);
  if (pixel_begin < 0 || pixel_end > geo.batch * out_h * out_w) {
    throw std::invalid_argument(fmt::format("circle_quant: conv output pixels [{}, {}) outside the {} of the output",
                                            pixel_begin, pixel_end, geo.batch * out_h * out_w));
  }
  if (stage.residual != nullptr && stage.type == OutputType::kFloat) {
    throw std::invalid_argument("circle_quant: a fused residual add needs a quantized output");
  }
  const Isa isa = active_isa();
  if (w.kind == ConvKind::kDepthwise) {
    conv_detail::conv_depthwise(x, geo, w, bias, stage, pixel_begin, pixel_end, out, out_h, out_w, isa);
  } else {
    conv_detail::conv_gemm(x, geo, w, bias, stage, pixel_begin, pixel_end, channel_begin, channel_end, out, out_h,
                           out_w, isa);
  }
}

const char* qconv_kernel_name(const ConvWeightsView& w) {
  if (w.kind == ConvKind::kDepthwise) return ukernels::dwconv_microkernel_for(active_isa()).name;
  return qgemm_kernel_name();
}

}  // namespace circle_quant
