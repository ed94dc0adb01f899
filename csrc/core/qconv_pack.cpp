// Conv weight packing (qconv.h): the shape checks, both depthwise layouts and the per-group GEMM
// blocks, and the views the drivers read.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "qconv.h"
#include "ukernels/qdwconv_ukernels.h"

namespace circle_quant {

void check_conv_weight_shape(const ConvWeightShape& s) {
  if (s.out_channels <= 0 || s.group_in_channels <= 0 || s.kernel_h <= 0 || s.kernel_w <= 0 || s.groups <= 0) {
    throw std::invalid_argument(
        fmt::format("circle_quant: conv weight shape [{}, {}, {}, {}] with groups={} must have positive sizes",
                    s.out_channels, s.group_in_channels, s.kernel_h, s.kernel_w, s.groups));
  }
  if (s.out_channels % s.groups != 0) {
    throw std::invalid_argument(
        fmt::format("circle_quant: {} output channels are not divisible by groups={}", s.out_channels, s.groups));
  }
  if (s.reduction() > kMaxGemmK) {
    throw std::invalid_argument(
        fmt::format("circle_quant: conv reduction KH·KW·C/groups = {} exceeds the int8 GEMM's limit of {} "
                    "(int32 accumulators could overflow)",
                    s.reduction(), kMaxGemmK));
  }
}

ConvKind conv_kind(const ConvWeightShape& s) {
  return s.group_in_channels == 1 && s.out_channels == s.groups ? ConvKind::kDepthwise : ConvKind::kGemm;
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
  return static_cast<size_t>(depthwise_pairs(s) * depthwise_channel_stride(s.out_channels)) * sizeof(int32_t);
}

size_t depthwise_quads_bytes(const ConvWeightShape& s) {
  return static_cast<size_t>(depthwise_quad_groups(s) * depthwise_quad_blocks(s)) * 256;
}

size_t conv_packed_weight_bytes(const ConvWeightShape& s) {
  if (conv_kind(s) == ConvKind::kDepthwise) return depthwise_pairs_bytes(s) + depthwise_quads_bytes(s);
  return static_cast<size_t>(s.groups) * packed_weight_bytes(s.group_out_channels(), s.gemm_reduction());
}

bool pack_conv_weights(const void* weight, bool is_unsigned, const ConvWeightShape& s, const int32_t* zero_point,
                       size_t zero_point_count, int8_t* data, int32_t* zero_point_out, int32_t* column_sum_out) {
  check_conv_weight_shape(s);
  const int64_t oc = s.out_channels;
  if (zero_point_count != 1 && zero_point_count != static_cast<size_t>(oc)) {
    throw std::invalid_argument(
        fmt::format("circle_quant: {} weight zero points for {} output channels", zero_point_count, oc));
  }
  const int64_t taps = s.taps();
  const auto weight_at = [&](size_t i) {
    return is_unsigned ? static_cast<int32_t>(static_cast<const uint8_t*>(weight)[i])
                       : static_cast<int32_t>(static_cast<const int8_t*>(weight)[i]);
  };

  if (conv_kind(s) == ConvKind::kDepthwise) {
    const int32_t offset = is_unsigned ? 128 : 0;  // stored int8 = weight - offset
    const int64_t stride = depthwise_channel_stride(oc);
    int32_t* pairs = reinterpret_cast<int32_t*>(data);
    int8_t* quads = data + depthwise_pairs_bytes(s);
    std::fill(data, data + conv_packed_weight_bytes(s), int8_t{0});
    const int64_t blocks = depthwise_quad_blocks(s);
    bool any_zero_point = false;
    for (int64_t c = 0; c < oc; ++c) {
      const int32_t zp = stored_weight_zero_point(zero_point, zero_point_count, c, is_unsigned) + offset;
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

size_t conv_prepacked_b_bytes(int32_t layout, const ConvWeightShape& s) {
  if (conv_kind(s) == ConvKind::kDepthwise) return 0;
  return static_cast<size_t>(s.groups) * prepacked_b_bytes(layout, s.group_out_channels(), s.gemm_reduction());
}

void prepack_conv_b(int32_t layout, const ConvWeightShape& s, const int8_t* packed, int8_t* out) {
  if (conv_kind(s) == ConvKind::kDepthwise) return;
  const int64_t ng = s.group_out_channels(), k = s.gemm_reduction();
  const size_t in_bytes = packed_weight_bytes(ng, k), out_bytes = prepacked_b_bytes(layout, ng, k);
  for (int64_t g = 0; g < s.groups; ++g) {
    prepack_gemm_b(layout, packed + static_cast<size_t>(g) * in_bytes, ng, k, out + static_cast<size_t>(g) * out_bytes);
  }
}

bool check_prepacked_conv_b(int32_t layout, const ConvWeightShape& s, const int8_t* prepacked) {
  if (conv_kind(s) == ConvKind::kDepthwise) return true;
  const int64_t ng = s.group_out_channels(), k = s.gemm_reduction();
  const size_t bytes = prepacked_b_bytes(layout, ng, k);
  for (int64_t g = 0; g < s.groups; ++g) {
    if (!check_prepacked_gemm_b(layout, prepacked + static_cast<size_t>(g) * bytes, ng, k)) return false;
  }
  return true;
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
  if (prepacked_b != nullptr) {
    v.prepacked_b = prepacked_b + static_cast<size_t>(g) * prepacked_b_bytes(prepacked_layout, ng, k);
    v.prepacked_layout = prepacked_layout;
  }
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
  v.prepacked_b = prepacked_b.empty() ? nullptr : prepacked_b.data();
  v.prepacked_layout = prepacked_b.empty() ? 0 : prepacked_layout;
  v.winograd = winograd.empty() ? nullptr : winograd.data();
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
  w.has_weight_zero_point =
      pack_conv_weights(weight, is_unsigned, shape, zero_point, zero_point_count,
                        reinterpret_cast<int8_t*>(w.storage.data()), w.zero_point.data(), w.column_sum.data());
  const int32_t layout = prepacked_b_layout(active_isa());
  w.prepacked_b.resize(conv_prepacked_b_bytes(layout, shape));
  w.prepacked_layout = w.prepacked_b.empty() ? 0 : layout;
  prepack_conv_b(w.prepacked_layout, shape, reinterpret_cast<const int8_t*>(w.storage.data()), w.prepacked_b.data());
  if (conv_winograd_shape(shape) && conv_winograd_layout(w.prepacked_layout)) {
    w.winograd.resize(winograd_weight_bytes(shape) / sizeof(int16_t));
    pack_winograd_weights(w.view(), w.winograd.data());
  }
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

}  // namespace circle_quant
