// Quantized conv2d: the depthwise microkernels of every ISA against the scalar reference bit for
// bit (with inputs placed against unmapped pages, so any over-read faults), and the qconv2d()
// driver under each forced ISA against a direct convolution oracle (exact int64 sums, then the
// scalar output stage): general, 1x1 fast path, groups, depthwise, padding with non-zero zero
// points, uint8 / int8 activations, int8 / uint8 weights, every output type, both
// requantization families, split pixel ranges.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "core/isa.h"
#include "core/qconv.h"
#include "core/qgemm.h"
#include "core/ukernels/qdwconv_ukernels.h"
#include "core/ukernels/qgemm_ukernels.h"
#include "core/ukernels/qwinograd_ukernels.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;

// --- depthwise microkernels ----------------------------------------------------------------------

// Parameter of the depthwise suites: a q8-dwconv row of the kernel registry (every one this CPU
// runs, the scalar reference included).
class DwConvKernels : public ::testing::TestWithParam<std::string> {
 protected:
  const ukernels::DwConvMicrokernel& kernel() const {
    return registered(ukernels::dwconv_kernels(), GetParam()).kernel;
  }
};

const ukernels::DwConvMicrokernel& scalar_dwconv() {
  return registered(ukernels::dwconv_kernels(), "q8-dwconv-c1-scalar").kernel;
}

// Random bytes with the extremes 0x00, 0x7f, 0x80, 0xff over-represented.
void fill_bytes(std::mt19937& rng, uint8_t* p, size_t n, int extreme_percent) {
  static const uint8_t kExtremes[] = {0x00, 0x7f, 0x80, 0xff};
  for (size_t i = 0; i < n; ++i) {
    p[i] = uniform_int<int>(rng, 0, 99) < extreme_percent ? pick(rng, kExtremes) : static_cast<uint8_t>(rng());
  }
}

// Accumulator rows as the kernels may write them.
size_t acc_stride(size_t channels) {
  const size_t align = ukernels::kDepthwiseAccumulatorAlign;
  return (channels + align - 1) / align * align;
}

struct DwKernelCase {
  size_t pixels, channels, taps;
  bool input_signed, weight_unsigned;
};

void check_dwconv_kernel(const ukernels::DwConvMicrokernel& kernel, std::mt19937& rng, const DwKernelCase& tc) {
  std::ostringstream what;
  what << "pixels=" << tc.pixels << " channels=" << tc.channels << " taps=" << tc.taps << " input "
       << (tc.input_signed ? "int8" : "uint8") << " weights " << (tc.weight_unsigned ? "uint8" : "int8");
  SCOPED_TRACE(what.str());
  const int extreme = uniform_int<int>(rng, 0, 100);
  // Weights [C, 1, kh = 1, kw = taps] with per-channel zero points at the extremes too.
  std::vector<uint8_t> weight(tc.channels * tc.taps);
  fill_bytes(rng, weight.data(), weight.size(), extreme);
  std::vector<int32_t> zp(tc.channels);
  for (auto& z : zp) {
    const int lo = tc.weight_unsigned ? 0 : -128, hi = tc.weight_unsigned ? 255 : 127;
    z = uniform_int<int>(rng, 0, 3) == 0 ? (uniform_int<int>(rng, 0, 1) ? lo : hi) : uniform_int<int>(rng, lo, hi);
  }
  ConvWeightShape shape;
  shape.out_channels = shape.groups = static_cast<int64_t>(tc.channels);
  shape.group_in_channels = 1;
  shape.kernel_h = 1;
  shape.kernel_w = static_cast<int64_t>(tc.taps);
  const ConvWeights w = pack_conv_weights(weight.data(), tc.weight_unsigned, shape, zp.data(), zp.size());
  const ukernels::DwConvWeights dw = ukernels::dwconv_weights(w.view());
  const size_t stride = acc_stride(tc.channels);

  // Each tap reads its own run of pixels (input_stride apart), each run against an unmapped
  // page; some taps share one (as padding taps share the zero point row).
  const size_t input_stride = tc.channels * uniform_int<size_t>(rng, 1, 2) + uniform_int<size_t>(rng, 0, 3);
  const size_t run_bytes = (tc.pixels - 1) * input_stride + tc.channels;
  std::vector<std::unique_ptr<Guarded<uint8_t>>> runs;
  std::vector<const uint8_t*> taps(tc.taps);
  for (auto& ptr : taps) {
    if (!runs.empty() && uniform_int<int>(rng, 0, 4) == 0) {
      ptr = runs[uniform_int<size_t>(rng, 0, runs.size() - 1)]->data();
      continue;
    }
    runs.push_back(std::make_unique<Guarded<uint8_t>>(run_bytes));
    fill_bytes(rng, runs.back()->data(), run_bytes, extreme);
    ptr = runs.back()->data();
  }

  const int32_t kSentinel = 0x5a5a5a5a;
  std::vector<int32_t> want(tc.pixels * stride, kSentinel);
  const ukernels::DwConvMicrokernel& ref = scalar_dwconv();
  (tc.input_signed ? ref.accumulate_s8 : ref.accumulate_u8)(tc.pixels, tc.channels, tc.taps, taps.data(), input_stride,
                                                            dw, want.data(), stride);

  // The reference against the definition: Σ x · (w - zb).
  for (size_t p = 0; p < tc.pixels; ++p) {
    for (size_t c = 0; c < tc.channels; ++c) {
      int64_t sum = 0;
      for (size_t t = 0; t < tc.taps; ++t) {
        const uint8_t b = taps[t][p * input_stride + c];
        const int64_t x = tc.input_signed ? static_cast<int8_t>(b) : b;
        const uint8_t wb = weight[c * tc.taps + t];
        const int64_t wv = tc.weight_unsigned ? wb : static_cast<int8_t>(wb);
        sum += x * (wv - zp[c]);
      }
      ASSERT_EQ(want[p * stride + c], sum) << "scalar reference, pixel " << p << " channel " << c;
    }
  }

  SCOPED_TRACE(kernel.name);
  std::vector<int32_t> got(tc.pixels * stride, kSentinel);
  (tc.input_signed ? kernel.accumulate_s8 : kernel.accumulate_u8)(tc.pixels, tc.channels, tc.taps, taps.data(),
                                                                  input_stride, dw, got.data(), stride);
  for (size_t p = 0; p < tc.pixels; ++p) {
    ASSERT_TRUE(same_bits(got.data() + p * stride, want.data() + p * stride, tc.channels)) << "pixel " << p;
  }
}

TEST_P(DwConvKernels, MatchesScalar) {
  std::mt19937 rng(1234);
  const size_t channel_counts[] = {1,  2,  7,  8,  9,  15, 16, 17,  24,  31,  32,  33,
                                   47, 48, 63, 64, 65, 80, 96, 127, 128, 129, 144, 200};
  const size_t tap_counts[] = {1, 2, 3, 4, 5, 7, 9, 25};
  for (size_t channels : channel_counts) {
    for (size_t taps : tap_counts) {
      for (int signs = 0; signs < 4; ++signs) {
        const DwKernelCase tc{uniform_int<size_t>(rng, 1, 4), channels, taps, (signs & 1) != 0, (signs & 2) != 0};
        check_dwconv_kernel(kernel(), rng, tc);
        if (HasFailure()) return;
      }
    }
  }
}

// The row form (sliding window along W) against the scalar tap-pointer kernel.
TEST_P(DwConvKernels, RowFormMatchesScalar) {
  std::mt19937 rng(77);
  const ukernels::DwConvMicrokernel& ref = scalar_dwconv();
  const ukernels::DwConvMicrokernel kernels[] = {kernel()};  // without a row form: nothing to do
  const size_t channel_counts[] = {1, 5, 16, 17, 31, 32, 48, 64, 65, 100, 144};
  for (size_t channels : channel_counts) {
    for (size_t kernel_w : {size_t{3}, size_t{5}}) {
      for (size_t stride_w : {size_t{1}, size_t{2}}) {
        // 3 rows every time (3x3 kernels have a form of their own), and a random count.
        for (size_t kernel_h : {size_t{3}, uniform_int<size_t>(rng, 1, 5)}) {
          const size_t pixels = uniform_int<size_t>(rng, 1, 40);
          const bool input_signed = uniform_int<int>(rng, 0, 1) == 1;
          const bool weight_unsigned = uniform_int<int>(rng, 0, 1) == 1;
          std::ostringstream what;
          what << "channels=" << channels << " kernel=" << kernel_h << "x" << kernel_w << " stride_w=" << stride_w
               << " pixels=" << pixels << (input_signed ? " int8" : " uint8");
          SCOPED_TRACE(what.str());
          const size_t taps = kernel_h * kernel_w;
          std::vector<uint8_t> weight(channels * taps);
          fill_bytes(rng, weight.data(), weight.size(), 20);
          std::vector<int32_t> zp(channels);
          for (auto& z : zp) z = weight_unsigned ? uniform_int<int>(rng, 0, 255) : uniform_int<int>(rng, -128, 127);
          ConvWeightShape shape;
          shape.out_channels = shape.groups = static_cast<int64_t>(channels);
          shape.group_in_channels = 1;
          shape.kernel_h = static_cast<int64_t>(kernel_h);
          shape.kernel_w = static_cast<int64_t>(kernel_w);
          const ConvWeights w = pack_conv_weights(weight.data(), weight_unsigned, shape, zp.data(), zp.size());
          const ukernels::DwConvWeights dw = ukernels::dwconv_weights(w.view());
          // Each kernel row reads columns [0, (pixels - 1) · stride + kernel_w) of its input row.
          const size_t row_bytes = ((pixels - 1) * stride_w + kernel_w) * channels;
          std::vector<std::unique_ptr<Guarded<uint8_t>>> rows;
          std::vector<const uint8_t*> row_ptr, taps_ptr;
          for (size_t kh = 0; kh < kernel_h; ++kh) {
            rows.push_back(std::make_unique<Guarded<uint8_t>>(row_bytes));
            fill_bytes(rng, rows.back()->data(), row_bytes, 20);
            row_ptr.push_back(rows.back()->data());
            for (size_t kw = 0; kw < kernel_w; ++kw) taps_ptr.push_back(rows.back()->data() + kw * channels);
          }
          const size_t stride = acc_stride(channels);
          std::vector<int32_t> want(pixels * stride, 0);
          (input_signed ? ref.accumulate_s8 : ref.accumulate_u8)(pixels, channels, taps, taps_ptr.data(),
                                                                 stride_w * channels, dw, want.data(), stride);
          for (const auto& kernel : kernels) {
            const ukernels::DwConvRowsFn fn = input_signed ? kernel.rows_s8 : kernel.rows_u8;
            if (fn == nullptr) continue;
            SCOPED_TRACE(kernel.name);
            std::vector<int32_t> got(pixels * stride, 0x5a5a5a5a);
            fn(pixels, channels, kernel_h, kernel_w, stride_w, row_ptr.data(), dw, got.data(), stride);
            for (size_t p = 0; p < pixels; ++p) {
              ASSERT_TRUE(same_bits(got.data() + p * stride, want.data() + p * stride, channels)) << "pixel " << p;
            }
          }
        }
      }
    }
  }
}

// Every product at its largest magnitude: 255 · (0 - 255), (-128) · (-128 - 127), ...
TEST_P(DwConvKernels, ExtremeProducts) {
  for (bool input_signed : {false, true}) {
    for (bool weight_unsigned : {false, true}) {
      for (uint8_t xb : {uint8_t{0x00}, uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xff}}) {
        for (int wv : {0, 255}) {
          for (int zpv : {0, 255}) {
            const size_t channels = 37, taps = 25;
            const int32_t zp = weight_unsigned ? zpv : zpv - 128;
            const uint8_t wb = static_cast<uint8_t>(weight_unsigned ? wv : wv - 128);
            std::vector<uint8_t> weight(channels * taps, wb);
            ConvWeightShape shape;
            shape.out_channels = shape.groups = channels;
            shape.group_in_channels = 1;
            shape.kernel_h = shape.kernel_w = 5;
            const ConvWeights w = pack_conv_weights(weight.data(), weight_unsigned, shape, &zp, 1);
            Guarded<uint8_t> x(channels);
            std::memset(x.data(), xb, channels);
            std::vector<const uint8_t*> rows(taps, x.data());
            const size_t stride = acc_stride(channels);
            const int64_t xv = input_signed ? static_cast<int8_t>(xb) : xb;
            const int64_t wval = weight_unsigned ? wb : static_cast<int8_t>(wb);
            const int32_t want = static_cast<int32_t>(xv * (wval - zp) * static_cast<int64_t>(taps));
            {
              const ukernels::DwConvMicrokernel& k = kernel();
              std::vector<int32_t> acc(stride, 0);
              (input_signed ? k.accumulate_s8 : k.accumulate_u8)(
                  1, channels, taps, rows.data(), 0, ukernels::dwconv_weights(w.view()), acc.data(), stride);
              for (size_t c = 0; c < channels; ++c) {
                ASSERT_EQ(acc[c], want) << k.name << " x=" << int(xb) << " w=" << wv << " zp=" << zp;
              }
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kernel, DwConvKernels, ::testing::ValuesIn(runnable_kernels(ukernels::dwconv_kernels())),
                         kernel_param_name);

// --- Winograd microkernels -----------------------------------------------------------------------

// Parameter: a q8-winograd row (every one this CPU runs, the scalar reference included). Each
// stage is compared with the scalar row on the same inputs, bit for bit.
class WinogradKernels : public ::testing::TestWithParam<std::string> {
 protected:
  const ukernels::WinogradMicrokernel& kernel() const {
    return registered(ukernels::winograd_kernels(), GetParam()).kernel;
  }
};

const ukernels::WinogradMicrokernel& scalar_winograd() {
  return registered(ukernels::winograd_kernels(), "q8-winograd-f2x3-scalar").kernel;
}

TEST_P(WinogradKernels, InputTransformMatchesScalar) {
  std::mt19937 rng(31);
  for (int iter = 0; iter < 60 && !HasFailure(); ++iter) {
    const size_t tiles = uniform_int<size_t>(rng, 1, 9);
    const size_t channels = ukernels::kWinogradChannelStep * uniform_int<size_t>(rng, 1, 4);
    const size_t pixel_stride = channels + uniform_int<size_t>(rng, 0, 5);  // a pixel's channels, then others
    const size_t row_stride = pixel_stride * (2 * tiles + 2) + uniform_int<size_t>(rng, 0, 7);
    const bool is_signed = uniform_int<int>(rng, 0, 1) == 1;
    const int32_t za = is_signed ? pick(rng, {-128, 127, uniform_int<int32_t>(rng, -128, 127)})
                                 : pick(rng, {0, 255, uniform_int<int32_t>(rng, 0, 255)});
    // The patch rows end at an unmapped page: a kernel reading past its 4 rows faults.
    Guarded<uint8_t> x(3 * row_stride + (2 * tiles + 1) * pixel_stride + channels);
    fill_bytes(rng, x.data(), x.size(), 30);
    const size_t count = tiles * ukernels::kWinogradPositions * channels;
    std::vector<int16_t> got(count), want(count);
    kernel().input(tiles, channels, x.data(), row_stride, pixel_stride, is_signed, za, got.data());
    scalar_winograd().input(tiles, channels, x.data(), row_stride, pixel_stride, is_signed, za, want.data());
    ASSERT_EQ(got, want) << "tiles " << tiles << " channels " << channels << " za " << za;
  }
}

TEST_P(WinogradKernels, GemmAndOutputMatchScalar) {
  std::mt19937 rng(37);
  constexpr size_t kPositions = ukernels::kWinogradPositions, kRows = ukernels::kWinogradMaxRows;
  for (int iter = 0; iter < 80 && !HasFailure(); ++iter) {
    const size_t rows = uniform_int<size_t>(rng, 1, kRows);
    const size_t pairs = uniform_int<size_t>(rng, 1, 70);
    const size_t v_channels = (2 * pairs + 15) / 16 * 16;
    // V and U at their bounds (±1020, ±2295) a third of the time: products and pair sums stay
    // exact, and long sums wrap modulo 2^32 in every kernel alike.
    const bool extreme = iter % 3 == 0;
    std::vector<int16_t> v(rows * kPositions * v_channels), u(kPositions * pairs * 32);
    for (auto& e : v) e = static_cast<int16_t>(extreme ? pick(rng, {-1020, 1020}) : uniform_int<int>(rng, -1020, 1020));
    for (auto& e : u) e = static_cast<int16_t>(extreme ? pick(rng, {-2295, 2295}) : uniform_int<int>(rng, -2295, 2295));
    const size_t m_stride = kRows * 16;
    std::vector<int32_t> m_got(kPositions * m_stride, 0x5a5a5a5a), m_want(kPositions * m_stride, 0x5a5a5a5a);
    kernel().gemm(rows, pairs, v.data(), v_channels, u.data(), m_got.data(), m_stride);
    scalar_winograd().gemm(rows, pairs, v.data(), v_channels, u.data(), m_want.data(), m_stride);
    ASSERT_EQ(m_got, m_want) << "rows " << rows << " pairs " << pairs;
    // The output transform on arbitrary int32 (its sums wrap like the scalar one's).
    for (auto& e : m_want) e = static_cast<int32_t>(rng());
    const size_t y_stride = 2 * kRows * 16;
    std::vector<int32_t> y_got(2 * y_stride, 7), y_want(2 * y_stride, 7);
    kernel().output(rows, m_want.data(), m_stride, y_got.data(), y_stride);
    scalar_winograd().output(rows, m_want.data(), m_stride, y_want.data(), y_stride);
    ASSERT_EQ(y_got, y_want) << "rows " << rows;
  }
}

// The three stages on one 4x4 patch and a 3x3 kernel give 4x the direct 2x2 conv's sums.
TEST_P(WinogradKernels, TransformsComputeTheConv) {
  std::mt19937 rng(41);
  constexpr size_t kC = ukernels::kWinogradChannelStep, kPositions = ukernels::kWinogradPositions;
  for (int iter = 0; iter < 40 && !HasFailure(); ++iter) {
    std::vector<uint8_t> patch(16 * kC);
    fill_bytes(rng, patch.data(), patch.size(), 40);
    const int32_t za = uniform_int<int32_t>(rng, 0, 255);
    int32_t g[16][kC][3][3];  // output channel j, input channel c
    for (auto& per_out : g)
      for (auto& per_in : per_out)
        for (auto& row : per_in)
          for (int32_t& e : row) e = pick(rng, {-255, 255, uniform_int<int32_t>(rng, -255, 255)});
    std::vector<int16_t> u(kPositions * (kC / 2) * 32);
    const int32_t gp[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};
    for (size_t j = 0; j < 16; ++j) {
      for (size_t c = 0; c < kC; ++c) {
        for (size_t a = 0; a < 4; ++a) {
          for (size_t b = 0; b < 4; ++b) {
            int32_t sum = 0;
            for (size_t k = 0; k < 3; ++k)
              for (size_t l = 0; l < 3; ++l) sum += gp[a][k] * g[j][c][k][l] * gp[b][l];
            u[((4 * a + b) * (kC / 2) + c / 2) * 32 + 2 * j + c % 2] = static_cast<int16_t>(sum);
          }
        }
      }
    }
    std::vector<int16_t> v(kPositions * kC);
    kernel().input(1, kC, patch.data(), 4 * kC, kC, false, za, v.data());
    std::vector<int32_t> m(kPositions * ukernels::kWinogradMaxRows * 16), y(2 * 2 * ukernels::kWinogradMaxRows * 16);
    const size_t m_stride = ukernels::kWinogradMaxRows * 16, y_stride = 2 * ukernels::kWinogradMaxRows * 16;
    kernel().gemm(1, kC / 2, v.data(), kC, u.data(), m.data(), m_stride);
    kernel().output(1, m.data(), m_stride, y.data(), y_stride);
    for (size_t dy = 0; dy < 2; ++dy) {
      for (size_t dx = 0; dx < 2; ++dx) {
        for (size_t j = 0; j < 16; ++j) {
          int64_t want = 0;
          for (size_t c = 0; c < kC; ++c)
            for (size_t k = 0; k < 3; ++k)
              for (size_t l = 0; l < 3; ++l)
                want += (static_cast<int64_t>(patch[((dy + k) * 4 + dx + l) * kC + c]) - za) * g[j][c][k][l];
          ASSERT_EQ(y[dy * y_stride + dx * 16 + j], want) << "pixel " << dy << "," << dx << " channel " << j;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kernel, WinogradKernels, ::testing::ValuesIn(runnable_kernels(ukernels::winograd_kernels())),
                         kernel_param_name);

// --- the conv driver against a direct convolution ------------------------------------------------

struct ConvCase {
  int64_t batch = 1, in_h = 5, in_w = 5, in_c = 4, out_c = 8;
  int64_t kernel_h = 3, kernel_w = 3, groups = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  bool input_signed = false;
  int32_t input_zero_point = 0;
  bool weight_unsigned = false;
  bool per_tensor_weight = false;
  bool weight_zero_points = false;  // non-zero (random) weight zero points
  bool with_bias = true;
  OutputType out_type = OutputType::kUint8;
  RequantMode mode = RequantMode::kFloat;
  // Fused activation: none, ReLU, or a clamp whose bounds make_conv_data() puts inside the
  // output's range (a ReLU6 of a layer whose outputs reach past 6).
  enum class Activation { kNone, kRelu, kClamp } activation = Activation::kNone;
  // int8 weight values where a vpmaddubsw kernel saturates (with activations 0 / 255): all 127,
  // all -128, same-sign pairs along the reduction past 128, alternating 127 / -128.
  enum class Weights { kRandom, k127, kMinus128, kSameSignPairs, kAlternating } weights = Weights::kRandom;

  std::string describe() const {
    std::ostringstream os;
    os << "N=" << batch << " H=" << in_h << " W=" << in_w << " C=" << in_c << " OC=" << out_c << " k=" << kernel_h
       << "x" << kernel_w << " g=" << groups << " s=" << stride_h << "," << stride_w << " p=" << pad_h << "," << pad_w
       << " d=" << dilation_h << "," << dilation_w << " x " << (input_signed ? "int8" : "uint8")
       << " za=" << input_zero_point << " w " << (weight_unsigned ? "uint8" : "int8")
       << (per_tensor_weight ? " per-tensor" : "") << (weight_zero_points ? " zb" : "") << (with_bias ? " bias" : "")
       << " out=" << static_cast<int>(out_type) << " mode=" << static_cast<int>(mode)
       << " act=" << static_cast<int>(activation) << " weights=" << static_cast<int>(weights);
    return os.str();
  }
};

struct ConvData {
  ConvCase tc;
  ConvWeightShape shape;
  Conv2dGeometry geo;
  int64_t out_h = 0, out_w = 0;
  std::vector<uint8_t> input, weight;
  std::vector<int32_t> weight_zp, bias;
  std::vector<float> weight_scale;
  OutputStageStorage stage;

  int64_t pixels() const { return tc.batch * out_h * out_w; }
  size_t out_elem() const { return tc.out_type == OutputType::kFloat ? 4 : tc.out_type == OutputType::kInt16 ? 2 : 1; }
};

std::vector<int64_t> exact_sums(const ConvData& d);

void make_conv_data(std::mt19937& rng, const ConvCase& tc, ConvData* d) {
  d->tc = tc;
  d->shape.out_channels = tc.out_c;
  d->shape.group_in_channels = tc.in_c / tc.groups;
  d->shape.kernel_h = tc.kernel_h;
  d->shape.kernel_w = tc.kernel_w;
  d->shape.groups = tc.groups;
  d->geo = {tc.batch, tc.in_h, tc.in_w, tc.stride_h, tc.stride_w, tc.pad_h, tc.pad_w, tc.dilation_h, tc.dilation_w};
  d->out_h = conv_output_size(tc.in_h, tc.kernel_h, tc.stride_h, tc.pad_h, tc.dilation_h);
  d->out_w = conv_output_size(tc.in_w, tc.kernel_w, tc.stride_w, tc.pad_w, tc.dilation_w);
  const int extreme = uniform_int<int>(rng, 0, 30);
  d->input.resize(static_cast<size_t>(tc.batch * tc.in_h * tc.in_w * tc.in_c));
  fill_bytes(rng, d->input.data(), d->input.size(), extreme);
  d->weight.resize(static_cast<size_t>(tc.out_c * d->shape.reduction()));
  fill_bytes(rng, d->weight.data(), d->weight.size(), extreme);
  if (tc.weights != ConvCase::Weights::kRandom) {
    for (auto& x : d->input) x = uniform_int<int>(rng, 0, 3) != 0 ? 0xFF : 0x00;
    for (size_t i = 0; i < d->weight.size(); ++i) {
      int v = 0;
      switch (tc.weights) {
        case ConvCase::Weights::k127: v = 127; break;
        case ConvCase::Weights::kMinus128: v = -128; break;
        case ConvCase::Weights::kSameSignPairs:  // |w0| + |w1| in [128, 255], one sign per pair
          v = i % 2 == 0 ? (uniform_int<int>(rng, 0, 1) ? 1 : -1) * uniform_int<int>(rng, 64, 127)
                         : (static_cast<int8_t>(d->weight[i - 1]) > 0 ? 127 : -128);
          break;
        case ConvCase::Weights::kAlternating: v = i % 2 == 0 ? 127 : -128; break;
        case ConvCase::Weights::kRandom: break;
      }
      d->weight[i] = static_cast<uint8_t>(static_cast<int8_t>(v));
    }
  }
  const size_t channels = tc.per_tensor_weight ? 1 : static_cast<size_t>(tc.out_c);
  d->weight_zp.assign(channels, tc.weight_unsigned && !tc.weight_zero_points ? 128 : 0);
  if (tc.weight_zero_points) {
    for (auto& z : d->weight_zp) {
      z = tc.weight_unsigned ? uniform_int<int>(rng, 0, 255) : uniform_int<int>(rng, -128, 127);
    }
  }
  const int64_t k = d->shape.reduction();
  d->weight_scale.resize(channels);
  for (auto& s : d->weight_scale) s = log_uniform(rng, 0.5, 2.0);
  d->bias.resize(static_cast<size_t>(tc.out_c));
  const int32_t bias_range = static_cast<int32_t>(std::min<int64_t>(200000, 3000 * k));
  for (auto& b : d->bias) b = uniform_int<int32_t>(rng, -bias_range, bias_range);
  // Multipliers that spread the outputs over the type's range (some saturate, most do not).
  int64_t largest = 1;
  for (int64_t v : exact_sums(*d)) largest = std::max<int64_t>(largest, v < 0 ? -v : v);
  const double out_span = tc.out_type == OutputType::kInt16 ? 30000.0 : 200.0;
  const double input_scale = log_uniform(rng, 0.01, 0.1);
  const double output_scale = input_scale * static_cast<double>(largest) / out_span * log_uniform(rng, 0.25, 2.0);
  int32_t output_zp = 0;
  switch (tc.out_type) {
    case OutputType::kUint8: output_zp = uniform_int<int32_t>(rng, 64, 192); break;
    case OutputType::kInt8: output_zp = uniform_int<int32_t>(rng, -64, 64); break;
    case OutputType::kInt16: output_zp = uniform_int<int32_t>(rng, -1000, 1000); break;
    case OutputType::kFloat: break;
  }
  double activation_min = -INFINITY, activation_max = INFINITY;
  const double real_span = input_scale * static_cast<double>(largest);  // about the largest |y|
  if (tc.activation == ConvCase::Activation::kRelu) activation_min = 0;
  if (tc.activation == ConvCase::Activation::kClamp) {
    activation_min = -real_span * uniform(rng, 0.0, 0.3);
    activation_max = real_span * uniform(rng, 0.05, 0.3);
  }
  make_output_stage(tc.out_type, tc.mode, input_scale, d->weight_scale.data(), d->weight_scale.size(), tc.out_c,
                    output_scale, output_zp, activation_min, activation_max, &d->stage);
}

// Exact int64 sums of the definition (padding taps = za) plus bias, [pixel][oc].
std::vector<int64_t> exact_sums(const ConvData& d) {
  const ConvCase& tc = d.tc;
  const int64_t cg = d.shape.group_in_channels, ng = d.shape.group_out_channels();
  std::vector<int64_t> sums(static_cast<size_t>(d.pixels() * tc.out_c));
  const auto x_at = [&](size_t i) -> int64_t { return tc.input_signed ? static_cast<int8_t>(d.input[i]) : d.input[i]; };
  const auto w_at = [&](size_t i) -> int64_t {
    return tc.weight_unsigned ? d.weight[i] : static_cast<int8_t>(d.weight[i]);
  };
  int64_t pixel = 0;
  for (int64_t n = 0; n < tc.batch; ++n) {
    for (int64_t oh = 0; oh < d.out_h; ++oh) {
      for (int64_t ow = 0; ow < d.out_w; ++ow, ++pixel) {
        for (int64_t oc = 0; oc < tc.out_c; ++oc) {
          const int64_t g = oc / ng;
          const int64_t zb = d.weight_zp[tc.per_tensor_weight ? 0 : oc];
          int64_t sum = 0;
          for (int64_t ic = 0; ic < cg; ++ic) {
            for (int64_t kh = 0; kh < tc.kernel_h; ++kh) {
              for (int64_t kw = 0; kw < tc.kernel_w; ++kw) {
                const int64_t ih = oh * tc.stride_h - tc.pad_h + kh * tc.dilation_h;
                const int64_t iw = ow * tc.stride_w - tc.pad_w + kw * tc.dilation_w;
                const bool inside = ih >= 0 && ih < tc.in_h && iw >= 0 && iw < tc.in_w;
                const int64_t x =
                    inside ? x_at(static_cast<size_t>(((n * tc.in_h + ih) * tc.in_w + iw) * tc.in_c + g * cg + ic))
                           : tc.input_zero_point;
                const int64_t w = w_at(static_cast<size_t>(((oc * cg + ic) * tc.kernel_h + kh) * tc.kernel_w + kw));
                sum += (x - tc.input_zero_point) * (w - zb);
              }
            }
          }
          if (tc.with_bias) sum += d.bias[static_cast<size_t>(oc)];
          sums[static_cast<size_t>(pixel * tc.out_c + oc)] = sum;
        }
      }
    }
  }
  return sums;
}

// The exact sums through the scalar output stage.
std::vector<uint8_t> conv_oracle(const ConvData& d) {
  const int64_t oc_n = d.tc.out_c;
  std::vector<uint8_t> out(static_cast<size_t>(d.pixels() * oc_n) * d.out_elem());
  const std::vector<int64_t> sums = exact_sums(d);
  const int32_t zero = 0;
  for (size_t i = 0; i < sums.size(); ++i) {
    const int32_t total = static_cast<int32_t>(sums[i]);
    EXPECT_EQ(total, sums[i]) << "the exact sum must fit int32";
    ukernels::qs32_requantize_scalar(1, 1, &total, 1, &zero, &zero, nullptr, d.stage.stage,
                                     i % static_cast<size_t>(oc_n), out.data() + i * d.out_elem(), 1);
  }
  return out;
}

// qconv2d() over the pixel ranges ending at `splits` times the channel ranges ending at
// `channel_splits` (all channels when empty), from channel `channel_begin` on; the output bytes
// it does not write stay 0xa5.
std::vector<uint8_t> run_qconv(const ConvData& d, const ConvWeights& w, const std::vector<int64_t>& splits,
                               std::vector<int64_t> channel_splits = {}, int64_t channel_begin = 0) {
  const size_t bytes = static_cast<size_t>(d.pixels() * d.tc.out_c) * d.out_elem();
  Buffer<uint8_t> out(bytes, 0, 0xa5);
  // The input ends at a guard page: im2col's 32-byte moves of short runs must stop short of it.
  Guarded<uint8_t> input(d.input.size());
  input.assign(d.input);
  const ConvActivations x{input.data(), d.tc.input_signed, d.tc.input_zero_point};
  if (channel_splits.empty()) channel_splits = {d.tc.out_c};
  int64_t begin = 0;
  for (int64_t end : splits) {
    int64_t c0 = channel_begin;
    for (int64_t c1 : channel_splits) {
      qconv2d(x, d.geo, w.view(), d.tc.with_bias ? d.bias.data() : nullptr, d.stage.stage, begin, end, c0, c1,
              out.data());
      c0 = c1;
    }
    begin = end;
  }
  EXPECT_TRUE(out.guard_intact()) << "wrote outside the output";
  return std::vector<uint8_t>(out.data(), out.data() + bytes);
}

::testing::AssertionResult same_output(const ConvData& d, const std::vector<uint8_t>& got,
                                       const std::vector<uint8_t>& want) {
  const size_t n = got.size() / d.out_elem();
  const auto at = [&](const std::vector<uint8_t>& v, size_t i) -> std::string {
    switch (d.tc.out_type) {
      case OutputType::kUint8: return std::to_string(v[i]);
      case OutputType::kInt8: return std::to_string(static_cast<int8_t>(v[i]));
      case OutputType::kInt16: {
        int16_t q;
        std::memcpy(&q, &v[2 * i], 2);
        return std::to_string(q);
      }
      case OutputType::kFloat: {
        float f;
        std::memcpy(&f, &v[4 * i], 4);
        return describe(f);
      }
    }
    return "";
  };
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(&got[i * d.out_elem()], &want[i * d.out_elem()], d.out_elem()) != 0) {
      const size_t oc = i % static_cast<size_t>(d.tc.out_c), pixel = i / static_cast<size_t>(d.tc.out_c);
      return ::testing::AssertionFailure() << "first difference at pixel " << pixel << " channel " << oc << ": got "
                                           << at(got, i) << ", want " << at(want, i);
    }
  }
  return ::testing::AssertionSuccess();
}

class QConvTest : public IsaTest {
 protected:
  // Runs the case under the fixture's ISA: whole range, then a random split, against the oracle.
  void check(std::mt19937& rng, const ConvCase& tc) {
    SCOPED_TRACE(tc.describe());
    ConvData d;
    make_conv_data(rng, tc, &d);
    IsaOverride isa(GetParam());  // before packing: the weights carry this ISA's prepacked B
    const ConvWeights w =
        pack_conv_weights(d.weight.data(), tc.weight_unsigned, d.shape, d.weight_zp.data(), d.weight_zp.size());
    const std::vector<uint8_t> want = conv_oracle(d);
    SCOPED_TRACE(qconv_kernel_name(w.view()));
    ASSERT_TRUE(same_output(d, run_qconv(d, w, {d.pixels()}), want)) << "whole range";
    if (d.pixels() > 1) {
      std::vector<int64_t> splits;
      for (int i = 0; i < 3; ++i) splits.push_back(uniform_int<int64_t>(rng, 0, d.pixels()));
      splits.push_back(d.pixels());
      std::sort(splits.begin(), splits.end());
      ASSERT_TRUE(same_output(d, run_qconv(d, w, splits), want)) << "split range";
    }
    // Channel ranges of whole 16-channel blocks (the last one ragged), as the threads take them.
    const int64_t blocks = (tc.out_c + 15) / 16;
    if (qconv2d_splits_channels(w.view()) && blocks > 1) {
      std::vector<int64_t> channel_splits;
      for (int i = 0; i < 2; ++i) channel_splits.push_back(16 * uniform_int<int64_t>(rng, 0, blocks));
      channel_splits.push_back(tc.out_c);
      std::sort(channel_splits.begin(), channel_splits.end());
      for (int64_t& end : channel_splits) end = std::min(end, tc.out_c);
      const std::vector<int64_t> pixel_splits = {d.pixels() / 2, d.pixels()};
      ASSERT_TRUE(same_output(d, run_qconv(d, w, pixel_splits, channel_splits), want))
          << "channel ranges ending at " << ::testing::PrintToString(channel_splits);
      // One range alone writes its channels and nothing else (another thread owns the rest).
      const int64_t c0 = 16 * uniform_int<int64_t>(rng, 0, blocks - 1);
      const int64_t c1 = std::min(tc.out_c, c0 + 16 * uniform_int<int64_t>(rng, 1, blocks));
      const std::vector<uint8_t> part = run_qconv(d, w, {d.pixels()}, {c1}, c0);
      const size_t elem = d.out_elem();
      for (int64_t p = 0; p < d.pixels(); ++p) {
        for (int64_t o = 0; o < tc.out_c; ++o) {
          const size_t at = static_cast<size_t>(p * tc.out_c + o) * elem;
          const bool inside = o >= c0 && o < c1;
          for (size_t byte = 0; byte < elem; ++byte) {
            ASSERT_EQ(part[at + byte], inside ? want[at + byte] : 0xa5)
                << "channels [" << c0 << ", " << c1 << ") alone: pixel " << p << " channel " << o;
          }
        }
      }
    }
  }

  // A random output type, family, clamp, zero points and weight convention for `tc`.
  ConvCase randomize(std::mt19937& rng, ConvCase tc) {
    tc.input_signed = uniform_int<int>(rng, 0, 1) == 1;
    const int32_t lo = tc.input_signed ? -128 : 0, hi = tc.input_signed ? 127 : 255;
    switch (uniform_int<int>(rng, 0, 3)) {
      case 0: tc.input_zero_point = lo; break;
      case 1: tc.input_zero_point = hi; break;
      default: tc.input_zero_point = uniform_int<int32_t>(rng, lo, hi);
    }
    tc.weight_unsigned = uniform_int<int>(rng, 0, 1) == 1;
    tc.weight_zero_points = uniform_int<int>(rng, 0, 2) != 0;
    tc.per_tensor_weight = uniform_int<int>(rng, 0, 4) == 0;
    tc.with_bias = uniform_int<int>(rng, 0, 4) != 0;
    tc.out_type = static_cast<OutputType>(uniform_int<int>(rng, 0, 3));
    tc.mode = tc.out_type != OutputType::kFloat && uniform_int<int>(rng, 0, 1) ? RequantMode::kFixedPoint
                                                                               : RequantMode::kFloat;
    switch (uniform_int<int>(rng, 0, 3)) {
      case 0: tc.activation = ConvCase::Activation::kRelu; break;
      case 1: tc.activation = ConvCase::Activation::kClamp; break;
      default: tc.activation = ConvCase::Activation::kNone;
    }
    return tc;
  }
};

TEST_P(QConvTest, Random) {
  std::mt19937 rng(42);
  for (int iter = 0; iter < 150 && !HasFailure(); ++iter) {
    ConvCase tc;
    tc.batch = uniform_int<int64_t>(rng, 1, 2);
    tc.kernel_h = uniform_int<int64_t>(rng, 1, 5);
    tc.kernel_w = uniform_int<int64_t>(rng, 1, 5);
    tc.dilation_h = uniform_int<int64_t>(rng, 1, 2);
    tc.dilation_w = uniform_int<int64_t>(rng, 1, 2);
    tc.stride_h = uniform_int<int64_t>(rng, 1, 3);
    tc.stride_w = uniform_int<int64_t>(rng, 1, 3);
    tc.pad_h = uniform_int<int64_t>(rng, 0, tc.kernel_h);
    tc.pad_w = uniform_int<int64_t>(rng, 0, tc.kernel_w);
    tc.in_h = uniform_int<int64_t>(rng, 1, 9);
    tc.in_w = uniform_int<int64_t>(rng, 1, 9);
    if (conv_output_size(tc.in_h, tc.kernel_h, tc.stride_h, tc.pad_h, tc.dilation_h) <= 0 ||
        conv_output_size(tc.in_w, tc.kernel_w, tc.stride_w, tc.pad_w, tc.dilation_w) <= 0) {
      continue;
    }
    switch (uniform_int<int>(rng, 0, 3)) {
      case 0:  // depthwise, multiplier 1 or 2
        tc.groups = tc.in_c = uniform_int<int64_t>(rng, 1, 70);
        tc.out_c = tc.groups * uniform_int<int64_t>(rng, 1, 2);
        break;
      case 1:  // grouped
        tc.groups = uniform_int<int64_t>(rng, 2, 4);
        tc.in_c = tc.groups * uniform_int<int64_t>(rng, 1, 9);
        tc.out_c = tc.groups * uniform_int<int64_t>(rng, 1, 20);
        break;
      default: tc.in_c = uniform_int<int64_t>(rng, 1, 40); tc.out_c = uniform_int<int64_t>(rng, 1, 70);
    }
    check(rng, randomize(rng, tc));
  }
}

TEST_P(QConvTest, AdversarialWeightsThroughGemm) {
  // 1x1 and 3x3 convs (the GEMM paths, enough pixels for every AVX2 kernel) with the weights a
  // saturating int16 pair sum would get wrong; int8 weights, uint8 activations at 0 / 255.
  std::mt19937 rng(15);
  for (auto weights : {ConvCase::Weights::k127, ConvCase::Weights::kMinus128, ConvCase::Weights::kSameSignPairs,
                       ConvCase::Weights::kAlternating}) {
    for (int64_t kernel : {int64_t{1}, int64_t{3}}) {
      for (int64_t in_c : {int64_t{3}, int64_t{37}, int64_t{64}}) {
        ConvCase tc = randomize(rng, ConvCase{});
        tc.weights = weights;
        tc.input_signed = false;
        tc.input_zero_point = pick(rng, {0, 255, 128});
        tc.weight_unsigned = false;
        tc.weight_zero_points = false;
        tc.kernel_h = tc.kernel_w = kernel;
        tc.pad_h = tc.pad_w = kernel / 2;
        tc.in_c = in_c;
        tc.out_c = uniform_int<int64_t>(rng, 1, 40);
        tc.in_h = tc.in_w = 5;
        check(rng, tc);
        if (HasFailure()) return;
      }
    }
  }
}

TEST_P(QConvTest, PointwiseFastPath) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 30 && !HasFailure(); ++iter) {
    ConvCase tc;
    tc.kernel_h = tc.kernel_w = 1;
    tc.batch = uniform_int<int64_t>(rng, 1, 3);
    tc.in_h = uniform_int<int64_t>(rng, 1, 12);
    tc.in_w = uniform_int<int64_t>(rng, 1, 12);
    tc.in_c = uniform_int<int64_t>(rng, 1, 100);
    tc.out_c = uniform_int<int64_t>(rng, 1, 100);
    if (iter % 3 == 1) tc.stride_h = tc.stride_w = 2;  // im2col, a strided row gather
    if (iter % 3 == 2) tc.pad_h = tc.pad_w = 1;        // im2col, a za border
    check(rng, randomize(rng, tc));
  }
}

// Padding taps with a zero point at each extreme of both activation types: any fill other than
// za shows up at the border.
TEST_P(QConvTest, PaddingActsAsZeroPoint) {
  std::mt19937 rng(11);
  for (bool input_signed : {false, true}) {
    for (int32_t za : input_signed ? std::vector<int32_t>{-128, -1, 127} : std::vector<int32_t>{0, 1, 255}) {
      for (int64_t groups : {int64_t{1}, int64_t{2}, int64_t{6}}) {
        ConvCase tc = randomize(rng, ConvCase{});
        tc.input_signed = input_signed;
        tc.input_zero_point = za;
        tc.in_h = 4;
        tc.in_w = 3;
        tc.in_c = 6;
        tc.groups = groups;
        tc.out_c = groups == 6 ? 6 : 8;
        tc.kernel_h = tc.kernel_w = 3;
        tc.pad_h = 2;
        tc.pad_w = 1;
        tc.dilation_w = 2;
        check(rng, tc);
      }
    }
  }
}

// Shapes that cross the im2col and depthwise tiles, GEMM blocks and SIMD widths, including the
// layer shapes of ResNet / MobileNetV2 at reduced spatial size.
TEST_P(QConvTest, LayerShapes) {
  std::mt19937 rng(99);
  struct Shape {
    int64_t h, c, oc, k, s, p, g;
  };
  const Shape shapes[] = {
      {18, 3, 64, 7, 2, 3, 1},       // ResNet stem
      {9, 64, 64, 3, 1, 1, 1},       // ResNet-18 3x3
      {8, 128, 256, 1, 2, 0, 1},     // ResNet downsample 1x1 stride 2
      {7, 256, 64, 1, 1, 0, 1},      // ResNet-50 1x1 reduce
      {6, 300, 33, 3, 1, 1, 1},      // K = 2700: a few rows per im2col tile
      {17, 32, 32, 3, 1, 1, 32},     // MobileNetV2 depthwise
      {12, 144, 144, 3, 2, 1, 144},  // depthwise stride 2
      {7, 960, 960, 3, 1, 1, 960},   // wide depthwise: several tiles of one pixel
      {9, 40, 40, 5, 1, 2, 40},      // 5x5 depthwise
      {150, 16, 16, 3, 1, 1, 16},    // rows longer than a depthwise tile
      {41, 24, 24, 5, 2, 2, 24},     // 5x5 stride 2
      {20, 16, 24, 3, 1, 1, 1},      // 400 pixels: several im2col tiles
      {8, 64, 64, 3, 1, 1, 4},       // ResNeXt-style groups (16 channels each)
  };
  for (const Shape& sh : shapes) {
    ConvCase tc = randomize(rng, ConvCase{});
    tc.in_h = tc.in_w = sh.h;
    tc.in_c = sh.c;
    tc.out_c = sh.oc;
    tc.kernel_h = tc.kernel_w = sh.k;
    tc.stride_h = tc.stride_w = sh.s;
    tc.pad_h = tc.pad_w = sh.p;
    tc.groups = sh.g;
    check(rng, tc);
    if (HasFailure()) return;
  }
}

TEST_P(QConvTest, EdgeShapes) {
  std::mt19937 rng(5);
  ConvCase empty = randomize(rng, ConvCase{});
  empty.batch = 0;
  check(rng, empty);
  ConvCase dw_empty = randomize(rng, ConvCase{});
  dw_empty.batch = 0;
  dw_empty.groups = dw_empty.in_c = dw_empty.out_c = 8;
  check(rng, dw_empty);
  for (int64_t g : {int64_t{1}, int64_t{5}}) {
    ConvCase one = randomize(rng, ConvCase{});  // 1x1 image, 3x3 kernel: 8 of 9 taps padding
    one.in_h = one.in_w = 1;
    one.pad_h = one.pad_w = 1;
    one.in_c = one.out_c = g == 1 ? 7 : 5;  // groups 5: depthwise
    one.groups = g;
    check(rng, one);
  }
  ConvCase single = randomize(rng, ConvCase{});  // one input and one output channel
  single.in_c = single.out_c = 1;
  check(rng, single);
  ConvCase kernel_is_image = randomize(rng, ConvCase{});  // 5x5 kernel over a 5x5 image
  kernel_is_image.kernel_h = kernel_is_image.kernel_w = 5;
  check(rng, kernel_is_image);
}

// Channel counts that are multiples of 64 with groups == 1: where a kernel reads tapped rows (AMX,
// AVX-512 VNNI), these run without im2col (each output row's pixels read a padded copy of the
// image, one offset per tap), and row pieces of fewer pixels than the tile kernel takes fall back
// to im2col (the random splits of check() make such pieces). Other levels run them through im2col.
TEST_P(QConvTest, ImplicitGemmShapes) {
  std::mt19937 rng(64);
  struct Shape {
    int64_t batch, h, w, c, oc, k, s, p, d;
  };
  const Shape shapes[] = {
      {2, 20, 13, 64, 64, 3, 1, 1, 1},   // ResNet 3x3, two images, rows of 13
      {1, 17, 17, 128, 40, 3, 2, 1, 1},  // stride 2, output channels not a multiple of 16
      {1, 14, 14, 64, 96, 3, 1, 2, 2},   // dilation 2
      {1, 12, 12, 192, 32, 5, 1, 2, 1},  // 5x5, three 64-byte steps per tap
      {1, 16, 16, 64, 48, 1, 2, 0, 1},   // strided 1x1: read in place when the domain matches
      {1, 9, 30, 64, 33, 3, 1, 0, 1},    // no padding
      {3, 6, 6, 64, 64, 3, 1, 1, 1},     // rows of 6 pixels
      // Narrow rows as virtual rows (several output rows per call, padding columns dropped):
      {2, 14, 14, 64, 80, 3, 1, 1, 1},  // ResNet's 14x14 (16 virtual per 14 output pixels)
      {3, 7, 7, 128, 32, 3, 1, 1, 1},   // ResNet's 7x7 (9 per 7)
      {2, 9, 11, 64, 16, 3, 1, 0, 1},   // no padding: 11 per 9, read in place
      {2, 28, 28, 64, 48, 3, 1, 1, 1},  // ResNet's 28x28: 30 per 28, where 8-row tiles leave 4 of 32 empty
      // Kernels that read rows by offset (AVX-512 VNNI) take the shapes above pixel by pixel; rows
      // whose padding is at most 1/16 of them stay virtual rows there too:
      {2, 40, 34, 64, 64, 3, 1, 1, 1},  // 36 per 34
      // Weights over one of qgemm()'s chunks (kGemmChunkBytes): there, the pixels of several
      // images go to one call (all five images here; two of 7x7x2048 padded bytes per call, then
      // one; a strided 1x1 read in place):
      {5, 4, 4, 512, 64, 3, 1, 1, 1},
      {3, 5, 5, 2048, 16, 3, 1, 1, 1},
      {4, 6, 6, 1024, 272, 1, 2, 0, 1},
  };
  for (const Shape& sh : shapes) {
    ConvCase tc = randomize(rng, ConvCase{});
    tc.batch = sh.batch;
    tc.in_h = sh.h;
    tc.in_w = sh.w;
    tc.in_c = sh.c;
    tc.out_c = sh.oc;
    tc.kernel_h = tc.kernel_w = sh.k;
    tc.stride_h = tc.stride_w = sh.s;
    tc.pad_h = tc.pad_w = sh.p;
    tc.dilation_h = tc.dilation_w = sh.d;
    check(rng, tc);
    if (HasFailure()) return;
  }
}

// 3x3 stride-1 convs that run through Winograd tiles on the levels whose GEMM is the exact AVX2
// one (elsewhere the same cases check the direct path): odd and even output sizes (the last
// tile's overhang), paddings 0-2, channel counts off the 16-channel step, several images and
// the random splits of check() (tiles cut by a range's ends).
TEST_P(QConvTest, WinogradShapes) {
  std::mt19937 rng(23);
  const bool winograd_level = conv_winograd_layout(prepacked_b_layout(GetParam()));
  for (int iter = 0; iter < 60 && !HasFailure(); ++iter) {
    ConvCase tc = randomize(rng, ConvCase{});
    tc.batch = uniform_int<int64_t>(rng, 1, 3);
    tc.kernel_h = tc.kernel_w = 3;
    tc.pad_h = uniform_int<int64_t>(rng, 0, 2);
    tc.pad_w = uniform_int<int64_t>(rng, 0, 2);
    tc.in_h = uniform_int<int64_t>(rng, 3 - 2 * tc.pad_h > 1 ? 3 - 2 * tc.pad_h : 1, 13);
    tc.in_w = uniform_int<int64_t>(rng, 3 - 2 * tc.pad_w > 1 ? 3 - 2 * tc.pad_w : 1, 13);
    tc.in_c = iter < 6 ? int64_t{1} + iter : uniform_int<int64_t>(rng, 1, 70);
    tc.out_c = uniform_int<int64_t>(rng, 2, 50);
    IsaOverride isa(GetParam());
    ConvData d;
    make_conv_data(rng, tc, &d);
    const ConvWeights w =
        pack_conv_weights(d.weight.data(), tc.weight_unsigned, d.shape, d.weight_zp.data(), d.weight_zp.size());
    ASSERT_EQ(conv_winograd_runs(w.view(), d.geo, GetParam()), winograd_level) << tc.describe();
    check(rng, tc);
  }
}

// The largest channel count Winograd takes, with every product at its extreme (x - za = 255 and
// w - zb = ±255 everywhere): 4x the exact sums then come within 0.1% of 2^31, and must be exact.
TEST_P(QConvTest, WinogradLargestSums) {
  std::mt19937 rng(29);
  for (int sign : {1, -1}) {
    ConvCase tc = randomize(rng, ConvCase{});
    tc.kernel_h = tc.kernel_w = 3;
    tc.pad_h = tc.pad_w = 0;
    tc.in_h = tc.in_w = 4;
    tc.in_c = ukernels::kWinogradMaxChannels;
    tc.out_c = 3;
    tc.input_signed = false;
    tc.input_zero_point = 0;
    tc.weight_unsigned = true;
    tc.weight_zero_points = true;
    tc.per_tensor_weight = true;
    tc.with_bias = false;
    tc.out_type = OutputType::kInt16;
    tc.mode = RequantMode::kFloat;
    tc.activation = ConvCase::Activation::kNone;
    SCOPED_TRACE(tc.describe());
    ConvData d;
    make_conv_data(rng, tc, &d);
    std::fill(d.input.begin(), d.input.end(), uint8_t{255});
    std::fill(d.weight.begin(), d.weight.end(), static_cast<uint8_t>(sign > 0 ? 255 : 0));
    d.weight_zp.assign(1, sign > 0 ? 0 : 255);
    const std::vector<int64_t> sums = exact_sums(d);
    ASSERT_EQ(std::llabs(sums[0]), int64_t{9} * tc.in_c * 255 * 255);
    ASSERT_LT(4 * std::llabs(sums[0]), int64_t{1} << 31);
    // An output stage that puts the sums at ±20000 int16 steps: a sum off by a wrap-around shows.
    const double input_scale = 0.05;
    const double real = input_scale * d.weight_scale[0] * static_cast<double>(std::llabs(sums[0]));
    make_output_stage(tc.out_type, tc.mode, input_scale, d.weight_scale.data(), 1, tc.out_c, real / 20000, 0, -INFINITY,
                      INFINITY, &d.stage);
    IsaOverride isa(GetParam());
    const ConvWeights w = pack_conv_weights(d.weight.data(), true, d.shape, d.weight_zp.data(), 1);
    ASSERT_TRUE(same_output(d, run_qconv(d, w, {d.pixels()}), conv_oracle(d)));
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, QConvTest, ::testing::ValuesIn(architecture_isas()), isa_param_name);

// --- packing -------------------------------------------------------------------------------------

TEST(QConvPacking, RejectsBadShapesAndZeroPoints) {
  const std::vector<uint8_t> weight(64, 1);
  const int32_t zp = 0, bad_zp = 200;
  ConvWeightShape s;
  s.out_channels = 6;
  s.group_in_channels = 2;
  s.groups = 4;  // 6 output channels are not divisible by 4 groups
  EXPECT_THROW(pack_conv_weights(weight.data(), false, s, &zp, 1), std::invalid_argument);
  s.groups = 3;
  s.kernel_h = 0;
  EXPECT_THROW(pack_conv_weights(weight.data(), false, s, &zp, 1), std::invalid_argument);
  s.kernel_h = 1;
  EXPECT_THROW(pack_conv_weights(weight.data(), false, s, &bad_zp, 1), std::invalid_argument);
  ConvWeightShape dw;
  dw.out_channels = dw.groups = 4;
  dw.group_in_channels = 1;
  EXPECT_THROW(pack_conv_weights(weight.data(), false, dw, &bad_zp, 1), std::invalid_argument);
  ConvWeightShape huge;
  huge.out_channels = 1;
  huge.group_in_channels = 4096;
  huge.kernel_h = huge.kernel_w = 3;  // K = 36864 > kMaxGemmK
  EXPECT_THROW(check_conv_weight_shape(huge), std::invalid_argument);
}

// qconv2d()'s channel ranges: whole 16-channel blocks inside the output, and only for the GEMM path
// with one group (a depthwise or grouped conv computes all its channels per call).
TEST(QConvRanges, RejectsChannelRangesItCannotTake) {
  std::vector<uint8_t> input(4 * 4 * 32, 3), out(4 * 4 * 32 * 4, 0);
  const int32_t zp = 0;
  Conv2dGeometry geo;
  geo.batch = 1;
  geo.in_h = geo.in_w = 4;
  OutputStageStorage st;
  const std::vector<float> scale(32, 0.01f);
  make_output_stage(OutputType::kUint8, RequantMode::kFloat, 0.1, scale.data(), scale.size(), 32, 0.1, 0, -INFINITY,
                    INFINITY, &st);
  const ConvActivations x{input.data(), false, 0};

  ConvWeightShape dense;
  dense.out_channels = 32;
  dense.group_in_channels = 32;
  const std::vector<uint8_t> weight(32 * 32 * 9, 130);
  const ConvWeights w = pack_conv_weights(weight.data(), true, dense, &zp, 1);
  ASSERT_TRUE(qconv2d_splits_channels(w.view()));
  EXPECT_NO_THROW(qconv2d(x, geo, w.view(), nullptr, st.stage, 0, 16, 16, 32, out.data()));
  EXPECT_THROW(qconv2d(x, geo, w.view(), nullptr, st.stage, 0, 16, 8, 32, out.data()), std::invalid_argument);
  EXPECT_THROW(qconv2d(x, geo, w.view(), nullptr, st.stage, 0, 16, 0, 48, out.data()), std::invalid_argument);

  ConvWeightShape dw;
  dw.out_channels = dw.groups = 32;
  dw.group_in_channels = 1;
  dw.kernel_h = dw.kernel_w = 3;
  geo.pad_h = geo.pad_w = 1;
  const ConvWeights wd = pack_conv_weights(weight.data(), true, dw, &zp, 1);
  ASSERT_FALSE(qconv2d_splits_channels(wd.view()));
  EXPECT_NO_THROW(qconv2d(x, geo, wd.view(), nullptr, st.stage, 0, 16, 0, 32, out.data()));
  EXPECT_THROW(qconv2d(x, geo, wd.view(), nullptr, st.stage, 0, 16, 0, 16, out.data()), std::invalid_argument);
}

TEST(QConvPacking, KindAndSizes) {
  ConvWeightShape dw;
  dw.out_channels = dw.groups = 20;
  dw.group_in_channels = 1;
  dw.kernel_h = dw.kernel_w = 3;
  EXPECT_EQ(conv_kind(dw), ConvKind::kDepthwise);
  EXPECT_EQ(conv_packed_weight_bytes(dw), size_t{5 * 32 * 4 + 3 * 256});  // pairs, then quads
  ConvWeightShape multiplier = dw;
  multiplier.out_channels = 40;  // channel multiplier 2: the grouped GEMM path
  EXPECT_EQ(conv_kind(multiplier), ConvKind::kGemm);
  EXPECT_EQ(conv_output_size(7, 3, 2, 1, 1), 4);
  EXPECT_EQ(conv_output_size(5, 3, 1, 0, 3), 0);  // dilated kernel larger than the image
}

// The conv op's channels-last copy of NCHW input: every channel count (the specialised 1-4 and
// the general loop), pixel ranges that start and end anywhere, nothing written outside them.
TEST(QConvInputLayout, NchwToNhwcMatchesNaive) {
  std::mt19937 rng(11);
  for (int64_t channels = 1; channels <= 6; ++channels) {
    for (int64_t pixels : {int64_t{1}, int64_t{7}, int64_t{33}, int64_t{1000}}) {
      std::vector<uint8_t> nchw(static_cast<size_t>(channels * pixels));
      for (auto& b : nchw) b = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
      const int64_t begin = uniform_int<int64_t>(rng, 0, pixels - 1),
                    end = uniform_int<int64_t>(rng, begin + 1, pixels);
      Guarded<uint8_t> nhwc(nchw.size());
      std::fill(nhwc.data(), nhwc.data() + nhwc.size(), 0xA5);
      nchw_to_nhwc_bytes(nchw.data(), channels, pixels, begin, end, nhwc.data());
      for (int64_t p = 0; p < pixels; ++p) {
        for (int64_t c = 0; c < channels; ++c) {
          const bool inside = p >= begin && p < end;
          ASSERT_EQ(nhwc[static_cast<size_t>(p * channels + c)],
                    inside ? nchw[static_cast<size_t>(c * pixels + p)] : 0xA5)
              << "C " << channels << ", pixel " << p << " of " << pixels << ", range [" << begin << ", " << end << ")";
        }
      }
    }
  }
}

}  // namespace
