// The general conv path (any groups): im2col patches of a tile of output pixels, multiplied by
// qgemm() with each group's packed weights (qconv.h, qconv_drivers.h).
//
// Kernels that read tapped activations (ukernels::GemmAccumulateTapsFn: AMX, AVX-512 VNNI) skip
// the im2col copy for groups == 1 and channel counts that are multiples of their tap_align: the
// input is copied once per image with its padding around it, and each output row's pixels are GEMM
// rows whose taps are offsets into that copy (the implicit GEMM). The copy is 1/(KH·KW) of
// im2col's bytes; im2col cost half as much as the AMX GEMM on ResNet's 3x3 layers, and with the
// row sums of weight zero points a large share of the VNNI kernel's time (ResNet-18's 64-channel 3x3).
#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "qconv_drivers.h"
#include "scratch.h"
#include "ukernels/registry.h"

namespace circle_quant {
namespace conv_detail {
namespace {

// Copies n activation bytes, moving them by 128 when the kernel reads the other signedness
// (a - za is unchanged because za moves too). Short runs (a stem conv's 3 channels times the
// kernel width) copy 32 bytes when the source has them: the extra bytes land where the next run
// (or the scratch slack, kIm2colSlack) is written afterwards.
constexpr size_t kIm2colSlack = 32;

// At most this many bytes of padded input images per qgemm() call when the call's rows span
// images (conv_gemm): with one of qgemm()'s weight chunks (kGemmChunkBytes) they stay in a 512 KB L2.
constexpr size_t kImageGroupBytes = 256 * 1024;

// Moves 32 bytes (flipped as copy_bytes says): both halves in registers before either store.
inline void move_32_bytes(uint8_t* dst, const uint8_t* src, bool flip) {
#if defined(__SSE2__)
  // Both halves in registers before either store (this file is built for baseline x86-64).
  __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
  __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16));
  if (flip) {
    const __m128i top = _mm_set1_epi8(static_cast<char>(0x80));
    lo = _mm_xor_si128(lo, top);
    hi = _mm_xor_si128(hi, top);
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), lo);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), hi);
#else
  uint8_t chunk[32];
  std::memcpy(chunk, src, 32);
  if (flip) {
    for (uint8_t& b : chunk) b ^= 0x80u;
  }
  std::memcpy(dst, chunk, 32);
#endif
}

inline void copy_bytes(uint8_t* dst, const uint8_t* src, size_t n, bool flip, const uint8_t* src_end) {
  if (n <= 32 && src_end - src >= 32) {
    move_32_bytes(dst, src, flip);
    return;
  }
#if defined(__SSE2__)
  if (n >= 16) {
    // Runs of a few hundred bytes (KW taps × channels): 16-byte moves in line cost less than a
    // call to memcpy per run (measured: the calls took as long as the AMX GEMM on a 3x3 conv of
    // 64 channels). The last move may overlap the one before it.
    const __m128i top = _mm_set1_epi8(static_cast<char>(flip ? 0x80 : 0));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_xor_si128(v, top));
    }
    if (i < n) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + n - 16));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + n - 16), _mm_xor_si128(v, top));
    }
    return;
  }
#endif
  if (flip) {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i] ^ 0x80u;
    return;
  }
  std::memcpy(dst, src, n);
}

// The patch of a 3x3 kernel over 3 channels (the RGB stem of MobileNet, EfficientNet, RegNet and
// most other CNNs since VGG; K = 27, padded to 28), from its three kernel rows' 9-byte runs at
// `offset` (each row readable for 16 bytes from there): assembled in two registers by byte shifts
// and stored as 32 bytes, the last 5 the padding value (the 28th byte, the rest overwritten by the
// next patch or in the slack). Three 32-byte moves, one per run (twice the loads and three times
// the stores), took over a third of the stem conv's time (`perf record`, avx512vnni tier).
inline void gather_3x3_rgb_patch(uint8_t* dst, const uint8_t* const* rows, size_t offset, uint8_t pad_value,
                                 bool flip) {
#if defined(__SSE2__)
  const __m128i first9 = _mm_srli_si128(_mm_set1_epi8(-1), 7);  // bytes 0-8
  const __m128i r0 = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[0] + offset)), first9);
  const __m128i r1 = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[1] + offset)), first9);
  const __m128i r2 = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2] + offset)), first9);
  // Bytes 0-15: run 0, then run 1's first 7; bytes 16-31: run 1's last 2, run 2, padding.
  __m128i lo = _mm_or_si128(r0, _mm_slli_si128(r1, 9));
  __m128i hi = _mm_or_si128(_mm_srli_si128(r1, 7), _mm_slli_si128(r2, 2));
  hi = _mm_or_si128(hi, _mm_slli_si128(_mm_set1_epi8(static_cast<char>(pad_value)), 11));
  if (flip) {  // the taps only: the padding value is in the kernel's domain already
    const __m128i top = _mm_set1_epi8(static_cast<char>(0x80));
    lo = _mm_xor_si128(lo, top);
    hi = _mm_xor_si128(hi, _mm_srli_si128(top, 5));
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), lo);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), hi);
#else
  for (size_t kh = 0; kh < 3; ++kh) {
    for (size_t i = 0; i < 9; ++i) dst[9 * kh + i] = static_cast<uint8_t>(rows[kh][offset + i] ^ (flip ? 0x80u : 0u));
  }
  std::memset(dst + 27, pad_value, 5);
#endif
}

struct Im2col {
  const uint8_t* x;
  const uint8_t* x_end;  // end of the input tensor: short copies may read up to 32 bytes
  int64_t in_h, in_w, in_c;
  int64_t out_h, out_w;
  const Conv2dGeometry* geo;
  const ConvWeightShape* shape;
  uint8_t fill;  // the input zero point in the domain the kernel reads
  bool flip;

  // Rows for `count` output pixels from `pixel` on, group g: row r holds the K bytes of its
  // patch in (kh, kw, ic) order, padding taps set to `fill`.
  void rows(int64_t pixel, int64_t count, int64_t g, uint8_t* dst) const {
    // Everything in locals: byte stores may alias any object, so members and the geometry would
    // be reloaded after every copy.
    const uint8_t* const end = x_end;
    const int64_t h = in_h, w = in_w, c = in_c, ow_n = out_w;
    const int64_t kh_n = shape->kernel_h, kw_n = shape->kernel_w, cg = shape->group_in_channels;
    const int64_t stride_w = geo->stride_w, pad_w = geo->pad_w, dil_w = geo->dilation_w;
    const uint8_t pad_value = fill;
    const bool flip_bytes = flip;
    const size_t k = static_cast<size_t>(shape->gemm_reduction());
    const size_t k_pad = k - static_cast<size_t>(shape->reduction());  // bytes of za after the taps
    const size_t tap_row = static_cast<size_t>(kw_n * cg);
    // groups == 1, unit dilation: the KW taps of one kernel row are one contiguous run.
    const bool whole_rows = cg == c && dil_w == 1;
    thread_local std::vector<const uint8_t*> kernel_rows;  // per kh: image row, or null (padding)
    kernel_rows.resize(static_cast<size_t>(kh_n));
    const uint8_t** row_ptr = kernel_rows.data();

    const int64_t end_pixel = pixel + count;
    uint8_t* out_row = dst;
    for (int64_t p = pixel; p < end_pixel;) {
      // One output row (n, oh), or the part of it inside the range: the kernel rows' image rows
      // are fixed along it.
      const int64_t n = p / (out_h * ow_n), oh = p / ow_n % out_h, ow_first = p % ow_n;
      const int64_t ow_last = std::min(ow_n, ow_first + (end_pixel - p));
      bool rows_inside = true;  // every kernel row inside the image
      for (int64_t kh = 0; kh < kh_n; ++kh) {
        const int64_t ih = oh * geo->stride_h - geo->pad_h + kh * geo->dilation_h;
        row_ptr[kh] = ih >= 0 && ih < h ? x + static_cast<size_t>(((n * h + ih) * w) * c + g * cg) : nullptr;
        rows_inside &= row_ptr[kh] != nullptr;
      }
      // Short runs (a stem conv's KW·C ≤ 32 bytes) of a pixel whose patch lies inside the image
      // and whose last run can be read as 32 bytes: one move per run, nothing tested per run
      // (the general loop below took 1.5x the time on MobileNetV2's 3x3 stem).
      const bool short_runs = whole_rows && rows_inside && tap_row <= 32;
      const uint8_t* const last_row = row_ptr[kh_n - 1];
      const bool rgb_3x3 = short_runs && kh_n == 3 && tap_row == 9 && k == 28;  // gather_3x3_rgb_patch
      for (int64_t ow = ow_first; ow < ow_last; ++ow, out_row += k) {
        const int64_t iw0 = ow * stride_w - pad_w;
        const bool w_inside = iw0 >= 0 && iw0 + (kw_n - 1) * dil_w < w;
        uint8_t* row = out_row;
        if (rgb_3x3 && w_inside && end - (last_row + iw0 * c) >= 16) {
          gather_3x3_rgb_patch(row, row_ptr, static_cast<size_t>(iw0 * c), pad_value, flip_bytes);
          continue;
        }
        if (short_runs && w_inside && end - (last_row + iw0 * c) >= 32) {
          const size_t offset = static_cast<size_t>(iw0 * c);
          for (int64_t kh = 0; kh < kh_n; ++kh, row += tap_row) move_32_bytes(row, row_ptr[kh] + offset, flip_bytes);
        } else {
          for (int64_t kh = 0; kh < kh_n; ++kh, row += tap_row) {
            const uint8_t* x_row = row_ptr[kh];
            if (x_row == nullptr) {
              std::memset(row, pad_value, tap_row);
            } else if (whole_rows && w_inside) {
              copy_bytes(row, x_row + static_cast<size_t>(iw0 * c), tap_row, flip_bytes, end);
            } else {
              uint8_t* tap = row;
              for (int64_t kw = 0; kw < kw_n; ++kw, tap += cg) {
                const int64_t iw = iw0 + kw * dil_w;
                if (iw < 0 || iw >= w) {
                  std::memset(tap, pad_value, static_cast<size_t>(cg));
                } else {
                  copy_bytes(tap, x_row + static_cast<size_t>(iw * c), static_cast<size_t>(cg), flip_bytes, end);
                }
              }
            }
          }
        }
        if (k_pad != 0) {
          // At most 3 bytes: one 4-byte store, the extra byte overwritten next (or in the slack).
          const uint32_t fill4 = pad_value * 0x01010101u;
          std::memcpy(row, &fill4, sizeof fill4);
        }
      }
      p += ow_last - ow_first;
    }
  }
};

// About this many bytes of im2col rows per tile: with the weights' chunk it stays in L2.
constexpr size_t kIm2colTileBytes = 128 * 1024;

}  // namespace

namespace {

// `stage` for output pixels from p0 and channels from c0 on: qgemm() indexes the per-channel
// arrays and the residual like its output. `residual` holds the shifted residual.
OutputStage shifted_stage(const OutputStage& stage, int64_t p0, int64_t c0, size_t elem, ResidualAdd* residual) {
  OutputStage shifted = stage;
  shifted.multiplier = stage.multiplier != nullptr ? stage.multiplier + c0 : nullptr;
  shifted.fixed_multiplier = stage.fixed_multiplier != nullptr ? stage.fixed_multiplier + c0 : nullptr;
  shifted.fixed_shift = stage.fixed_shift != nullptr ? stage.fixed_shift + c0 : nullptr;
  if (stage.residual != nullptr) {
    *residual = *stage.residual;
    residual->other = static_cast<const uint8_t*>(residual->other) +
                      static_cast<size_t>(p0) * residual->other_stride * elem + static_cast<size_t>(c0) * elem;
    shifted.residual = residual;
  }
  return shifted;
}

}  // namespace

void PaddedImage::sum_pixels(const uint8_t* images, size_t first, size_t count, int64_t c, bool kernel_signed,
                             Isa isa) {
  pixel_sums.resize(first + count);
  ukernels::row_sum_kernel_for(isa)(count, static_cast<size_t>(c), images + first * static_cast<size_t>(c),
                                    static_cast<size_t>(c), kernel_signed, pixel_sums.data() + first);
}

void PaddedImage::fill(const ConvActivations& x, const Conv2dGeometry& geo, int64_t c, int64_t n, uint8_t fill_value,
                       bool flip, int64_t extra_h, int64_t extra_w, size_t slack) {
  const int64_t padded_h = geo.in_h + 2 * geo.pad_h + extra_h;
  padded_w = geo.in_w + 2 * geo.pad_w + extra_w;
  write_rows(x, geo, c, n, 1, padded_h, 0, padded_h, fill_value, flip, slack);
}

void PaddedImage::fill_rows(const ConvActivations& x, const Conv2dGeometry& geo, int64_t c, int64_t n, int64_t count,
                            int64_t row_begin, int64_t row_end, uint8_t fill_value, bool flip) {
  padded_w = geo.in_w + 2 * geo.pad_w;
  write_rows(x, geo, c, n, count, geo.in_h + 2 * geo.pad_h, row_begin, row_end, fill_value, flip, 0);
}

void PaddedImage::write_rows(const ConvActivations& x, const Conv2dGeometry& geo, int64_t c, int64_t n, int64_t count,
                             int64_t padded_h, int64_t row_begin, int64_t row_end, uint8_t fill_value, bool flip,
                             size_t slack) {
  const size_t padded_row_bytes = static_cast<size_t>(padded_w * c);
  const size_t rows_bytes = static_cast<size_t>(count * padded_h) * padded_row_bytes;
  bytes = cache_aligned(storage, rows_bytes + slack);
  std::memset(bytes + rows_bytes, fill_value, slack);
  const size_t row_bytes = static_cast<size_t>(geo.in_w * c), left_bytes = static_cast<size_t>(geo.pad_w * c);
  for (int64_t r = row_begin; r < row_end; ++r) {
    uint8_t* dst = bytes + static_cast<size_t>(r) * padded_row_bytes;
    const int64_t h = r % padded_h - geo.pad_h;  // the input row, if any
    if (h < 0 || h >= geo.in_h || geo.in_w == 0) {
      std::memset(dst, fill_value, padded_row_bytes);
      continue;
    }
    const uint8_t* src =
        static_cast<const uint8_t*>(x.data) + static_cast<size_t>((n + r / padded_h) * geo.in_h + h) * row_bytes;
    std::memset(dst, fill_value, left_bytes);
    // The row's own end as the readable end: a row shorter than 32 bytes must not take the 32-byte
    // move, whose extra bytes would be read past the row (past the input, for the last one).
    copy_bytes(dst + left_bytes, src, row_bytes, flip, src + row_bytes);
    std::memset(dst + left_bytes + row_bytes, fill_value, padded_row_bytes - left_bytes - row_bytes);
  }
}

void conv_gemm(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
               const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, int64_t channel_begin,
               int64_t channel_end, void* out, int64_t out_h, int64_t out_w, Isa isa) {
  if (conv_winograd_runs(w, geo, isa)) {
    conv_winograd(x, geo, w, bias, stage, pixel_begin, pixel_end, channel_begin, channel_end, out, out_h, out_w, isa);
    return;
  }
  const ConvWeightShape& s = w.shape;
  const int64_t oc = s.out_channels, ng = s.group_out_channels(), c = s.in_channels();
  const size_t elem = element_size(stage.type);
  uint8_t* out_bytes = static_cast<uint8_t*>(out);

  const bool pointwise = s.groups == 1 && s.kernel_h == 1 && s.kernel_w == 1 && geo.stride_h == 1 &&
                         geo.stride_w == 1 && geo.pad_h == 0 && geo.pad_w == 0;
  if (pointwise) {
    // out_h == in_h, out_w == in_w: output pixel p reads input pixel p.
    GemmActivations a{x.data, x.is_signed, x.zero_point, static_cast<size_t>(c)};
    qgemm(a, pixel_begin, pixel_end, w.group(0), channel_begin, channel_end, bias, stage, out, static_cast<size_t>(oc));
    return;
  }

  const GemmSession session;  // one tile configuration for the many qgemm() calls below
  // Write the patches in the domain the GEMM kernel reads, so qgemm() need not copy them again.
  const bool kernel_signed = ukernels::gemm_microkernel_for(isa).a_signed;
  const bool flip = x.is_signed != kernel_signed;
  const int32_t za = x.zero_point + (flip ? (x.is_signed ? 128 : -128) : 0);
  const uint8_t* x_begin = static_cast<const uint8_t*>(x.data);
  const Im2col im2col{x_begin,  x_begin + static_cast<size_t>(geo.batch * geo.in_h * geo.in_w * c),
                      geo.in_h, geo.in_w,
                      c,        out_h,
                      out_w,    &geo,
                      &s,       static_cast<uint8_t>(za),
                      flip};

  const size_t k = static_cast<size_t>(s.gemm_reduction());
  const int64_t tile = std::clamp<int64_t>(static_cast<int64_t>(kIm2colTileBytes / k) / 16 * 16, 16, 256);
  thread_local std::vector<uint8_t> patch_storage;
  uint8_t* const patches = cache_aligned(patch_storage, static_cast<size_t>(tile) * k + kIm2colSlack);

  // Output pixels [p0, p1) through im2col, tile by tile, group by group (one group: the channel
  // range; several: each group's channels, all of them).
  const int64_t group_n_begin = s.groups == 1 ? channel_begin : 0, group_n_end = s.groups == 1 ? channel_end : ng;
  const auto through_im2col = [&](int64_t p0_begin, int64_t p1) {
    for (int64_t p0 = p0_begin; p0 < p1; p0 += tile) {
      const int64_t rows = std::min(tile, p1 - p0);
      for (int64_t g = 0; g < s.groups; ++g) {
        im2col.rows(p0, rows, g, patches);
        const GemmActivations a{patches, kernel_signed, za, k};
        const int64_t c0 = g * ng;
        ResidualAdd residual;
        const OutputStage group_stage = shifted_stage(stage, p0, c0, elem, &residual);
        qgemm(a, 0, rows, w.group(g), group_n_begin, group_n_end, bias != nullptr ? bias + c0 : nullptr, group_stage,
              out_bytes + static_cast<size_t>(p0 * oc + c0) * elem, static_cast<size_t>(oc));
      }
    }
  };

  const PackedWeightsView group0 = w.group(0);
  const int32_t layout = group0.prepacked_b != nullptr ? group0.prepacked_layout : 0;
  // The blocks of the call's channels: qgemm() picks its kernel by them.
  const size_t blocks = static_cast<size_t>((channel_end - channel_begin + static_cast<int64_t>(kGemmNr) - 1) /
                                            static_cast<int64_t>(kGemmNr));
  const bool tapped =
      s.groups == 1 && qgemm_taps_supported(isa, blocks, static_cast<size_t>(out_w), layout, static_cast<size_t>(c));
  if (!tapped) {
    through_im2col(pixel_begin, pixel_end);
    return;
  }

  // The implicit GEMM, one output row (or the part of it in the range) per qgemm() call: its pixels
  // read the padded image at one stride, each tap at its own offset.
  thread_local PaddedImage padded;
  thread_local std::vector<int64_t> tap_offsets;
  const int64_t padded_w = geo.in_w + 2 * geo.pad_w;
  tap_offsets.clear();
  for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
    for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
      tap_offsets.push_back((kh * geo.dilation_h * padded_w + kw * geo.dilation_w) * c);
    }
  }
  // Kernels that read rows by offset (AVX-512 VNNI) take an image's pixels of the range in one
  // call, each GEMM row at its own offset (below). For the others (AMX: tile loads take one
  // stride), an output row per call leaves the last row tile part empty (7 or 14 pixels in tiles of 8 or
  // 16 rows; 28 in tiles of 8: 4 of 32 rows). Whole output rows then go to one qgemm() call as
  // virtual rows (qgemm.h), read at one stride across the row ends, when the pixels computed and
  // dropped there (the padding columns) are at most a quarter, and for rows of 16 pixels or more
  // a smaller share than the empty tile rows. Output row j, pixel ow is virtual row j · period + ow.
  const int64_t row_step = geo.stride_h * padded_w;  // input pixels from one output row to the next
  const int64_t period = row_step % geo.stride_w == 0 ? row_step / geo.stride_w : 0;
  const ukernels::GemmMicrokernel& row_kernel =
      ukernels::gemm_microkernel_for(isa, blocks, static_cast<size_t>(out_w), layout);
  const int64_t tile_rows = static_cast<int64_t>(row_kernel.mr);
  const int64_t row_slots = row_kernel.balance_row_tiles ? out_w : (out_w + tile_rows - 1) / tile_rows * tile_rows;
  const bool virtual_rows = period > 0 && (period - out_w) * 4 <= period &&
                            (out_w < 16 || (period - out_w) * row_slots < (row_slots - out_w) * period);
  // Rows by offset cost the tile a few percent (it steps a pointer per row): rows that read as
  // virtual rows with at most 1/16 of them dropped (56 x 56 layers: 2 of 58) stay so.
  const bool offsets_pay = !(virtual_rows && (period - out_w) * 16 <= period);
  thread_local std::vector<int64_t> row_offsets;
  const int64_t image_pixels = out_h * out_w;
  // Unpadded input in the kernel's domain (a strided 1x1 conv) is read where it is.
  const bool in_place = geo.pad_h == 0 && geo.pad_w == 0 && !flip;
  const int64_t input_rows = geo.in_h + 2 * geo.pad_h, input_pixels = input_rows * padded_w;  // of one (padded) image
  const size_t padded_image_bytes = static_cast<size_t>(input_pixels * c);
  // Each thread pads only the input rows its range reads: in the range's last image, up to its
  // last output row's last kernel row.
  const int64_t last_image = (pixel_end - 1) / image_pixels;
  const int64_t last_row_end =
      std::min(input_rows, (pixel_end - 1) / out_w % out_h * geo.stride_h + (s.kernel_h - 1) * geo.dilation_h + 1);
  // Rows by offset may span images. When the call's weights are more than one of qgemm()'s column
  // chunks, each chunk is read from memory once per call: per image, a 512-channel 3x3 layer's
  // 2.4 MB were read 32 times at batch 32. So the pixels of several whole images, up to
  // kImageGroupBytes of (padded) input, go to one call, and the chunk is read once per group.
  const bool weights_span_chunks = group0.block_stride() * blocks > kGemmChunkBytes;
  const int64_t images_per_call =
      weights_span_chunks
          ? std::max<int64_t>(1, static_cast<int64_t>(kImageGroupBytes / std::max<size_t>(padded_image_bytes, 1)))
          : 1;
  int64_t first_image = -1, images = 0;  // those in `padded` (in place: those its pixel sums cover)
  for (int64_t p = pixel_begin; p < pixel_end;) {
    const int64_t n = p / image_pixels, oh = p / out_w % out_h, ow = p % out_w;
    // Kernels that read rows by offset take the range's pixels of this image (and of the next
    // whole ones, above) in one call, exactly (virtual rows computed a quarter more pixels than
    // ResNet's 7x7 layers have, and an eighth at 14x14).
    const int64_t call_pixels = std::min(pixel_end, (n + images_per_call) * image_pixels) - p;
    const bool by_offset =
        offsets_pay &&
        qgemm_taps_supported(isa, blocks, static_cast<size_t>(call_pixels), layout, static_cast<size_t>(c)) &&
        qgemm_rows_by_offset(isa, blocks, static_cast<size_t>(call_pixels), layout);
    int64_t rows = by_offset ? call_pixels : std::min(out_w - ow, pixel_end - p);
    // Otherwise whole output rows of this image from here, as virtual rows.
    const int64_t whole_rows =
        virtual_rows && !by_offset && ow == 0 ? std::min((pixel_end - p) / out_w, out_h - oh) : 0;
    const int64_t gemm_rows = whole_rows >= 2 ? (whole_rows - 1) * period + out_w : rows;
    if (whole_rows >= 2) rows = whole_rows * out_w;
    if (!qgemm_taps_supported(isa, blocks, static_cast<size_t>(gemm_rows), layout, static_cast<size_t>(c))) {
      through_im2col(p, p + rows);  // a row's few pixels at either end of the range
      p += rows;
      continue;
    }
    const int64_t call_images = (p + rows - 1) / image_pixels - n + 1;
    if (n < first_image || n + call_images > first_image + images) {
      first_image = n;
      images = call_images;
      // The padded rows the range reads in these images, stacked: from its first output row's
      // (in the range's first image) to its last one's last kernel row (in its last image).
      const int64_t row_begin = n == pixel_begin / image_pixels ? pixel_begin / out_w % out_h * geo.stride_h : 0;
      const int64_t row_end = (images - 1) * input_rows + (n + images - 1 == last_image ? last_row_end : input_rows);
      if (!in_place) padded.fill_rows(x, geo, c, n, images, row_begin, row_end, static_cast<uint8_t>(za), flip);
      if (group0.has_weight_zero_point) {
        const uint8_t* first = in_place ? x_begin + static_cast<size_t>(n) * padded_image_bytes : padded.bytes;
        padded.sum_pixels(first, static_cast<size_t>(row_begin * padded_w),
                          static_cast<size_t>((row_end - row_begin) * padded_w), c, kernel_signed, isa);
      }
    }
    const size_t image_offset = static_cast<size_t>(n - first_image) * padded_image_bytes;  // of image n
    const uint8_t* image_begin =
        (in_place ? x_begin + static_cast<size_t>(first_image) * padded_image_bytes : padded.bytes) + image_offset;
    // The first pixel's input pixel in the padded image (rows by offset: each pixel's, from 0).
    const int64_t first_pixel = by_offset ? 0 : oh * geo.stride_h * padded_w + ow * geo.stride_w;
    GemmActivations a{image_begin + static_cast<size_t>(first_pixel * c), kernel_signed, za,
                      static_cast<size_t>(geo.stride_w * c)};
    a.tap_offsets = tap_offsets.data();
    a.taps = tap_offsets.size();
    if (group0.has_weight_zero_point) {
      a.tap_run_sums = padded.pixel_sums.data() + image_offset / static_cast<size_t>(c) + first_pixel;
    }
    if (by_offset) {  // pixel q of image n + j reads from j · padded_image_bytes
      row_offsets.resize(static_cast<size_t>(rows));
      for (int64_t i = 0, q = oh * out_w + ow; i < rows; ++i, ++q) {
        const int64_t j = q / image_pixels, r = q % image_pixels;
        row_offsets[static_cast<size_t>(i)] = j * static_cast<int64_t>(padded_image_bytes) +
                                              (r / out_w * geo.stride_h * padded_w + r % out_w * geo.stride_w) * c;
      }
      a.row_offsets = row_offsets.data();
    }
    if (whole_rows >= 2) {
      a.row_period = static_cast<size_t>(period);
      a.row_valid = static_cast<size_t>(out_w);
    }
    ResidualAdd residual;
    const OutputStage row_stage = shifted_stage(stage, p, 0, elem, &residual);
    qgemm(a, 0, gemm_rows, group0, channel_begin, channel_end, bias, row_stage,
          out_bytes + static_cast<size_t>(p * oc) * elem, static_cast<size_t>(oc));
    p += rows;
  }
}

}  // namespace conv_detail
}  // namespace circle_quant
