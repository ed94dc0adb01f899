// The two conv paths qconv2d() chooses between (qconv.h), one file each:
// qconv_im2col.cpp (im2col + qgemm(), any groups) and qconv_depthwise.cpp (the q8-dwconv
// microkernels). Internal to csrc/core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "isa.h"
#include "qconv.h"

namespace circle_quant {
namespace conv_detail {

inline size_t element_size(OutputType type) {
  return type == OutputType::kFloat ? 4 : type == OutputType::kInt16 ? 2 : 1;
}

// One image of the input with its padding rows and columns set to the zero point, in the domain the
// kernel reads: what the tapped rows of the implicit GEMM and the Winograd tiles point into.
struct PaddedImage {
  std::vector<uint8_t> storage;
  uint8_t* bytes = nullptr;  // in storage, on a cache line: the tile loads' rows start on lines
  int64_t padded_w = 0;
  std::vector<int32_t> pixel_sums;  // Σ of each padded pixel's channels: the GEMM's run sums

  // When the weights have zero points, the row sums they need come from these: each padded
  // pixel summed once, instead of once per tap that reads it. Pixels [first, first + count) of
  // the padded images from `images` (bytes, or the input read in place); the others stay unsummed.
  void sum_pixels(const uint8_t* images, size_t first, size_t count, int64_t c, bool kernel_signed, Isa isa);

  // Image n with pad_h / pad_w of fill_value around it, plus extra_h rows below and extra_w
  // columns right (the Winograd tiles' overhang) and `slack` bytes after the end; bytes moved by
  // 128 when `flip`.
  void fill(const ConvActivations& x, const Conv2dGeometry& geo, int64_t c, int64_t n, uint8_t fill_value, bool flip,
            int64_t extra_h = 0, int64_t extra_w = 0, size_t slack = 0);
  // Images [n, n + count) padded as fill() pads one (no extra rows, columns or slack), one after
  // another, writing only rows [row_begin, row_end) of them stacked as one image (image j's row r
  // is row j · padded_h + r): those a thread's range of output pixels reads. The other rows keep
  // whatever they held.
  void fill_rows(const ConvActivations& x, const Conv2dGeometry& geo, int64_t c, int64_t n, int64_t count,
                 int64_t row_begin, int64_t row_end, uint8_t fill_value, bool flip);

 private:
  // Sizes the storage for `count` images of padded_h rows (plus slack) and writes rows
  // [row_begin, row_end) of them.
  void write_rows(const ConvActivations& x, const Conv2dGeometry& geo, int64_t c, int64_t n, int64_t count,
                  int64_t padded_h, int64_t row_begin, int64_t row_end, uint8_t fill_value, bool flip, size_t slack);
};

// Output pixels [pixel_begin, pixel_end) of an out_h × out_w output under `isa`, the GEMM paths'
// channels [channel_begin, channel_end), the depthwise path's all (qconv2d()'s contract; the
// arguments are checked there).
void conv_gemm(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
               const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, int64_t channel_begin,
               int64_t channel_end, void* out, int64_t out_h, int64_t out_w, Isa isa);
// conv_gemm()'s path for calls conv_winograd_runs() accepts (qconv_winograd.cpp).
void conv_winograd(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
                   const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, int64_t channel_begin,
                   int64_t channel_end, void* out, int64_t out_h, int64_t out_w, Isa isa);
void conv_depthwise(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
                    const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, void* out, int64_t out_h,
                    int64_t out_w, Isa isa);

}  // namespace conv_detail
}  // namespace circle_quant
