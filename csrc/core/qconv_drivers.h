// The two conv paths qconv2d() chooses between (qconv.h), one file each:
// qconv_im2col.cpp (im2col + qgemm(), any groups) and qconv_depthwise.cpp (the q8-dwconv
// microkernels). Internal to csrc/core.
#pragma once

#include <cstddef>
#include <cstdint>

#include "isa.h"
#include "qconv.h"

namespace circle_quant {
namespace conv_detail {

inline size_t element_size(OutputType type) {
  return type == OutputType::kFloat ? 4 : type == OutputType::kInt16 ? 2 : 1;
}

// Output pixels [pixel_begin, pixel_end) of an out_h × out_w output under `isa` (qconv2d()'s
// contract; the arguments are checked there).
void conv_gemm(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
               const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, void* out, int64_t out_h,
               int64_t out_w, Isa isa);
void conv_depthwise(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
                    const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, void* out, int64_t out_h,
                    int64_t out_w, Isa isa);

}  // namespace conv_detail
}  // namespace circle_quant
