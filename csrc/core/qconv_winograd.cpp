// The Winograd F(2x2, 3x3) conv path (qconv.h; transforms and layouts in
// ukernels/qwinograd_ukernels.h). On AVX2 the direct GEMM spends two multiply instructions per 32
// byte products (vpmaddubsw + vpmaddwd) and oneDNN's AVX2 kernels the same; here each output
// channel of a 2x2 tile of pixels costs 16 int16 products in place of 36, through vpmaddwd, with
// the same exact int32 sums.
//
// Work goes in blocks of tiles (2x2 output pixels) taken in order along the pairs of output rows
// of the call's range, across rows and images, so that narrow layers (7x7) still fill a block:
// the block's transformed input V stays in L2 while every 16-channel block of U passes over it,
// 6 tiles per GEMM call. Each call's 16 x 6 x 16 sums are transformed back into the tiles' exact
// sums and go through the direct path's output stage (and fused residual add).
#include <algorithm>
#include <cstring>
#include <vector>

#include "qconv_drivers.h"
#include "ukernels/registry.h"

namespace circle_quant {
namespace {

constexpr size_t kBlockChannels = 16;  // output channels per U block
static_assert(kBlockChannels == kGemmNr, "qconv2d()'s channel ranges start at multiples of kGemmNr");
constexpr size_t kTileBlockBytes = 512 * 1024;  // V of one block of tiles: stays in L2

size_t channel_pairs(const ConvWeightShape& s) { return static_cast<size_t>((s.in_channels() + 1) / 2); }
size_t output_blocks(const ConvWeightShape& s) {
  return static_cast<size_t>((s.out_channels + static_cast<int64_t>(kBlockChannels) - 1) /
                             static_cast<int64_t>(kBlockChannels));
}
size_t v_channels(const ConvWeightShape& s) {
  const size_t step = ukernels::kWinogradChannelStep;
  return (static_cast<size_t>(s.in_channels()) + step - 1) / step * step;
}

}  // namespace

bool conv_winograd_shape(const ConvWeightShape& s) {
  return s.groups == 1 && s.kernel_h == 3 && s.kernel_w == 3 && conv_kind(s) == ConvKind::kGemm &&
         s.in_channels() <= ukernels::kWinogradMaxChannels;
}

bool conv_winograd_layout(int32_t layout) { return layout != 0 && layout == prepacked_b_layout(Isa::kAvx2); }

size_t winograd_weight_bytes(const ConvWeightShape& s) {
  if (!conv_winograd_shape(s)) return 0;
  return output_blocks(s) * ukernels::kWinogradPositions * channel_pairs(s) * 32 * sizeof(int16_t);
}

void pack_winograd_weights(const ConvWeightsView& w, int16_t* out) {
  const ConvWeightShape& s = w.shape;
  std::memset(out, 0, winograd_weight_bytes(s));
  const PackedWeightsView packed = w.group(0);
  const int64_t c_n = s.in_channels();
  const size_t pairs = channel_pairs(s), block_stride = packed.block_stride();
  // The stored int8 weight of channel o at reduction index k (k = (kh·3 + kw)·C + c), minus its
  // stored zero point: packed c4 layout (qgemm.h).
  const auto weight = [&](int64_t o, int64_t k) {
    const size_t at = static_cast<size_t>(o / 16) * block_stride + static_cast<size_t>(k / 4) * 64 +
                      static_cast<size_t>(o % 16) * 4 + static_cast<size_t>(k % 4);
    return static_cast<int32_t>(packed.data[at]) - packed.zero_point[o];
  };
  constexpr int32_t g_prime[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};
  for (int64_t o = 0; o < s.out_channels; ++o) {
    for (int64_t c = 0; c < c_n; ++c) {
      int32_t g[3][3], gt[4][3];
      for (int64_t t = 0; t < 9; ++t) g[t / 3][t % 3] = weight(o, t * c_n + c);
      for (int i = 0; i < 4; ++i) {  // G' g
        for (int j = 0; j < 3; ++j)
          gt[i][j] = g_prime[i][0] * g[0][j] + g_prime[i][1] * g[1][j] + g_prime[i][2] * g[2][j];
      }
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {  // (G' g) G'ᵀ: |U| ≤ 9 · 255
          const int32_t u = gt[i][0] * g_prime[j][0] + gt[i][1] * g_prime[j][1] + gt[i][2] * g_prime[j][2];
          const size_t p = static_cast<size_t>(4 * i + j);
          const size_t block = static_cast<size_t>(o) / kBlockChannels, lane = static_cast<size_t>(o) % kBlockChannels;
          out[((block * ukernels::kWinogradPositions + p) * pairs + static_cast<size_t>(c / 2)) * 32 + 2 * lane +
              static_cast<size_t>(c % 2)] = static_cast<int16_t>(u);
        }
      }
    }
  }
}

bool conv_winograd_runs(const ConvWeightsView& w, const Conv2dGeometry& geo, Isa isa) {
  return w.winograd != nullptr && w.kind == ConvKind::kGemm && conv_winograd_shape(w.shape) && geo.stride_h == 1 &&
         geo.stride_w == 1 && geo.dilation_h == 1 && geo.dilation_w == 1 && w.prepacked_layout != 0 &&
         w.prepacked_layout == prepacked_b_layout(isa) && conv_winograd_layout(w.prepacked_layout);
}

int64_t qconv2d_row_pair_count(int64_t batch, int64_t out_h) { return batch * ((out_h + 1) / 2); }

int64_t qconv2d_row_pair_start(int64_t pair, int64_t out_h, int64_t out_w) {
  const int64_t per_image = (out_h + 1) / 2;
  const int64_t n = pair / per_image, row = 2 * (pair % per_image);
  return (n * out_h + row) * out_w;
}

namespace conv_detail {

void conv_winograd(const ConvActivations& x, const Conv2dGeometry& geo, const ConvWeightsView& w, const int32_t* bias,
                   const OutputStage& stage, int64_t pixel_begin, int64_t pixel_end, int64_t channel_begin,
                   int64_t channel_end, void* out, int64_t out_h, int64_t out_w, Isa isa) {
  const ukernels::WinogradMicrokernel& kernel = ukernels::winograd_microkernel_for(isa);
  const ukernels::GemmMicrokernel& gemm = ukernels::gemm_microkernel_for(isa);  // its output stage and add
  const ConvWeightShape& s = w.shape;
  const int64_t c = s.in_channels(), oc = s.out_channels;
  const size_t vc = v_channels(s), pairs = channel_pairs(s), blocks = output_blocks(s);
  const size_t elem = element_size(stage.type);
  uint8_t* out_bytes = static_cast<uint8_t*>(out);
  constexpr size_t kRows = ukernels::kWinogradMaxRows, kPositions = ukernels::kWinogradPositions;

  // The sums are of centered values ((x - za)(w - zb)), so the output stage adds the bias alone.
  thread_local std::vector<int32_t> channel_term;
  channel_term.assign(blocks * kBlockChannels, 0);
  if (bias != nullptr) std::copy(bias, bias + oc, channel_term.begin());

  // Tiles of the range: pairs of output rows [first_pair, end_pair), tiles_w tiles each.
  const int64_t tiles_w = (out_w + 1) / 2, pairs_per_image = (out_h + 1) / 2;
  const int64_t first_pair = pixel_begin / (out_h * out_w) * pairs_per_image + pixel_begin / out_w % out_h / 2;
  const int64_t last_pixel = pixel_end - 1;
  const int64_t end_pair = last_pixel / (out_h * out_w) * pairs_per_image + last_pixel / out_w % out_h / 2 + 1;
  const int64_t tiles = (end_pair - first_pair) * tiles_w;
  const size_t tile_v = kPositions * vc;  // int16 of V per tile
  const int64_t block_tiles = std::max<int64_t>(
      static_cast<int64_t>(kRows), static_cast<int64_t>(kTileBlockBytes / (tile_v * sizeof(int16_t)) / kRows * kRows));

  thread_local PaddedImage padded;
  thread_local std::vector<int16_t> v_storage;
  v_storage.resize(static_cast<size_t>(std::min(block_tiles, tiles)) * tile_v);
  alignas(64) int32_t m[kPositions * kRows * kBlockChannels];
  alignas(64) int32_t y[2 * 2 * kRows * kBlockChannels];
  const size_t m_stride = kRows * kBlockChannels, y_row_stride = 2 * kRows * kBlockChannels;
  const int32_t za = x.zero_point;
  // The call's channels: whole U blocks (channel_begin is a multiple of kBlockChannels).
  const size_t first_block = static_cast<size_t>(channel_begin) / kBlockChannels;
  const size_t end_block = (static_cast<size_t>(channel_end) + kBlockChannels - 1) / kBlockChannels;
  int64_t image = -1;

  for (int64_t t0 = 0; t0 < tiles; t0 += block_tiles) {
    const int64_t t1 = std::min(tiles, t0 + block_tiles);
    // V of the block, one run of tiles per pair of rows. The padded image has one more row and
    // column than the padding asks for (the last tile of an odd size reads them; their values
    // reach only the output row or column it drops) and the channel steps past C read into the
    // next pixel or the slack; those lanes meet zero weights.
    for (int64_t t = t0; t < t1;) {
      const int64_t pair = first_pair + t / tiles_w, tw = t % tiles_w;
      const int64_t n = pair / pairs_per_image, th = pair % pairs_per_image;
      const int64_t run = std::min(t1 - t, tiles_w - tw);
      if (n != image) {
        padded.fill(x, geo, c, n, static_cast<uint8_t>(za), false, 1, 1, ukernels::kWinogradChannelStep);
        image = n;
      }
      const uint8_t* patch = padded.bytes + static_cast<size_t>((2 * th * padded.padded_w + 2 * tw) * c);
      kernel.input(static_cast<size_t>(run), vc, patch, static_cast<size_t>(padded.padded_w * c),
                   static_cast<size_t>(c), x.is_signed, za, v_storage.data() + static_cast<size_t>(t - t0) * tile_v);
      t += run;
    }
    for (size_t b = first_block; b < end_block; ++b) {
      const int16_t* u = w.winograd + b * kPositions * pairs * 32;
      const int64_t n0 = static_cast<int64_t>(b * kBlockChannels);
      const size_t nc = static_cast<size_t>(std::min<int64_t>(kBlockChannels, channel_end - n0));
      for (int64_t r0 = t0; r0 < t1; r0 += static_cast<int64_t>(kRows)) {
        const size_t rows = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(kRows), t1 - r0));
        kernel.gemm(rows, pairs, v_storage.data() + static_cast<size_t>(r0 - t0) * tile_v, vc, u, m, m_stride);
        kernel.output(rows, m, m_stride, y, y_row_stride);
        // Store each run of tiles of one pair of rows: its top and bottom output rows, the
        // pixels inside the output and the range.
        for (int64_t r = r0; r < r0 + static_cast<int64_t>(rows);) {
          const int64_t pair = first_pair + r / tiles_w, tw = r % tiles_w;
          const int64_t run = std::min(r0 + static_cast<int64_t>(rows) - r, tiles_w - tw);
          const int64_t n = pair / pairs_per_image, th = pair % pairs_per_image;
          for (int64_t dy = 0; dy < 2; ++dy) {
            const int64_t oh = 2 * th + dy, ow0 = 2 * tw;
            if (oh >= out_h) continue;
            const int64_t p0 = (n * out_h + oh) * out_w + ow0;
            const int64_t lo = std::max(p0, pixel_begin), hi = std::min({p0 + 2 * run, p0 + out_w - ow0, pixel_end});
            if (lo >= hi) continue;
            const int32_t* acc = y + static_cast<size_t>(dy) * y_row_stride +
                                 static_cast<size_t>(2 * (r - r0) + (lo - p0)) * kBlockChannels;
            uint8_t* tile = out_bytes + static_cast<size_t>(lo * oc + n0) * elem;
            gemm.requantize(static_cast<size_t>(hi - lo), nc, acc, kBlockChannels, channel_term.data() + n0,
                            w.zero_point + n0, nullptr, stage, static_cast<size_t>(n0), tile, static_cast<size_t>(oc));
            if (stage.residual != nullptr) {
              const ResidualAdd& add = *stage.residual;
              gemm.add_residual(static_cast<size_t>(hi - lo), nc, tile, static_cast<size_t>(oc),
                                static_cast<const uint8_t*>(add.other) +
                                    (static_cast<size_t>(lo) * add.other_stride + static_cast<size_t>(n0)) * elem,
                                add.other_stride, stage.type, stage.mode, add);
            }
          }
          r += run;
        }
      }
    }
  }
}

}  // namespace conv_detail
}  // namespace circle_quant
