// The depthwise conv path: the q8-dwconv microkernels over runs of output pixels, then the GEMM
// output stage (qconv.h, ukernels/qdwconv_ukernels.h).
#include <algorithm>
#include <vector>

#include "qconv_drivers.h"
#include "ukernels/registry.h"

namespace circle_quant {
namespace conv_detail {
namespace {

// A thread-local int32 buffer aligned to 64 bytes, like the GEMM driver's accumulator tile.
int32_t* aligned_scratch(std::vector<int32_t>& storage, size_t n) {
  storage.resize(n + 16);
  const uintptr_t p = reinterpret_cast<uintptr_t>(storage.data());
  return reinterpret_cast<int32_t*>((p + 63) & ~uintptr_t{63});
}

// Accumulators of this many int32 per depthwise tile (32 KB: L1 with a layer's weights).
constexpr int64_t kDepthwiseTileAccumulators = 8192;

}  // namespace

void conv_depthwise(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
                    const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, void* out, int64_t out_h,
                    int64_t out_w, Isa isa) {
  const ConvWeightShape& s = w.shape;
  const int64_t channels = s.out_channels, taps = s.taps();
  const int64_t kernel_h = s.kernel_h, kernel_w = s.kernel_w;
  const ukernels::DwConvMicrokernel& dk = ukernels::dwconv_microkernel_for(isa);
  const ukernels::DwConvAccumulateFn accumulate = x.is_signed ? dk.accumulate_s8 : dk.accumulate_u8;
  const ukernels::DwConvRowsFn accumulate_rows =
      ukernels::dwconv_rows_supported(s.kernel_w, geo.stride_w, geo.dilation_w)
          ? (x.is_signed ? dk.rows_s8 : dk.rows_u8)
          : nullptr;
  const ukernels::GemmMicrokernel& gemm_kernels = ukernels::gemm_microkernel_for(isa);
  const ukernels::RequantizeFn requantize = gemm_kernels.requantize;
  const size_t elem = element_size(stage.type);
  const uint8_t* input = static_cast<const uint8_t*>(x.data);
  const size_t pixel_bytes = static_cast<size_t>(channels);

  // Padding reads za: (za - za) · w' = 0 after the compensation below. Rows above or below the
  // image point into one row of za, walked with the same offsets as an image row.
  thread_local std::vector<uint8_t> zero_row;
  zero_row.assign(static_cast<size_t>(std::max<int64_t>(geo.in_w, 1)) * pixel_bytes,
                  static_cast<uint8_t>(x.zero_point));
  // acc = Σ x·w' with w' = w - zb, so Σ (x - za)·w' + bias = acc + (bias - za·Σ w'). Modulo 2^32
  // like every int32 sum of the kernels.
  thread_local std::vector<int32_t> channel_term;
  channel_term.resize(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    channel_term[c] =
        static_cast<int32_t>(static_cast<uint32_t>(bias != nullptr ? bias[c] : 0) -
                             static_cast<uint32_t>(x.zero_point) * static_cast<uint32_t>(w.column_sum[c]));
  }

  // Output columns [interior_begin, interior_end) have every tap inside the image horizontally:
  // one kernel call covers a run of them, stepping stride_w pixels of input per output pixel.
  const int64_t reach_w = (kernel_w - 1) * geo.dilation_w;
  const int64_t interior_begin = std::min(out_w, (geo.pad_w + geo.stride_w - 1) / geo.stride_w);
  const int64_t last_start = geo.in_w - 1 + geo.pad_w - reach_w;  // ow · stride_w ≤ last_start
  const int64_t interior_end =
      last_start < 0 ? interior_begin : std::clamp<int64_t>(last_start / geo.stride_w + 1, interior_begin, out_w);
  const size_t run_stride = static_cast<size_t>(geo.stride_w) * pixel_bytes;

  const size_t acc_stride = (static_cast<size_t>(channels) + ukernels::kDepthwiseAccumulatorAlign - 1) /
                            ukernels::kDepthwiseAccumulatorAlign * ukernels::kDepthwiseAccumulatorAlign;
  const int64_t tile = std::clamp<int64_t>(kDepthwiseTileAccumulators / static_cast<int64_t>(acc_stride), 1, 128);
  thread_local std::vector<int32_t> acc_storage;
  int32_t* acc = aligned_scratch(acc_storage, static_cast<size_t>(tile) * acc_stride);
  thread_local std::vector<const uint8_t*> row_ptr, tap_ptr;
  row_ptr.resize(static_cast<size_t>(kernel_h));
  tap_ptr.resize(static_cast<size_t>(taps));
  const ukernels::DwConvWeights weights = ukernels::dwconv_weights(w);
  uint8_t* out_bytes = static_cast<uint8_t*>(out);

  const auto run = [&](int64_t ow, int64_t pixels, int32_t* acc_rows) {
    const int64_t iw0 = ow * geo.stride_w - geo.pad_w;
    if (pixels > 1 && accumulate_rows != nullptr) {
      for (int64_t kh = 0; kh < kernel_h; ++kh) tap_ptr[kh] = row_ptr[kh] + static_cast<size_t>(iw0) * pixel_bytes;
      accumulate_rows(static_cast<size_t>(pixels), static_cast<size_t>(channels), static_cast<size_t>(kernel_h),
                      static_cast<size_t>(kernel_w), static_cast<size_t>(geo.stride_w), tap_ptr.data(), weights,
                      acc_rows, acc_stride);
      return;
    }
    const bool interior = pixels > 1 || (ow >= interior_begin && ow < interior_end);
    for (int64_t kh = 0, t = 0; kh < kernel_h; ++kh) {
      for (int64_t kw = 0; kw < kernel_w; ++kw, ++t) {
        const int64_t iw = iw0 + kw * geo.dilation_w;
        tap_ptr[t] = interior || (iw >= 0 && iw < geo.in_w) ? row_ptr[kh] + static_cast<size_t>(iw) * pixel_bytes
                                                            : zero_row.data();
      }
    }
    accumulate(static_cast<size_t>(pixels), static_cast<size_t>(channels), static_cast<size_t>(taps), tap_ptr.data(),
               run_stride, weights, acc_rows, acc_stride);
  };

  for (int64_t p = pixel_begin; p < pixel_end;) {
    // One output row (n, oh), or the part of it inside the range.
    const int64_t n = p / (out_h * out_w), oh = p / out_w % out_h, row_first = p % out_w;
    const int64_t row_pixels = std::min(pixel_end - p, out_w - row_first);
    for (int64_t kh = 0; kh < kernel_h; ++kh) {
      const int64_t ih = oh * geo.stride_h - geo.pad_h + kh * geo.dilation_h;
      row_ptr[kh] = ih >= 0 && ih < geo.in_h ? input + static_cast<size_t>((n * geo.in_h + ih) * geo.in_w) * pixel_bytes
                                             : zero_row.data();
    }
    // The input rows of the next output row of this image that this one does not read, asked
    // for now: at a large batch they come from memory, and the taps walk several rows at once,
    // which the hardware prefetchers follow poorly.
    if (oh + 1 < out_h) {
      const int64_t first_new = oh * geo.stride_h - geo.pad_h + (kernel_h - 1) * geo.dilation_h + 1;
      for (int64_t kh = 0; kh < kernel_h; ++kh) {
        const int64_t ih = (oh + 1) * geo.stride_h - geo.pad_h + kh * geo.dilation_h;
        if (ih < first_new || ih < 0 || ih >= geo.in_h) continue;
        const uint8_t* row = input + static_cast<size_t>((n * geo.in_h + ih) * geo.in_w) * pixel_bytes;
        const size_t row_bytes = static_cast<size_t>(geo.in_w) * pixel_bytes;
        for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(row + b, 0, 3);
      }
    }
    for (int64_t q = 0; q < row_pixels; q += tile) {
      const int64_t ow_end = row_first + std::min(row_pixels, q + tile);
      int64_t rows = 0;
      for (int64_t ow = row_first + q; ow < ow_end;) {
        const int64_t pixels = ow >= interior_begin && ow < interior_end ? std::min(ow_end, interior_end) - ow : 1;
        run(ow, pixels, acc + static_cast<size_t>(rows) * acc_stride);
        rows += pixels;
        ow += pixels;
      }
      uint8_t* tile = out_bytes + static_cast<size_t>(p + q) * pixel_bytes * elem;
      requantize(static_cast<size_t>(rows), static_cast<size_t>(channels), acc, acc_stride, channel_term.data(),
                 w.zero_point, nullptr, stage, 0, tile, static_cast<size_t>(channels));
      if (stage.residual != nullptr) {
        const ResidualAdd& r = *stage.residual;
        gemm_kernels.add_residual(
            static_cast<size_t>(rows), static_cast<size_t>(channels), tile, static_cast<size_t>(channels),
            static_cast<const uint8_t*>(r.other) + static_cast<size_t>(p + q) * r.other_stride * elem, r.other_stride,
            stage.type, stage.mode, r);
      }
    }
    p += row_pixels;
  }
}

}  // namespace conv_detail
}  // namespace circle_quant
