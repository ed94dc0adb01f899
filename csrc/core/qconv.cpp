// Quantized conv2d: weight packing, im2col + qgemm() driver and the depthwise driver (qconv.h).
#include "qconv.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "isa.h"
#include "ukernels/registry.h"

namespace circle_quant {

void check_conv_weight_shape(const ConvWeightShape& s) {
  if (s.out_channels <= 0 || s.group_in_channels <= 0 || s.kernel_h <= 0 || s.kernel_w <= 0 ||
      s.groups <= 0) {
    throw std::invalid_argument(fmt::format(
        "circle_quant: conv weight shape [{}, {}, {}, {}] with groups={} must have positive sizes",
        s.out_channels, s.group_in_channels, s.kernel_h, s.kernel_w, s.groups));
  }
  if (s.out_channels % s.groups != 0) {
    throw std::invalid_argument(fmt::format(
        "circle_quant: {} output channels are not divisible by groups={}", s.out_channels, s.groups));
  }
  if (s.reduction() > kMaxGemmK) {
    throw std::invalid_argument(fmt::format(
        "circle_quant: conv reduction KH·KW·C/groups = {} exceeds the int8 GEMM's limit of {} "
        "(int32 accumulators could overflow)", s.reduction(), kMaxGemmK));
  }
}

ConvKind conv_kind(const ConvWeightShape& s) {
  return s.group_in_channels == 1 && s.out_channels == s.groups ? ConvKind::kDepthwise
                                                                : ConvKind::kGemm;
}

int64_t depthwise_channel_stride(int64_t channels) {
  return (channels + kDepthwiseChannelAlign - 1) / kDepthwiseChannelAlign * kDepthwiseChannelAlign;
}

namespace {

int64_t depthwise_pairs(const ConvWeightShape& s) { return (s.taps() + 1) / 2; }
int64_t depthwise_quad_groups(const ConvWeightShape& s) { return (s.taps() + 3) / 4; }
int64_t depthwise_quad_blocks(const ConvWeightShape& s) {
  return (s.out_channels + kDepthwiseQuadChannels - 1) / kDepthwiseQuadChannels;
}

}  // namespace

size_t depthwise_pairs_bytes(const ConvWeightShape& s) {
  return static_cast<size_t>(depthwise_pairs(s) * depthwise_channel_stride(s.out_channels)) *
         sizeof(int32_t);
}

size_t depthwise_quads_bytes(const ConvWeightShape& s) {
  return static_cast<size_t>(depthwise_quad_groups(s) * depthwise_quad_blocks(s)) * 256;
}

size_t conv_packed_weight_bytes(const ConvWeightShape& s) {
  if (conv_kind(s) == ConvKind::kDepthwise) return depthwise_pairs_bytes(s) + depthwise_quads_bytes(s);
  return static_cast<size_t>(s.groups) * packed_weight_bytes(s.group_out_channels(), s.gemm_reduction());
}

bool pack_conv_weights(const void* weight, bool is_unsigned, const ConvWeightShape& s,
                       const int32_t* zero_point, size_t zero_point_count, int8_t* data,
                       int32_t* zero_point_out, int32_t* column_sum_out) {
  check_conv_weight_shape(s);
  const int64_t oc = s.out_channels;
  if (zero_point_count != 1 && zero_point_count != static_cast<size_t>(oc)) {
    throw std::invalid_argument(fmt::format(
        "circle_quant: {} weight zero points for {} output channels", zero_point_count, oc));
  }
  const int64_t taps = s.taps();
  const auto weight_at = [&](size_t i) {
    return is_unsigned ? static_cast<int32_t>(static_cast<const uint8_t*>(weight)[i])
                       : static_cast<int32_t>(static_cast<const int8_t*>(weight)[i]);
  };

  if (conv_kind(s) == ConvKind::kDepthwise) {
    const int32_t lo = is_unsigned ? 0 : -128, hi = is_unsigned ? 255 : 127;
    const int32_t offset = is_unsigned ? 128 : 0;  // stored int8 = weight - offset
    const int64_t stride = depthwise_channel_stride(oc);
    int32_t* pairs = reinterpret_cast<int32_t*>(data);
    int8_t* quads = data + depthwise_pairs_bytes(s);
    std::fill(data, data + conv_packed_weight_bytes(s), int8_t{0});
    const int64_t blocks = depthwise_quad_blocks(s);
    bool any_zero_point = false;
    for (int64_t c = 0; c < oc; ++c) {
      const int32_t zp = zero_point[zero_point_count == 1 ? 0 : c];
      if (zp < lo || zp > hi) {
        throw std::invalid_argument(fmt::format(
            "circle_quant: weight zero point {} of channel {} is outside [{}, {}]", zp, c, lo, hi));
      }
      any_zero_point |= zp != offset;
      int32_t sum = 0;
      const int64_t block = c / kDepthwiseQuadChannels, in_block = c % kDepthwiseQuadChannels;
      // Position of channel c inside its block's 64-byte rows (see qconv.h): lane l = in_block / 16,
      // accumulator k = in_block % 16 / 4, j = in_block % 4.
      const int64_t quad_at = (in_block % 16 / 4) * 64 + (in_block / 16) * 16 + (in_block % 4) * 4;
      for (int64_t t = 0; t < taps; ++t) {
        // [OC, 1, KH, KW]: the taps of channel c are contiguous, already in (kh, kw) order.
        const int32_t w = weight_at(static_cast<size_t>(c * taps + t));
        const int32_t wp = w - zp;
        uint32_t& pair = reinterpret_cast<uint32_t&>(pairs[(t / 2) * stride + c]);
        pair |= static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(wp))) << (t % 2 ? 16 : 0);
        quads[((t / 4) * blocks + block) * 256 + quad_at + t % 4] = static_cast<int8_t>(w - offset);
        sum += wp;
      }
      zero_point_out[c] = zp - offset;
      column_sum_out[c] = sum;
    }
    return any_zero_point;
  }

  // Reorder [OC, Cg, KH, KW] to rows of (kh, kw, ic), then pack each group's rows as a GEMM.
  // Padding taps (k ≥ K) get weight 0: their activations are za, so any weight adds 0.
  const int64_t cg = s.group_in_channels, k = s.gemm_reduction(), ng = s.group_out_channels();
  // (int8 and uint8 alike: pack_weights() reads the bytes with the right signedness.)
  const uint8_t* src = static_cast<const uint8_t*>(weight);
  std::vector<uint8_t> rows(static_cast<size_t>(oc * k), 0);
  for (int64_t o = 0; o < oc; ++o) {
    for (int64_t ic = 0; ic < cg; ++ic) {
      for (int64_t t = 0; t < taps; ++t) {
        rows[static_cast<size_t>(o * k + t * cg + ic)] = src[static_cast<size_t>((o * cg + ic) * taps + t)];
      }
    }
  }
  const size_t group_bytes = packed_weight_bytes(ng, k);
  bool any_zero_point = false;
  for (int64_t g = 0; g < s.groups; ++g) {
    const int64_t c0 = g * ng;
    any_zero_point |= pack_weights(
        rows.data() + static_cast<size_t>(c0 * k), is_unsigned, ng, k, static_cast<size_t>(k),
        zero_point_count == 1 ? zero_point : zero_point + c0, zero_point_count == 1 ? 1 : static_cast<size_t>(ng),
        data + static_cast<size_t>(g) * group_bytes, zero_point_out + c0, column_sum_out + c0);
  }
  return any_zero_point;
}

PackedWeightsView ConvWeightsView::group(int64_t g) const {
  const int64_t ng = shape.group_out_channels(), k = shape.gemm_reduction();
  PackedWeightsView v;
  v.n = ng;
  v.k = k;
  v.k_padded = packed_k(k);
  v.n_blocks = (ng + kGemmNr - 1) / kGemmNr;
  v.data = data + static_cast<size_t>(g) * packed_weight_bytes(ng, k);
  v.zero_point = zero_point + g * ng;
  v.column_sum = column_sum + g * ng;
  v.has_weight_zero_point = has_weight_zero_point;
  return v;
}

ConvWeightsView ConvWeights::view() const {
  ConvWeightsView v;
  v.shape = shape;
  v.kind = conv_kind(shape);
  v.data = reinterpret_cast<const int8_t*>(storage.data());
  v.zero_point = zero_point.data();
  v.column_sum = column_sum.data();
  v.has_weight_zero_point = has_weight_zero_point;
  return v;
}

ConvWeights pack_conv_weights(const void* weight, bool is_unsigned, const ConvWeightShape& shape,
                              const int32_t* zero_point, size_t zero_point_count) {
  check_conv_weight_shape(shape);
  ConvWeights w;
  w.shape = shape;
  w.storage.resize((conv_packed_weight_bytes(shape) + sizeof(int32_t) - 1) / sizeof(int32_t));
  w.zero_point.resize(static_cast<size_t>(shape.out_channels));
  w.column_sum.resize(static_cast<size_t>(shape.out_channels));
  w.has_weight_zero_point = pack_conv_weights(
      weight, is_unsigned, shape, zero_point, zero_point_count,
      reinterpret_cast<int8_t*>(w.storage.data()), w.zero_point.data(), w.column_sum.data());
  return w;
}

namespace ukernels {

DwConvWeights dwconv_weights(const ConvWeightsView& w) {
  DwConvWeights d;
  d.pairs = reinterpret_cast<const int32_t*>(w.data);
  d.pair_stride = static_cast<size_t>(depthwise_channel_stride(w.shape.out_channels));
  d.quads = w.data + depthwise_pairs_bytes(w.shape);
  d.quad_stride = static_cast<size_t>(depthwise_quad_blocks(w.shape)) * 256;
  d.zero_point = w.has_weight_zero_point ? w.zero_point : nullptr;
  d.weight_sum = w.column_sum;
  return d;
}

}  // namespace ukernels

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;
  return span / stride + 1;
}

int64_t qconv_macs_per_pixel(const ConvWeightShape& s) { return s.out_channels * s.reduction(); }

// ---------------------------------------------------------------------------------------------
// Drivers.

namespace {

size_t element_size(OutputType type) {
  return type == OutputType::kFloat ? 4 : type == OutputType::kInt16 ? 2 : 1;
}

// A thread-local int32 buffer aligned to 64 bytes, like the GEMM driver's accumulator tile.
int32_t* aligned_scratch(std::vector<int32_t>& storage, size_t n) {
  storage.resize(n + 16);
  const uintptr_t p = reinterpret_cast<uintptr_t>(storage.data());
  return reinterpret_cast<int32_t*>((p + 63) & ~uintptr_t{63});
}

// Copies n activation bytes, moving them by 128 when the kernel reads the other signedness
// (a - za is unchanged because za moves too). Short runs (a stem conv's 3 channels times the
// kernel width) copy 32 bytes when the source has them: the extra bytes land where the next run
// (or the scratch slack, kIm2colSlack) is written afterwards.
constexpr size_t kIm2colSlack = 32;

inline void copy_bytes(uint8_t* dst, const uint8_t* src, size_t n, bool flip, const uint8_t* src_end) {
  if (n <= 32 && src_end - src >= 32) {
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
    return;
  }
  if (flip) {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i] ^ 0x80u;
    return;
  }
  std::memcpy(dst, src, n);
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
      for (int64_t kh = 0; kh < kh_n; ++kh) {
        const int64_t ih = oh * geo->stride_h - geo->pad_h + kh * geo->dilation_h;
        row_ptr[kh] = ih >= 0 && ih < h ? x + static_cast<size_t>(((n * h + ih) * w) * c + g * cg) : nullptr;
      }
      for (int64_t ow = ow_first; ow < ow_last; ++ow, out_row += k) {
        const int64_t iw0 = ow * stride_w - pad_w;
        const bool w_inside = iw0 >= 0 && iw0 + (kw_n - 1) * dil_w < w;
        uint8_t* row = out_row;
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

void conv_gemm(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w,
               const int32_t* bias, const OutputStage& stage, int64_t pixel_begin,
               int64_t pixel_end, void* out, int64_t out_h, int64_t out_w, Isa isa) {
  const ConvWeightShape& s = w.shape;
  const int64_t oc = s.out_channels, ng = s.group_out_channels(), c = s.in_channels();
  const size_t elem = element_size(stage.type);
  uint8_t* out_bytes = static_cast<uint8_t*>(out);

  const bool pointwise = s.groups == 1 && s.kernel_h == 1 && s.kernel_w == 1 &&
                         geo.stride_h == 1 && geo.stride_w == 1 && geo.pad_h == 0 && geo.pad_w == 0;
  if (pointwise) {
    // out_h == in_h, out_w == in_w: output pixel p reads input pixel p.
    GemmActivations a{x.data, x.is_signed, x.zero_point, static_cast<size_t>(c)};
    qgemm(a, pixel_begin, pixel_end, w.group(0), 0, oc, bias, stage, out, static_cast<size_t>(oc));
    return;
  }

  // Write the patches in the domain the GEMM kernel reads, so qgemm() need not copy them again.
  const bool kernel_signed = ukernels::gemm_microkernel_for(isa).a_signed;
  const bool flip = x.is_signed != kernel_signed;
  const int32_t za = x.zero_point + (flip ? (x.is_signed ? 128 : -128) : 0);
  const uint8_t* x_begin = static_cast<const uint8_t*>(x.data);
  const Im2col im2col{x_begin, x_begin + static_cast<size_t>(geo.batch * geo.in_h * geo.in_w * c),
                      geo.in_h, geo.in_w, c, out_h, out_w, &geo, &s, static_cast<uint8_t>(za), flip};

  const size_t k = static_cast<size_t>(s.gemm_reduction());
  const int64_t tile = std::clamp<int64_t>(
      static_cast<int64_t>(kIm2colTileBytes / k) / 16 * 16, 16, 256);
  thread_local std::vector<uint8_t> patches;
  patches.resize(static_cast<size_t>(tile) * k + kIm2colSlack);

  for (int64_t p0 = pixel_begin; p0 < pixel_end; p0 += tile) {
    const int64_t rows = std::min(tile, pixel_end - p0);
    for (int64_t g = 0; g < s.groups; ++g) {
      im2col.rows(p0, rows, g, patches.data());
      const GemmActivations a{patches.data(), kernel_signed, za, k};
      // The group's channels are a contiguous range: shift the per-channel arrays to it.
      OutputStage group_stage = stage;
      const int64_t c0 = g * ng;
      group_stage.multiplier = stage.multiplier != nullptr ? stage.multiplier + c0 : nullptr;
      group_stage.fixed_multiplier = stage.fixed_multiplier != nullptr ? stage.fixed_multiplier + c0 : nullptr;
      group_stage.fixed_shift = stage.fixed_shift != nullptr ? stage.fixed_shift + c0 : nullptr;
      ResidualAdd group_residual;
      if (stage.residual != nullptr) {  // qgemm() indexes it like its output: rows from p0, channels from c0
        group_residual = *stage.residual;
        group_residual.other = static_cast<const uint8_t*>(group_residual.other) +
                               static_cast<size_t>(p0) * group_residual.other_stride * elem +
                               static_cast<size_t>(c0) * elem;
        group_stage.residual = &group_residual;
      }
      qgemm(a, 0, rows, w.group(g), 0, ng, bias != nullptr ? bias + c0 : nullptr, group_stage,
            out_bytes + static_cast<size_t>(p0 * oc + c0) * elem, static_cast<size_t>(oc));
    }
  }
}

// Accumulators of this many int32 per depthwise tile (32 KB: L1 with a layer's weights).
constexpr int64_t kDepthwiseTileAccumulators = 8192;

void conv_depthwise(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w,
                    const int32_t* bias, const OutputStage& stage, int64_t pixel_begin,
                    int64_t pixel_end, void* out, int64_t out_h, int64_t out_w, Isa isa) {
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
    channel_term[c] = static_cast<int32_t>(
        static_cast<uint32_t>(bias != nullptr ? bias[c] : 0) -
        static_cast<uint32_t>(x.zero_point) * static_cast<uint32_t>(w.column_sum[c]));
  }

  // Output columns [interior_begin, interior_end) have every tap inside the image horizontally:
  // one kernel call covers a run of them, stepping stride_w pixels of input per output pixel.
  const int64_t reach_w = (kernel_w - 1) * geo.dilation_w;
  const int64_t interior_begin = std::min(out_w, (geo.pad_w + geo.stride_w - 1) / geo.stride_w);
  const int64_t last_start = geo.in_w - 1 + geo.pad_w - reach_w;  // ow · stride_w ≤ last_start
  const int64_t interior_end =
      last_start < 0 ? interior_begin
                     : std::clamp<int64_t>(last_start / geo.stride_w + 1, interior_begin, out_w);
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
      accumulate_rows(static_cast<size_t>(pixels), static_cast<size_t>(channels),
                      static_cast<size_t>(kernel_h), static_cast<size_t>(kernel_w),
                      static_cast<size_t>(geo.stride_w), tap_ptr.data(), weights, acc_rows, acc_stride);
      return;
    }
    const bool interior = pixels > 1 || (ow >= interior_begin && ow < interior_end);
    for (int64_t kh = 0, t = 0; kh < kernel_h; ++kh) {
      for (int64_t kw = 0; kw < kernel_w; ++kw, ++t) {
        const int64_t iw = iw0 + kw * geo.dilation_w;
        tap_ptr[t] = interior || (iw >= 0 && iw < geo.in_w)
                         ? row_ptr[kh] + static_cast<size_t>(iw) * pixel_bytes
                         : zero_row.data();
      }
    }
    accumulate(static_cast<size_t>(pixels), static_cast<size_t>(channels), static_cast<size_t>(taps),
               tap_ptr.data(), run_stride, weights, acc_rows, acc_stride);
  };

  for (int64_t p = pixel_begin; p < pixel_end;) {
    // One output row (n, oh), or the part of it inside the range.
    const int64_t n = p / (out_h * out_w), oh = p / out_w % out_h, row_first = p % out_w;
    const int64_t row_pixels = std::min(pixel_end - p, out_w - row_first);
    for (int64_t kh = 0; kh < kernel_h; ++kh) {
      const int64_t ih = oh * geo.stride_h - geo.pad_h + kh * geo.dilation_h;
      row_ptr[kh] = ih >= 0 && ih < geo.in_h
                        ? input + static_cast<size_t>((n * geo.in_h + ih) * geo.in_w) * pixel_bytes
                        : zero_row.data();
    }
    for (int64_t q = 0; q < row_pixels; q += tile) {
      const int64_t ow_end = row_first + std::min(row_pixels, q + tile);
      int64_t rows = 0;
      for (int64_t ow = row_first + q; ow < ow_end;) {
        const int64_t pixels = ow >= interior_begin && ow < interior_end
                                   ? std::min(ow_end, interior_end) - ow
                                   : 1;
        run(ow, pixels, acc + static_cast<size_t>(rows) * acc_stride);
        rows += pixels;
        ow += pixels;
      }
      uint8_t* tile = out_bytes + static_cast<size_t>(p + q) * pixel_bytes * elem;
      requantize(static_cast<size_t>(rows), static_cast<size_t>(channels), acc, acc_stride,
                 channel_term.data(), w.zero_point, nullptr, stage, 0, tile,
                 static_cast<size_t>(channels));
      if (stage.residual != nullptr) {
        const ResidualAdd& r = *stage.residual;
        gemm_kernels.add_residual(
            static_cast<size_t>(rows), static_cast<size_t>(channels), tile,
            static_cast<size_t>(channels),
            static_cast<const uint8_t*>(r.other) + static_cast<size_t>(p + q) * r.other_stride * elem,
            r.other_stride, stage.type, stage.mode, r);
      }
    }
    p += row_pixels;
  }
}

}  // namespace

void qconv2d(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w,
             const int32_t* bias, const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end,
             void* out) {
  if (pixel_begin >= pixel_end) return;
  const ConvWeightShape& s = w.shape;
  const int64_t out_h = conv_output_size(geo.in_h, s.kernel_h, geo.stride_h, geo.pad_h, geo.dilation_h);
  const int64_t out_w = conv_output_size(geo.in_w, s.kernel_w, geo.stride_w, geo.pad_w, geo.dilation_w);
  if (pixel_begin < 0 || pixel_end > geo.batch * out_h * out_w) {
    throw std::invalid_argument(fmt::format(
        "circle_quant: conv output pixels [{}, {}) outside the {} of the output", pixel_begin,
        pixel_end, geo.batch * out_h * out_w));
  }
  if (stage.residual != nullptr && stage.type == OutputType::kFloat) {
    throw std::invalid_argument("circle_quant: a fused residual add needs a quantized output");
  }
  const Isa isa = active_isa();
  if (w.kind == ConvKind::kDepthwise) {
    conv_depthwise(x, geo, w, bias, stage, pixel_begin, pixel_end, out, out_h, out_w, isa);
  } else {
    conv_gemm(x, geo, w, bias, stage, pixel_begin, pixel_end, out, out_h, out_w, isa);
  }
}

const char* qconv_kernel_name(const ConvWeightsView& w) {
  if (w.kind == ConvKind::kDepthwise) return ukernels::dwconv_microkernel_for(active_isa()).name;
  return qgemm_kernel_name();
}

}  // namespace circle_quant
