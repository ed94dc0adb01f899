// The AArch64 GEMM microkernels (NEON smull/sadalp and sdot) against a plain triple loop over the
// unpacked weights: exact int32 sums for every tile shape, remainder of K, stride and extreme
// value, without reading A or B past their ends. Also the driver under each forced ISA and the
// automatic choice. Built for AArch64 only; scripts/test_arm.sh runs it under qemu-user, once
// with dotprod and once on an emulated Cortex-A72 (no dotprod).

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/isa.h"
#include "core/qgemm.h"
#include "core/quantize.h"
#include "core/ukernels/qgemm_ukernels.h"
#include "core/ukernels/ukernels.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;
using ukernels::GemmMicrokernel;

// The kernel qgemm() runs under `isa` (the registry's default row of that level).
const GemmMicrokernel& microkernel(Isa isa) { return ukernels::gemm_microkernel_for(isa); }

// Over-reads up to a row past the last one must fault: a 64 KiB inaccessible region.
constexpr size_t kGuardBytes = 64 * 1024;

// The packed layout of qgemm.h, written from its description: byte (kk, j) of block nb at
// nb · block_stride + (kk / 4) · 64 + j · 4 + kk % 4, block_stride = round_up(k, 4) · 16, zero
// padding past k and past n. w is [n][k] row major.
std::vector<int8_t> pack(const std::vector<int8_t>& w, size_t n, size_t k, size_t blocks, size_t* block_stride) {
  const size_t k_padded = (k + 3) / 4 * 4;
  *block_stride = k_padded * 16;
  std::vector<int8_t> packed(blocks * *block_stride, 0);
  for (size_t j = 0; j < n; ++j) {
    for (size_t kk = 0; kk < k; ++kk) {
      packed[(j / 16) * *block_stride + (kk / 4) * 64 + (j % 16) * 4 + kk % 4] = w[j * k + kk];
    }
  }
  return packed;
}

enum class Values { kRandom, kAllMin, kAllMax, kMinTimesMax, kMixedExtremes };
constexpr Values kAllValues[] = {Values::kRandom, Values::kAllMin, Values::kAllMax, Values::kMinTimesMax,
                                 Values::kMixedExtremes};

int8_t value(std::mt19937& rng, Values v, bool is_a) {
  switch (v) {
    case Values::kRandom: return static_cast<int8_t>(uniform_int<int>(rng, -128, 127));
    case Values::kAllMin: return -128;
    case Values::kAllMax: return 127;
    case Values::kMinTimesMax: return is_a ? -128 : 127;
    case Values::kMixedExtremes: return uniform_int<int>(rng, 0, 1) ? int8_t{-128} : int8_t{127};
  }
  return 0;
}

constexpr int32_t kAccSentinel = 0x5a5a5a5a;

// Runs uk.accumulate on one tile and compares it with the triple loop; the accumulator entries
// outside the tile (stride padding, rows past mr) must keep their sentinel.
::testing::AssertionResult check_tile(const GemmMicrokernel& uk, std::mt19937& rng, size_t mr, size_t blocks, size_t k,
                                      size_t a_stride, size_t acc_stride, Values values) {
  const size_t n = blocks * 16 - uniform_int<size_t>(rng, 0, 15);  // padded channels too
  std::vector<int8_t> w(n * k);
  for (auto& x : w) x = value(rng, values, false);
  size_t block_stride = 0;
  const std::vector<int8_t> packed = pack(w, n, k, blocks, &block_stride);

  // A: the last row ends at the guard; the bytes between rows are junk that must not matter.
  Guarded<uint8_t> a(mr == 0 ? 0 : (mr - 1) * a_stride + k, kGuardBytes);
  for (size_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<uint8_t>(rng());
  for (size_t i = 0; i < mr; ++i) {
    for (size_t kk = 0; kk < k; ++kk) {
      a.data()[i * a_stride + kk] = static_cast<uint8_t>(value(rng, values, true));
    }
  }
  Guarded<uint8_t> b(packed.size(), kGuardBytes);
  std::memcpy(b.data(), packed.data(), packed.size());

  const size_t acc_rows = uk.mr + 1;
  std::vector<int32_t> acc(acc_rows * acc_stride, kAccSentinel);
  uk.accumulate(mr, blocks, k, a.data(), a_stride, reinterpret_cast<const int8_t*>(b.data()), block_stride, acc.data(),
                acc_stride);

  for (size_t i = 0; i < acc_rows; ++i) {
    for (size_t j = 0; j < acc_stride; ++j) {
      int32_t want = kAccSentinel;
      if (i < mr && j < blocks * 16) {
        want = 0;
        if (j < n) {
          for (size_t kk = 0; kk < k; ++kk) {
            want += static_cast<int32_t>(static_cast<int8_t>(a.data()[i * a_stride + kk])) *
                    static_cast<int32_t>(w[j * k + kk]);
          }
        }
      }
      const int32_t got = acc[i * acc_stride + j];
      if (got != want) {
        return ::testing::AssertionFailure()
               << uk.name << ": acc(" << i << ", " << j << ") = " << got << ", want " << want << " (mr " << mr
               << ", blocks " << blocks << ", n " << n << ", k " << k << ", a_stride " << a_stride << ", acc_stride "
               << acc_stride << ", values " << static_cast<int>(values) << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// --- the microkernels, called directly --------------------------------------------------------

// Parameter: every GEMM row of the kernel registry that reads A as int8 and this CPU runs (on a
// core without the dot product the neondot kernel is left out: sdot would be illegal).
class ArmGemmUkernels : public ::testing::TestWithParam<std::string> {
 protected:
  const ukernels::RegisteredKernel<GemmMicrokernel>& row() const {
    return registered(ukernels::gemm_kernels(), GetParam());
  }
  Isa isa() const { return row().isa; }
};
INSTANTIATE_TEST_SUITE_P(Kernel, ArmGemmUkernels,
                         ::testing::ValuesIn(runnable_kernels(ukernels::gemm_kernels(),
                                                              [](const auto& row) { return row.kernel.a_signed; })),
                         kernel_param_name);

TEST_P(ArmGemmUkernels, DescribeThemselves) {
  const GemmMicrokernel& uk = row().kernel;
  EXPECT_TRUE(uk.a_signed) << "ARM kernels read A as int8 (s8·s8 products)";
  EXPECT_GE(uk.mr, 1u);
  EXPECT_GE(uk.max_blocks, 1u);
  EXPECT_LE(uk.mr * uk.max_blocks * kGemmNr, ukernels::kMaxTileAccumulators);
  EXPECT_NE(uk.accumulate, nullptr);
  EXPECT_NE(uk.requantize, nullptr);
  const std::string name = uk.name, suffix = std::string("-") + isa_name(isa());
  EXPECT_EQ(name.rfind("qs8-gemm-", 0), 0u) << name;
  ASSERT_GE(name.size(), suffix.size());
  EXPECT_EQ(name.substr(name.size() - suffix.size()), suffix) << name;
}

TEST_P(ArmGemmUkernels, AccumulateMatchesTripleLoop) {
  const GemmMicrokernel& uk = row().kernel;
  const size_t ks[] = {0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 255, 256, 257, 1000};
  const size_t stride_pad[] = {0, 1, 3, 16, 61};
  const size_t acc_pad[] = {0, 1, 5, 16};
  std::mt19937 rng(2024);
  for (size_t mr = 1; mr <= uk.mr; ++mr) {
    for (size_t blocks = 1; blocks <= uk.max_blocks; ++blocks) {
      for (size_t k : ks) {
        for (Values values : kAllValues) {
          const size_t a_stride = k + pick(rng, stride_pad);
          const size_t acc_stride = blocks * 16 + pick(rng, acc_pad);
          ASSERT_TRUE(check_tile(uk, rng, mr, blocks, k, a_stride, acc_stride, values));
        }
      }
    }
  }
}

TEST_P(ArmGemmUkernels, RandomShapes) {
  const GemmMicrokernel& uk = row().kernel;
  std::mt19937 rng(77);
  for (int iter = 0; iter < 200; ++iter) {
    const size_t mr = uniform_int<size_t>(rng, 1, uk.mr);
    const size_t blocks = uniform_int<size_t>(rng, 1, uk.max_blocks);
    const size_t k = uniform_int<size_t>(rng, 0, 600);
    const size_t a_stride = k + uniform_int<size_t>(rng, 0, 40);
    const size_t acc_stride = blocks * 16 + uniform_int<size_t>(rng, 0, 20);
    ASSERT_TRUE(check_tile(uk, rng, mr, blocks, k, a_stride, acc_stride, pick(rng, kAllValues)));
  }
}

// The longest reduction the driver allows, at the largest magnitudes: 32768 · 16384 = 2^29.
TEST_P(ArmGemmUkernels, LongestReductionOfExtremes) {
  const GemmMicrokernel& uk = row().kernel;
  std::mt19937 rng(5);
  const size_t k = static_cast<size_t>(kMaxGemmK);
  for (Values values : {Values::kAllMin, Values::kMinTimesMax, Values::kAllMax}) {
    ASSERT_TRUE(check_tile(uk, rng, uk.mr, uk.max_blocks, k, k, uk.max_blocks * 16, values));
  }
}

// The output stage against the scalar reference: every output type and family, with and
// without row sums, ties (power-of-two multipliers), extreme totals and narrow clamps; nothing
// outside the rows × cols tile may be written.
TEST_P(ArmGemmUkernels, RequantizeMatchesScalar) {
  const GemmMicrokernel& uk = row().kernel;
  std::mt19937 rng(31);
  const OutputType types[] = {OutputType::kUint8, OutputType::kInt8, OutputType::kInt16, OutputType::kFloat};
  const int32_t special_acc[] = {
      std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(), 0, 1, -1, 2, -3, 5, -5};
  // 1.9999999: M0 just below 2^31 with a left shift, so saturated totals stay near INT32_MAX.
  const double special_m[] = {0.5, 0.25, 1.0, 0x1p-10, 0x1p-31, 0x1p-33, 3.0, 1e-7, 1.9999999};
  for (int iter = 0; iter < 3000; ++iter) {
    const size_t rows = uniform_int<size_t>(rng, 1, uk.mr + 1);
    const size_t max_cols = uk.max_blocks * kGemmNr;
    const size_t cols = iter < 64 ? static_cast<size_t>(iter) % max_cols + 1 : uniform_int<size_t>(rng, 1, max_cols);
    const size_t n0 = 16 * uniform_int<size_t>(rng, 0, 2);
    const size_t acc_stride = cols + uniform_int<size_t>(rng, 0, 9);
    const size_t out_stride = cols + uniform_int<size_t>(rng, 0, 9);
    const OutputType type = pick(rng, types);
    const RequantMode mode = uniform_int(rng, 0, 1) ? RequantMode::kFixedPoint : RequantMode::kFloat;
    const int scale_kind = uniform_int(rng, 0, 2);  // 0: small totals, 1: any int32, 2: specials

    std::vector<int32_t> acc(rows * acc_stride), channel_term(cols), zb(cols), row_sum(rows);
    for (auto& v : acc) {
      v = scale_kind == 0   ? uniform_int<int32_t>(rng, -100000, 100000)
          : scale_kind == 1 ? static_cast<int32_t>(rng())
                            : pick(rng, special_acc);
    }
    for (auto& v : channel_term) {
      v = scale_kind == 1 ? static_cast<int32_t>(rng()) : uniform_int<int32_t>(rng, -5000, 5000);
    }
    for (auto& v : zb) v = uniform_int<int32_t>(rng, -128, 127);
    for (auto& v : row_sum) v = uniform_int<int32_t>(rng, -300000, 300000);
    const bool use_row_sum = uniform_int(rng, 0, 1) == 1;

    std::vector<float> multiplier(n0 + cols);
    std::vector<int32_t> fixed_multiplier(n0 + cols), fixed_shift(n0 + cols);
    for (size_t c = 0; c < n0 + cols; ++c) {
      const double m =
          uniform_int(rng, 0, 3) == 0 ? pick(rng, special_m) : static_cast<double>(log_uniform(rng, 1e-9, 4.0));
      multiplier[c] = static_cast<float>(m);
      quantize_multiplier(m, &fixed_multiplier[c], &fixed_shift[c]);
    }
    OutputStage stage;
    stage.type = type;
    stage.mode = mode;
    stage.multiplier = multiplier.data();
    stage.fixed_multiplier = fixed_multiplier.data();
    stage.fixed_shift = fixed_shift.data();
    int32_t lo = 0, hi = 255;
    if (type == OutputType::kInt8) lo = -128, hi = 127;
    if (type == OutputType::kInt16) lo = -32768, hi = 32767;
    if (type == OutputType::kFloat) {
      stage.zero_point = 0;
      stage.qmin = stage.qmax = 0;
      const float inf = std::numeric_limits<float>::infinity();
      stage.fmin = uniform_int(rng, 0, 1) ? -inf : uniform(rng, -1e3, 0);
      stage.fmax = uniform_int(rng, 0, 1) ? inf : uniform(rng, 0, 1e3);
    } else {
      stage.zero_point = uniform_int<int32_t>(rng, lo, hi);
      stage.qmin = uniform_int(rng, 0, 1) ? lo : uniform_int<int32_t>(rng, lo, hi);
      stage.qmax = uniform_int(rng, 0, 1) ? hi : uniform_int<int32_t>(rng, stage.qmin, hi);
    }
    const size_t elem = type == OutputType::kFloat ? 4 : type == OutputType::kInt16 ? 2 : 1;
    const size_t bytes = ((rows - 1) * out_stride + cols) * elem + 64;
    std::vector<uint8_t> want(bytes, 0xa5), got(bytes, 0xa5);
    const int32_t* rs = use_row_sum ? row_sum.data() : nullptr;
    ukernels::qs32_requantize_scalar(rows, cols, acc.data(), acc_stride, channel_term.data(), zb.data(), rs, stage, n0,
                                     want.data(), out_stride);
    uk.requantize(rows, cols, acc.data(), acc_stride, channel_term.data(), zb.data(), rs, stage, n0, got.data(),
                  out_stride);
    ASSERT_TRUE(same_bits(got.data(), want.data(), bytes))
        << uk.name << " iter " << iter << ": rows " << rows << " cols " << cols << " n0 " << n0 << " type "
        << static_cast<int>(type) << " mode " << static_cast<int>(mode) << " row sums " << use_row_sum << " kind "
        << scale_kind;
  }
}

// --- the driver ---------------------------------------------------------------------------------

struct GemmCase {
  size_t m, n, k;
  bool a_signed, w_unsigned, per_channel_zero_point, bias;
  OutputType type;
  RequantMode mode;
};

// qgemm() on a random problem under the active ISA; returns the output bytes.
std::vector<uint8_t> run_qgemm(const GemmCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t a_stride = c.k + 3;
  std::vector<uint8_t> a(c.m * a_stride + 1);
  for (auto& x : a) x = static_cast<uint8_t>(rng());
  std::vector<uint8_t> w(c.n * c.k);
  for (auto& x : w) x = static_cast<uint8_t>(rng());
  std::vector<int32_t> wzp(c.per_channel_zero_point ? c.n : 1);
  for (auto& z : wzp) {
    z = c.per_channel_zero_point ? uniform_int<int32_t>(rng, -20, 20) : 0;
    if (c.w_unsigned) z += 128;
  }
  const PackedWeights packed = pack_weights(w.data(), c.w_unsigned, static_cast<int64_t>(c.n),
                                            static_cast<int64_t>(c.k), wzp.data(), wzp.size());
  std::vector<float> ws(c.n);
  for (auto& s : ws) s = log_uniform(rng, 1e-3, 1e-2);
  std::vector<int32_t> bias(c.n);
  for (auto& b : bias) b = uniform_int<int32_t>(rng, -100000, 100000);
  const double sa = 0.02;
  // Outputs spread over the type's range instead of all clamping.
  const double sy = sa * 5e-3 * 74.0 * 74.0 * std::sqrt(static_cast<double>(c.k) + 1.0) / 40.0;
  OutputStageStorage stage;
  make_output_stage(c.type, c.mode, sa, ws.data(), ws.size(), static_cast<int64_t>(c.n), sy,
                    c.type == OutputType::kUint8 ? 128 : 3, -std::numeric_limits<double>::infinity(),
                    std::numeric_limits<double>::infinity(), &stage);
  GemmActivations act;
  act.data = a.data();
  act.is_signed = c.a_signed;
  act.zero_point = c.a_signed ? -7 : 131;
  act.stride = a_stride;
  const size_t elem = c.type == OutputType::kFloat ? 4 : c.type == OutputType::kInt16 ? 2 : 1;
  const size_t out_stride = c.n + 5;
  std::vector<uint8_t> out(c.m * out_stride * elem, 0xee);
  qgemm(act, 0, static_cast<int64_t>(c.m), packed.view(), 0, static_cast<int64_t>(c.n), c.bias ? bias.data() : nullptr,
        stage.stage, out.data(), out_stride);
  return out;
}

std::vector<GemmCase> gemm_cases() {
  std::vector<GemmCase> cases;
  const OutputType types[] = {OutputType::kUint8, OutputType::kInt8, OutputType::kInt16, OutputType::kFloat};
  int i = 0;
  for (size_t m : {1, 3, 9}) {
    for (size_t n : {1, 16, 37}) {
      for (size_t k : {1, 6, 64, 141}) {
        ++i;
        cases.push_back({m, n, k, i % 2 == 0, i % 3 == 0, i % 4 < 2, i % 5 != 0, types[i % 4],
                         i % 3 == 1 ? RequantMode::kFixedPoint : RequantMode::kFloat});
      }
    }
  }
  return cases;
}

TEST_P(ArmGemmUkernels, QgemmUnderForcedIsaMatchesScalar) {
  uint32_t seed = 1;
  for (const GemmCase& c : gemm_cases()) {
    ++seed;
    std::vector<uint8_t> want, got;
    {
      IsaOverride forced(Isa::kScalar);
      want = run_qgemm(c, seed);
    }
    {
      IsaOverride forced(isa());
      EXPECT_STREQ(qgemm_kernel_name(), microkernel(isa()).name);
      got = run_qgemm(c, seed);
    }
    ASSERT_TRUE(same_bits(got.data(), want.data(), got.size()))
        << "m " << c.m << " n " << c.n << " k " << c.k << " type " << static_cast<int>(c.type) << " mode "
        << static_cast<int>(c.mode);
  }
}

// --- the automatic choice ---------------------------------------------------------------------

// The best level the CPU reports, and qgemm() on it matches scalar. scripts/test_arm.sh names
// the level the emulated CPU must give in CIRCLE_QUANT_EXPECT_ISA (neon on a Cortex-A72).
TEST(ArmIsaSelection, AutomaticChoiceFollowsTheCpu) {
  if (std::getenv("CIRCLE_QUANT_ISA") != nullptr) GTEST_SKIP() << "CIRCLE_QUANT_ISA forces a level";
  const Isa want = isa_supported(Isa::kNeonDot) ? Isa::kNeonDot : Isa::kNeon;
  ASSERT_EQ(active_isa(), want);
  if (const char* expected = std::getenv("CIRCLE_QUANT_EXPECT_ISA")) {
    EXPECT_EQ(std::string(isa_name(active_isa())), expected);
  }
  EXPECT_STREQ(qgemm_kernel_name(), microkernel(want).name);
  uint32_t seed = 100;
  for (const GemmCase& c : gemm_cases()) {
    ++seed;
    const std::vector<uint8_t> got = run_qgemm(c, seed);
    IsaOverride forced(Isa::kScalar);
    const std::vector<uint8_t> ref = run_qgemm(c, seed);
    ASSERT_TRUE(same_bits(got.data(), ref.data(), got.size())) << "m " << c.m << " n " << c.n << " k " << c.k;
  }
}

// The elementwise kernels have no NEON variants: the NEON levels run the scalar code.
TEST(ArmIsaSelection, ElementwiseKernelsRunScalarCodeUnderNeon) {
  std::mt19937 rng(3);
  std::vector<float> x(1001);
  for (auto& v : x) v = uniform(rng, -300, 300);
  const QuantizeParams p = make_quantize_params(0.7, 5, -128, 127);
  std::vector<int8_t> want(x.size()), got(x.size());
  ukernels::f32_quantize_scalar<int8_t>(x.data(), want.data(), x.size(), p);
  for (Isa isa : {Isa::kNeon, Isa::kNeonDot}) {
    if (!isa_supported(isa)) continue;
    IsaOverride forced(isa);
    std::fill(got.begin(), got.end(), int8_t{0});
    EXPECT_TRUE(quantize<int8_t>(x.data(), got.data(), x.size(), p));
    EXPECT_TRUE(same_bits(got.data(), want.data(), x.size())) << isa_name(isa);
  }
}

}  // namespace
