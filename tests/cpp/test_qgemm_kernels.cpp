// Integer GEMM (qgemm.h): every microkernel and SIMD output stage against the scalar reference
// bit for bit, the qgemm() driver under every ISA against a naive oracle written from the
// numerics spec (docs/numerics.md, "Integer GEMM"), and the set-up functions (weight packing,
// output stage, fixed-point multipliers).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/isa.h"
#include "core/qgemm.h"
#include "core/ukernels/qgemm_ukernels.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;
using ukernels::GemmMicrokernel;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int32_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();

// --- the microkernels --------------------------------------------------------------------------

// Every GEMM row of the kernel registry this CPU runs whose A is uint8 (x86 and the scalar
// reference; the ARM int8-A kernels have test_gemm_ukernels_arm.cpp). Kernels of levels this CPU
// lacks are left out rather than skipped (this machine lacks VEX AVX-VNNI; its code is the same
// as the EVEX build's, which runs on AVX512-VNNI machines).
std::vector<std::string> unsigned_a_gemm_kernels() {
  return runnable_kernels(ukernels::gemm_kernels(), [](const auto& row) { return !row.kernel.a_signed; });
}

class MicrokernelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { uk_ = registered(ukernels::gemm_kernels(), GetParam()).kernel; }
  GemmMicrokernel uk_{};
};

TEST_P(MicrokernelTest, Geometry) {
  EXPECT_GE(uk_.mr, 1u);
  EXPECT_GE(uk_.max_blocks, 1u);
  EXPECT_LE(uk_.mr * uk_.max_blocks * kGemmNr, ukernels::kMaxTileAccumulators);
  EXPECT_FALSE(uk_.a_signed);                                              // the suite's kernels read A as uint8
  EXPECT_EQ(std::string(uk_.name).rfind("qu8-gemm-", 0), 0u) << uk_.name;  // u8 A: the qu8 prefix
}

// Value patterns for A (uint8 as the kernel reads it) and the weights (int8 as stored).
enum class Values {
  kRandom,
  kSaturationTrapLow,
  kSaturationTrapHigh,
  kZeroA,
  kExtremeMix,
  kMinus127,       // A = 255, every weight -127
  kSameSignPairs,  // A = 255, each k pair (2j, 2j+1) of one sign with |w0| + |w1| in (128, 255]
  kAlternating,    // A alternating 255 / 0, weights alternating 127 / -128
  kPairsOf127,     // A = 255, k pairs alternating (127, 127) and (-127, -127): every pair unsafe
  kFewUnsafe,      // A = 255, small weights (|w| <= 40) and about one k pair in 200 past 128
  kZeroChannels,   // random, channels 8-15 of every other block all zero (half a block to skip)
  kRepairable,     // A = 255, k groups by turns: small, safe only as (0, 2)(1, 3), only as (0, 3)(1, 2), never
};
const char* values_name(Values v) {
  switch (v) {
    case Values::kRandom: return "random";
    case Values::kSaturationTrapLow: return "A=255, B=-128";  // vpmaddubsw pairs: -65280
    case Values::kSaturationTrapHigh: return "A=255, B=127";  // vpmaddubsw pairs: 64770
    case Values::kZeroA: return "A=0";
    case Values::kExtremeMix: return "A in {0,255}, B in {-128,127}";
    case Values::kMinus127: return "A=255, B=-127";
    case Values::kSameSignPairs: return "A=255, same-sign B pairs past 128";
    case Values::kAlternating: return "A 255/0, B 127/-128 alternating";
    case Values::kPairsOf127: return "A=255, B pairs (127, 127) / (-127, -127)";
    case Values::kFewUnsafe: return "A=255, small B with a few unsafe pairs";
    case Values::kZeroChannels: return "random, channels 8-15 of even blocks zero";
    case Values::kRepairable: return "A=255, groups safe in one pairing of their k only";
  }
  return "?";
}

// w: rows [n, k].
void fill(Values v, std::mt19937& rng, size_t k, std::vector<uint8_t>* a, std::vector<int8_t>* w) {
  for (auto& x : *a) {
    switch (v) {
      case Values::kRandom:
      case Values::kZeroChannels: x = uniform_int<int>(rng, 0, 255); break;
      case Values::kSaturationTrapLow:
      case Values::kSaturationTrapHigh: x = 255; break;
      case Values::kZeroA: x = 0; break;
      case Values::kExtremeMix: x = uniform_int<int>(rng, 0, 1) ? 255 : 0; break;
      case Values::kMinus127:
      case Values::kSameSignPairs:
      case Values::kPairsOf127:
      case Values::kFewUnsafe:
      case Values::kRepairable: x = 255; break;
      case Values::kAlternating: x = (&x - a->data()) % 2 == 0 ? 255 : 0; break;
    }
  }
  if (v == Values::kSameSignPairs) {  // pairs along k within each row [n, k] of w
    for (size_t i = 0; i + 1 < w->size(); i += 2) {
      const int first = uniform_int<int>(rng, 2, 127);
      const int second = uniform_int<int>(rng, std::max(1, 129 - first), 127);
      const int sign = uniform_int<int>(rng, 0, 1) ? 1 : -1;
      (*w)[i] = static_cast<int8_t>(sign * first);
      (*w)[i + 1] = static_cast<int8_t>(sign > 0 ? second : -std::min(128, second + 1));
    }
    if (w->size() % 2 == 1) w->back() = 127;
    return;
  }
  for (auto& x : *w) {
    switch (v) {
      case Values::kRandom:
      case Values::kZeroChannels:
      case Values::kZeroA: x = static_cast<int8_t>(uniform_int<int>(rng, -128, 127)); break;
      case Values::kSaturationTrapLow: x = -128; break;
      case Values::kSaturationTrapHigh: x = 127; break;
      case Values::kExtremeMix: x = uniform_int<int>(rng, 0, 1) ? 127 : -128; break;
      case Values::kMinus127: x = -127; break;
      case Values::kAlternating: x = (&x - w->data()) % 2 == 0 ? 127 : -128; break;
      case Values::kPairsOf127: x = (&x - w->data()) % 4 < 2 ? 127 : -127; break;
      case Values::kFewUnsafe: x = static_cast<int8_t>(uniform_int<int>(rng, -40, 40)); break;
      case Values::kSameSignPairs:
      case Values::kRepairable: break;  // filled above / below
    }
  }
  if (v == Values::kRepairable) {
    // Per group of 4 k, by turns: small weights (safe as packed); (100, 100, -100, -100), unsafe
    // as packed, safe paired (0, 2)(1, 3); (120, 30, 30, -50), safe only as (0, 3)(1, 2); all
    // 127, safe in none. Each (channel, group) gets its own sign.
    const int patterns[3][4] = {{100, 100, -100, -100}, {120, 30, 30, -50}, {127, 127, 127, 127}};
    for (size_t c = 0; k > 0 && c < w->size() / k; ++c) {
      for (size_t g = 0; g * 4 < k; ++g) {
        const int kind = static_cast<int>(g % 4), sign = uniform_int<int>(rng, 0, 1) ? 1 : -1;
        for (size_t j = 0; j < 4 && g * 4 + j < k; ++j) {
          const int value = kind == 0 ? uniform_int<int>(rng, -40, 40) : sign * patterns[kind - 1][j];
          (*w)[c * k + g * 4 + j] = static_cast<int8_t>(value);
        }
      }
    }
    return;
  }
  if (v == Values::kZeroChannels) {
    for (size_t c = 0; k > 0 && c < w->size() / k; ++c) {
      if ((c / kGemmNr) % 2 == 0 && c % kGemmNr >= 8) std::fill_n(w->data() + c * k, k, int8_t{0});
    }
  }
  if (v == Values::kFewUnsafe) {  // a pair here and there (weights are rows [n, k]: k pairs are adjacent)
    for (size_t i = 0; i + 1 < w->size(); i += 2) {
      if (uniform_int<int>(rng, 0, 199) != 0) continue;
      const int sign = uniform_int<int>(rng, 0, 1) ? 1 : -1;
      (*w)[i] = static_cast<int8_t>(sign * uniform_int<int>(rng, 65, 127));
      (*w)[i + 1] = static_cast<int8_t>(sign * uniform_int<int>(rng, 65, 127));
    }
  }
}

// One accumulate call of `uk` against the scalar kernel on the same packed inputs; A and B end
// at an inaccessible page, and acc entries outside the tile must keep their sentinel.
// mr: up to uk.mr, or any count for a kernel that takes any (GemmMicrokernel::any_rows).
::testing::AssertionResult check_accumulate(const GemmMicrokernel& uk, size_t mr, size_t blocks, size_t k,
                                            Values values, std::mt19937& rng) {
  const size_t a_stride = k + uniform_int<size_t>(rng, 0, 9);
  const size_t n = blocks * kGemmNr - uniform_int<size_t>(rng, 0, kGemmNr - 1);  // padded channels
  std::vector<uint8_t> a_rows((mr - 1) * a_stride + k);
  std::vector<int8_t> w(n * k);
  fill(values, rng, k, &a_rows, &w);
  const int32_t zero = 0;
  const PackedWeights packed =
      pack_weights(w.data(), false, static_cast<int64_t>(n), static_cast<int64_t>(k), &zero, 1);
  // Re-space the blocks: the kernel must follow block_stride, not assume k_padded * 16.
  const size_t packed_stride = packed.view().block_stride();
  const size_t block_stride = packed_stride + uniform_int<size_t>(rng, 0, 70);
  Guarded<int8_t> b((blocks - 1) * block_stride + packed_stride);
  std::fill(b.data(), b.data() + b.size(), int8_t{99});
  for (size_t nb = 0; nb < blocks && packed_stride > 0; ++nb) {
    std::memcpy(b.data() + nb * block_stride, packed.data.data() + nb * packed_stride, packed_stride);
  }
  Guarded<uint8_t> a(a_rows.size());
  a.assign(a_rows);

  const size_t acc_stride = blocks * kGemmNr + uniform_int<size_t>(rng, 0, 8);
  const int32_t sentinel = 0x5eed5eed;
  std::vector<int32_t> got(mr * acc_stride + 16, sentinel), want(mr * acc_stride + 16, sentinel);
  ukernels::accumulate_packed(uk, mr, blocks, k, a.data(), a_stride, b.data(), block_stride, got.data(), acc_stride);
  const GemmMicrokernel& scalar = registered(ukernels::gemm_kernels(), "qu8-gemm-4x16c4-scalar").kernel;
  for (size_t r = 0; r < mr; r += scalar.mr) {  // the reference a tile at a time (mr may pass uk's tile: any_rows)
    scalar.accumulate(std::min(scalar.mr, mr - r), blocks, k, a.data() + r * a_stride, a_stride, b.data(), block_stride,
                      want.data() + r * acc_stride, acc_stride);
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const size_t r = i / acc_stride, c = i % acc_stride;
    const bool inside = r < mr && c < blocks * kGemmNr;
    if (got[i] != (inside ? want[i] : sentinel)) {
      return ::testing::AssertionFailure()
             << (inside ? "wrong sum" : "write outside the tile") << " at row " << r << ", column " << c << ": got "
             << got[i] << ", want " << (inside ? want[i] : sentinel) << " (mr " << mr << ", blocks " << blocks << ", k "
             << k << ", " << values_name(values) << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

const size_t kTestKs[] = {0,  1,  2,  3,  4,  5,   7,   8,   15,  16,   17,   31,
                          32, 33, 63, 64, 65, 127, 255, 256, 257, 1000, 3072, 4100};

TEST_P(MicrokernelTest, AccumulateMatchesScalarOnEveryTileShape) {
  std::mt19937 rng(1234);
  // A kernel that loops over its own tiles: several tiles and every remainder.
  const size_t max_rows = uk_.any_rows ? 3 * uk_.mr + uk_.mr - 1 : uk_.mr;
  for (size_t k : kTestKs) {
    for (size_t mr = 1; mr <= max_rows; ++mr) {
      for (size_t blocks = 1; blocks <= uk_.max_blocks; ++blocks) {
        ASSERT_TRUE(check_accumulate(uk_, mr, blocks, k, Values::kRandom, rng));
      }
    }
  }
}

TEST_P(MicrokernelTest, AccumulateExtremeValuesAreExact) {
  // All-255 A with all -128 or all 127 B is where a vpmaddubsw kernel saturates; the sums are
  // also checked against their closed form, not only against the scalar kernel.
  std::mt19937 rng(99);
  for (Values v : {Values::kSaturationTrapLow, Values::kSaturationTrapHigh, Values::kZeroA, Values::kExtremeMix,
                   Values::kMinus127, Values::kSameSignPairs, Values::kAlternating, Values::kPairsOf127,
                   Values::kFewUnsafe, Values::kZeroChannels, Values::kRepairable}) {
    for (size_t k :
         {size_t{1}, size_t{3}, size_t{4}, size_t{17}, size_t{64}, size_t{255}, size_t{1000}, size_t{4100}}) {
      for (size_t mr : {size_t{1}, uk_.mr, uk_.any_rows ? 2 * uk_.mr + 1 : uk_.mr}) {
        for (size_t blocks : {size_t{1}, uk_.max_blocks}) {
          ASSERT_TRUE(check_accumulate(uk_, mr, blocks, k, v, rng));
        }
      }
    }
  }
  // Closed form for the largest K the driver accepts.
  const size_t k = kMaxGemmK;
  for (int8_t wv : {int8_t{-128}, int8_t{127}}) {
    std::vector<uint8_t> a(k, 255);
    std::vector<int8_t> w(kGemmNr * k, wv);
    const int32_t zero = 0;
    const PackedWeights p = pack_weights(w.data(), false, kGemmNr, k, &zero, 1);
    std::vector<int32_t> acc(kGemmNr);
    ukernels::accumulate_packed(uk_, 1, 1, k, a.data(), k, p.data.data(), p.view().block_stride(), acc.data(), kGemmNr);
    for (int32_t s : acc) ASSERT_EQ(s, static_cast<int32_t>(255 * wv * static_cast<int64_t>(k)));
  }
}

INSTANTIATE_TEST_SUITE_P(Gemm, MicrokernelTest, ::testing::ValuesIn(unsigned_a_gemm_kernels()), kernel_param_name);

// --- the implicit-GEMM form (accumulate_taps) ----------------------------------------------------

std::vector<std::string> tapped_gemm_kernels() {
  return runnable_kernels(ukernels::gemm_kernels(),
                          [](const auto& row) { return row.kernel.accumulate_taps != nullptr; });
}

class TappedMicrokernelTest : public MicrokernelTest {};

// Rows of A at one stride, and (kernels that read them) at arbitrary offsets: unordered,
// overlapping, and shared between rows, as a conv's output pixels across the ends of output rows
// are. Checked against sums written out from the unpacked weights, with every accumulator outside
// the tile left alone.
TEST_P(TappedMicrokernelTest, TapsMatchNaiveSumsWithRowsByStrideAndByOffset) {
  std::mt19937 rng(77);
  for (int trial = 0; trial < 60; ++trial) {
    const size_t mr = uniform_int<size_t>(rng, 1, uk_.mr), blocks = uniform_int<size_t>(rng, 1, uk_.max_blocks);
    const size_t taps = uniform_int<size_t>(rng, 1, 9), tap_k = uk_.tap_align * uniform_int<size_t>(rng, 1, 3);
    const size_t k = taps * tap_k, n = blocks * kGemmNr - uniform_int<size_t>(rng, 0, kGemmNr - 1);
    std::vector<int8_t> w(n * k);
    for (int8_t& v : w) v = static_cast<int8_t>(uniform_int<int>(rng, -128, 127));
    const int32_t zero = 0;
    const PackedWeights packed =
        pack_weights(w.data(), false, static_cast<int64_t>(n), static_cast<int64_t>(k), &zero, 1);
    std::vector<uint8_t> a(8192);
    for (uint8_t& v : a) v = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
    std::vector<int64_t> tap_offsets(taps);
    for (int64_t& o : tap_offsets) o = uniform_int<int64_t>(rng, 0, 2048);
    const size_t a_stride = uniform_int<size_t>(rng, 1, 300);
    for (bool by_offset : {false, true}) {
      if (by_offset && !uk_.reads_row_offsets) continue;  // stride-only kernel (AMX)
      std::vector<int64_t> row_offsets(mr);
      for (size_t r = 0; r < mr; ++r) {
        row_offsets[r] = by_offset ? (r > 0 && uniform_int<int>(rng, 0, 3) == 0 ? row_offsets[r - 1]
                                                                                : uniform_int<int64_t>(rng, 0, 2048))
                                   : static_cast<int64_t>(r * a_stride);
      }
      const size_t acc_stride = blocks * kGemmNr + uniform_int<size_t>(rng, 0, 8);
      const int32_t sentinel = 0x5eed5eed;
      std::vector<int32_t> got(mr * acc_stride, sentinel);
      uk_.accumulate_taps(mr, blocks, taps, tap_offsets.data(), tap_k, a.data(), a_stride,
                          by_offset ? row_offsets.data() : nullptr, packed.data.data(), packed.view().block_stride(),
                          got.data(), acc_stride);
      if (uk_.finish != nullptr) uk_.finish();
      for (size_t r = 0; r < mr; ++r) {
        for (size_t j = 0; j < acc_stride; ++j) {
          int32_t want = sentinel;
          if (j < n) {
            want = 0;
            for (size_t t = 0; t < taps; ++t) {
              const uint8_t* run = a.data() + row_offsets[r] + tap_offsets[t];
              for (size_t kk = 0; kk < tap_k; ++kk) want += run[kk] * w[j * k + t * tap_k + kk];
            }
          } else if (j < blocks * kGemmNr) {
            want = 0;  // a padded channel of the last block: zero weights
          }
          ASSERT_EQ(got[r * acc_stride + j], want)
              << uk_.name << (by_offset ? " rows by offset" : " rows by stride") << ": row " << r << ", column " << j
              << " (mr " << mr << ", blocks " << blocks << ", taps " << taps << ", tap_k " << tap_k << ")";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Gemm, TappedMicrokernelTest, ::testing::ValuesIn(tapped_gemm_kernels()), kernel_param_name);
// CPUs without AVX-512 VNNI or AMX have no tapped kernel (their convs take im2col): no cases there.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TappedMicrokernelTest);

// --- output stages -----------------------------------------------------------------------------

// A random multiplier for channel c: tiny, ties-prone powers of two, near 1, above 1 (left
// shifts in fixed point), zero (float output: -0 products), log-uniform.
float random_multiplier(std::mt19937& rng, bool allow_zero) {
  const float choices[] = {1e-9f, 3.7e-5f, 0.0123f, 0.5f, 0.25f, 0.125f, 0.9999999f, 0.99999994f, 1.5f, 3.0f, 1.0f};
  const int pick_kind = uniform_int<int>(rng, 0, 9);
  if (pick_kind == 0 && allow_zero) return 0.0f;
  if (pick_kind < 5) return pick(rng, choices);
  return log_uniform(rng, 1e-7, 1.0);
}

// Accumulator values: the full int32 range, small ones (ties with power-of-two multipliers)
// and the extremes.
int32_t random_acc(std::mt19937& rng) {
  switch (uniform_int<int>(rng, 0, 5)) {
    case 0: return uniform_int<int32_t>(rng, kInt32Min, kInt32Max);
    case 1: return pick(rng, {kInt32Min, kInt32Max, 0, 1, -1, kInt32Min + 1, 1 << 30, -(1 << 30)});
    case 2: return uniform_int<int32_t>(rng, -(1 << 20), 1 << 20);
    default: return uniform_int<int32_t>(rng, -1000, 1000);
  }
}

class RequantizeTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { fn_ = registered(ukernels::requantize_kernels(), GetParam()).kernel; }
  ukernels::RequantizeFn fn_ = nullptr;
};

TEST_P(RequantizeTest, MatchesScalarReference) {
  std::mt19937 rng(4321);
  const OutputType types[] = {OutputType::kUint8, OutputType::kInt8, OutputType::kInt16, OutputType::kFloat};
  for (int iter = 0; iter < 1500; ++iter) {
    const OutputType type = types[iter % 4];
    const RequantMode mode = (iter / 4) % 2 == 0 ? RequantMode::kFloat : RequantMode::kFixedPoint;
    // Rows: a tile's, and sometimes past the 64 the x86 stages take at a time. Columns: every
    // count to 64, then to 160 (four whole vectors narrow together, then the tail vectors).
    const size_t rows = iter % 16 == 15 ? uniform_int<size_t>(rng, 60, 70) : uniform_int<size_t>(rng, 1, 8);
    // Every fifth iteration from 64 on: rows of 8, 16 or 32 channels stored back to back, which the
    // x86 stages narrow several rows at a time.
    const bool dense = iter >= 64 && iter % 5 == 4;
    const size_t cols = iter < 64 ? static_cast<size_t>(iter + 1)
                        : dense   ? pick(rng, {size_t{8}, size_t{16}, size_t{32}})
                                  : uniform_int<size_t>(rng, 1, 160);
    const size_t n0 = uniform_int<size_t>(rng, 0, 20);
    const size_t acc_stride = cols + uniform_int<size_t>(rng, 0, 5);
    const size_t out_stride = dense ? cols : cols + uniform_int<size_t>(rng, 0, 5);
    const bool with_row_sum = uniform_int<int>(rng, 0, 1) == 1;
    SCOPED_TRACE(::testing::Message() << "iteration " << iter << ": " << type_name(type) << ", "
                                      << (mode == RequantMode::kFloat ? "float" : "fixed point") << ", rows " << rows
                                      << ", cols " << cols);

    // Every per-channel array ends at an inaccessible page: column tails must not over-read.
    Guarded<int32_t> acc(rows * acc_stride), term(cols), zb(cols), row_sum(rows);
    Guarded<float> multiplier(n0 + cols);
    Guarded<int32_t> fixed_multiplier(n0 + cols), fixed_shift(n0 + cols);
    for (size_t i = 0; i < acc.size(); ++i) acc[i] = random_acc(rng);
    for (size_t j = 0; j < cols; ++j) {
      term[j] = random_acc(rng);
      // Stored weight zero points (RequantizeFn's bounds), their ends often.
      zb[j] = uniform_int<int>(rng, 0, 3) == 0 ? pick(rng, {-128, 127}) : uniform_int<int32_t>(rng, -128, 127);
    }
    // Row sums up to 255 · kMaxGemmK, and the signed range of int8 activations (ARM's kernels).
    constexpr int32_t kLargestRowSum = 255 * static_cast<int32_t>(kMaxGemmK);
    for (size_t i = 0; i < rows; ++i) {
      row_sum[i] = uniform_int<int>(rng, 0, 3) == 0 ? pick(rng, {0, kLargestRowSum, -128 * 32768, 255})
                                                    : uniform_int<int32_t>(rng, -128 * 32768, kLargestRowSum);
    }
    for (size_t c = 0; c < n0 + cols; ++c) {
      multiplier[c] = random_multiplier(rng, type == OutputType::kFloat);
      if (mode == RequantMode::kFixedPoint && type != OutputType::kFloat) {
        if (uniform_int<int>(rng, 0, 15) == 0) {
          // Not produced by quantize_multiplier, but the INT32_MIN · INT32_MIN case of the
          // doubling high multiply must saturate the same way on every path.
          fixed_multiplier[c] = kInt32Min;
          fixed_shift[c] = 0;
        } else {
          quantize_multiplier(multiplier[c], &fixed_multiplier[c], &fixed_shift[c]);
        }
      } else {
        fixed_multiplier[c] = fixed_shift[c] = 0;
      }
    }
    OutputStage stage;
    stage.type = type;
    stage.mode = mode;
    stage.multiplier = multiplier.data();
    stage.fixed_multiplier = fixed_multiplier.data();
    stage.fixed_shift = fixed_shift.data();
    if (type == OutputType::kFloat) {
      const float bounds[][2] = {{-INFINITY, INFINITY}, {0.0f, INFINITY}, {0.0f, 6.0f}, {-1.5f, 2.5f}, {-0.0f, 0.0f}};
      const auto& b = bounds[uniform_int<int>(rng, 0, 4)];
      stage.fmin = b[0];
      stage.fmax = b[1];
    } else {
      int32_t lo, hi;
      type_bounds(type, &lo, &hi);
      stage.zero_point = uniform_int<int>(rng, 0, 2) == 0 ? pick(rng, {lo, hi, 0}) : uniform_int<int32_t>(rng, lo, hi);
      if (stage.zero_point < lo || stage.zero_point > hi) stage.zero_point = lo;
      stage.qmin = lo;
      stage.qmax = hi;
      if (uniform_int<int>(rng, 0, 1) == 1) {  // a fused activation's narrower range
        const int32_t x = uniform_int<int32_t>(rng, lo, hi), y = uniform_int<int32_t>(rng, lo, hi);
        stage.qmin = std::min(x, y);
        stage.qmax = std::max(x, y);
      }
    }

    const size_t es = element_size(type);
    const size_t out_bytes = ((rows - 1) * out_stride + cols) * es + 64;
    std::vector<uint8_t> got(out_bytes, 0xA5), want(out_bytes, 0xA5);
    const int32_t* rs = with_row_sum ? row_sum.data() : nullptr;
    fn_(rows, cols, acc.data(), acc_stride, term.data(), zb.data(), rs, stage, n0, got.data(), out_stride);
    ukernels::qs32_requantize_scalar(rows, cols, acc.data(), acc_stride, term.data(), zb.data(), rs, stage, n0,
                                     want.data(), out_stride);
    for (size_t i = 0; i < out_bytes; ++i) {
      ASSERT_EQ(got[i], want[i]) << "byte " << i << " (element " << i / es << ", row " << i / es / out_stride
                                 << ", column " << i / es % out_stride << ")";
    }
  }
}

// Every qs32-requantize row of the registry this CPU runs (the scalar one included: trivially equal).
INSTANTIATE_TEST_SUITE_P(Gemm, RequantizeTest, ::testing::ValuesIn(runnable_kernels(ukernels::requantize_kernels())),
                         kernel_param_name);

// The scalar output stage on hand-checked values (each expectation worked out from the
// formulas in docs/numerics.md).
TEST(GemmRequantizeScalar, HandComputedValues) {
  const float multiplier[] = {0.5f, 0.5f, 0.5f, 0.5f};
  int32_t fm[4], fs[4];
  for (int c = 0; c < 4; ++c) quantize_multiplier(0.5, &fm[c], &fs[c]);
  const int32_t acc[] = {5, -5, 7, 1000};
  const int32_t term[] = {0, 0, 0, 0};
  OutputStage stage;
  stage.multiplier = multiplier;
  stage.fixed_multiplier = fm;
  stage.fixed_shift = fs;
  stage.type = OutputType::kInt8;
  stage.zero_point = 3;
  stage.qmin = -128;
  stage.qmax = 127;
  int8_t out[4];
  // Float family: 2.5 → 2 and -2.5 → -2 (ties to even), 3.5 → 4; 500 + 3 clamps to 127.
  stage.mode = RequantMode::kFloat;
  ukernels::qs32_requantize_scalar(1, 4, acc, 4, term, term, nullptr, stage, 0, out, 4);
  EXPECT_EQ(out[0], 2 + 3);
  EXPECT_EQ(out[1], -2 + 3);
  EXPECT_EQ(out[2], 4 + 3);
  EXPECT_EQ(out[3], 127);
  // Fixed point, M0 = 2^30, shift 0: floor((x + 1) / 2), so 2.5 → 3, -2.5 → -2, 3.5 → 4.
  stage.mode = RequantMode::kFixedPoint;
  ukernels::qs32_requantize_scalar(1, 4, acc, 4, term, term, nullptr, stage, 0, out, 4);
  EXPECT_EQ(out[0], 3 + 3);
  EXPECT_EQ(out[1], -2 + 3);
  EXPECT_EQ(out[2], 4 + 3);
  EXPECT_EQ(out[3], 127);
  // Row sums: total = acc + term - zb · row_sum = 5 + 1 - 2 · 3 = 0 → zero point.
  const int32_t term1[] = {1, 1, 1, 1}, zb[] = {2, 2, 2, 2}, row_sum[] = {3};
  ukernels::qs32_requantize_scalar(1, 1, acc, 4, term1, zb, row_sum, stage, 0, out, 4);
  EXPECT_EQ(out[0], 3);
}

// --- quantize_multiplier / multiply_by_quantized_multiplier ------------------------------------

TEST(GemmFixedPoint, QuantizeMultiplierHandComputed) {
  // Expectations computed by hand from TFLite's QuantizeMultiplier: frexp(m) = q · 2^e with q in
  // [0.5, 1), M0 = round(q · 2^31), shift = e.
  struct Case {
    double m;
    int32_t m0, shift;
  };
  const Case cases[] = {
      {0.5, 1 << 30, 0},                         // 0.5 · 2^0
      {0.75, 1610612736, 0},                     // 0.75 · 2^31
      {0.1, 1717986918, -3},                     // 0.8 · 2^-3; 0.8 · 2^31 = 1717986918.4
      {1.0, 1 << 30, 1},                         // 0.5 · 2^1
      {1.0 - std::ldexp(1.0, -40), 1 << 30, 1},  // q · 2^31 rounds up to 2^31: carried
      {std::ldexp(1.0, -40), 0, 0},              // below 2^-31: the product rounds to zero anyway
  };
  for (const auto& c : cases) {
    int32_t m0 = -1, shift = -99;
    quantize_multiplier(c.m, &m0, &shift);
    EXPECT_EQ(m0, c.m0) << c.m;
    EXPECT_EQ(shift, c.shift) << c.m;
  }
  int32_t m0, shift;
  EXPECT_THROW(quantize_multiplier(0.0, &m0, &shift), std::invalid_argument);
  EXPECT_THROW(quantize_multiplier(-1.0, &m0, &shift), std::invalid_argument);
  EXPECT_THROW(quantize_multiplier(NAN, &m0, &shift), std::invalid_argument);
  EXPECT_THROW(quantize_multiplier(std::ldexp(1.0, 31), &m0, &shift), std::invalid_argument);
}

TEST(GemmFixedPoint, MultiplyByQuantizedMultiplierHandComputed) {
  // Worked out by hand from gemmlowp's SaturatingRoundingDoublingHighMul (round half up:
  // floor((x·M0 + 2^30) / 2^31)) and RoundingDivideByPOT (half away from zero).
  EXPECT_EQ(multiply_by_quantized_multiplier(100, 1 << 30, 0), 50);        // 100 · 0.5
  EXPECT_EQ(multiply_by_quantized_multiplier(101, 1 << 30, 0), 51);        // 50.5 → 51
  EXPECT_EQ(multiply_by_quantized_multiplier(-101, 1 << 30, 0), -50);      // -50.5 → -50 (half up)
  EXPECT_EQ(multiply_by_quantized_multiplier(10, 1 << 30, -1), 3);         // 5 / 2 = 2.5 → 3
  EXPECT_EQ(multiply_by_quantized_multiplier(-10, 1 << 30, -1), -3);       // -2.5 → -3 (away)
  EXPECT_EQ(multiply_by_quantized_multiplier(1000, 1717986918, -3), 100);  // 1000 · 0.1
  // Double rounding: 5 · 0.1 = 0.4999999999 with the 31-bit M0, yet the high multiply rounds
  // 4.4999… down to 4 and the shift rounds 4/8 = 0.5 away from zero, to 1.
  EXPECT_EQ(multiply_by_quantized_multiplier(5, 1717986918, -3), 1);
  EXPECT_EQ(multiply_by_quantized_multiplier(-5, 1717986918, -3), -1);
  // The one saturating product.
  EXPECT_EQ(multiply_by_quantized_multiplier(kInt32Min, kInt32Min, 0), kInt32Max);
  // A left shift past int32 saturates (2^30 · 4) before the multiply: INT32_MAX · 0.5 → 2^30.
  EXPECT_EQ(multiply_by_quantized_multiplier(1 << 30, 1 << 30, 2), 1 << 30);
  EXPECT_EQ(multiply_by_quantized_multiplier(-(1 << 30), 1 << 30, 2), -(1 << 30));
}

// --- output stage set-up -----------------------------------------------------------------------

TEST(GemmOutputStage, RejectsBadParameters) {
  OutputStageStorage st;
  const float ws[] = {0.1f, 0.2f};
  const float bad_ws[] = {0.1f, 0.0f};
  const auto make = [&](OutputType t, double sa, const float* w, size_t wn, double sy, int32_t zy, double lo,
                        double hi) { make_output_stage(t, RequantMode::kFloat, sa, w, wn, 2, sy, zy, lo, hi, &st); };
  EXPECT_NO_THROW(make(OutputType::kUint8, 0.1, ws, 2, 0.5, 0, -kInf, kInf));
  EXPECT_THROW(make(OutputType::kUint8, 0.0, ws, 2, 0.5, 0, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, -0.1, ws, 2, 0.5, 0, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, NAN, ws, 2, 0.5, 0, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, kInf, ws, 2, 0.5, 0, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, 0.1, bad_ws, 2, 0.5, 0, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, 0.1, ws, 3, 0.5, 0, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, 0.1, ws, 2, 0.0, 0, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, 0.1, ws, 2, NAN, 0, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, 0.1, ws, 2, 0.5, 256, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, 0.1, ws, 2, 0.5, -1, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kInt8, 0.1, ws, 2, 0.5, 128, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kInt16, 0.1, ws, 2, 0.5, 32768, -kInf, kInf), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, 0.1, ws, 2, 0.5, 0, 1.0, 0.0), std::invalid_argument);
  EXPECT_THROW(make(OutputType::kUint8, 0.1, ws, 2, 0.5, 0, NAN, 1.0), std::invalid_argument);
  // Float output ignores the output scale and zero point.
  EXPECT_NO_THROW(make(OutputType::kFloat, 0.1, ws, 2, 0.0, 0, -kInf, kInf));
  // A multiplier too large for fixed point.
  EXPECT_THROW(
      make_output_stage(OutputType::kUint8, RequantMode::kFixedPoint, 1e6, ws, 2, 2, 1e-6, 0, -kInf, kInf, &st),
      std::invalid_argument);
}

TEST(GemmOutputStage, MultipliersFollowTheSpec) {
  // multiplier = float(double(float(sa) · float(sb)) / sy); fixed point from the same double.
  const double sa = 0.0123456789, sy = 0.0456789;
  const float ws[] = {0.00321f, 0.5f, 1e-5f};
  OutputStageStorage st;
  make_output_stage(OutputType::kInt8, RequantMode::kFixedPoint, sa, ws, 3, 3, sy, -3, -kInf, kInf, &st);
  for (int c = 0; c < 3; ++c) {
    const double acc_scale = static_cast<double>(static_cast<float>(sa) * ws[c]);
    EXPECT_EQ(float_bits(st.multiplier[c]), float_bits(static_cast<float>(acc_scale / sy)));
    int32_t m0, shift;
    quantize_multiplier(acc_scale / sy, &m0, &shift);
    EXPECT_EQ(st.fixed_multiplier[c], m0);
    EXPECT_EQ(st.fixed_shift[c], shift);
  }
  EXPECT_EQ(st.stage.zero_point, -3);
  EXPECT_EQ(st.stage.qmin, -128);
  EXPECT_EQ(st.stage.qmax, 127);
  // Float output: the accumulator's scale itself, per-tensor weight scale broadcast.
  make_output_stage(OutputType::kFloat, RequantMode::kFloat, sa, ws, 1, 3, 1.0, 0, 0.0, 6.0, &st);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(float_bits(st.multiplier[c]), float_bits(static_cast<float>(sa) * ws[0]));
  }
  EXPECT_EQ(st.stage.fmin, 0.0f);
  EXPECT_EQ(st.stage.fmax, 6.0f);
}

TEST(GemmOutputStage, CallerOwnedArraysMatchOwningForm) {
  // compute_output_stage is what the PyTorch layer calls with arrays it keeps in tensors.
  const float ws[] = {0.01f, 0.02f, 0.03f};
  for (RequantMode mode : {RequantMode::kFloat, RequantMode::kFixedPoint}) {
    for (OutputType type : {OutputType::kUint8, OutputType::kInt16, OutputType::kFloat}) {
      OutputStageStorage st;
      make_output_stage(type, mode, 0.1, ws, 3, 3, 0.25, 7, 0.0, 6.0, &st);
      float multiplier[3];
      int32_t fm[3] = {-1, -1, -1}, fs[3] = {-1, -1, -1};
      OutputStage stage;
      compute_output_stage(type, mode, 0.1, ws, 3, 3, 0.25, 7, 0.0, 6.0, multiplier, fm, fs, &stage);
      for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(float_bits(multiplier[c]), float_bits(st.multiplier[c]));
        EXPECT_EQ(fm[c], st.fixed_multiplier[c]);
        EXPECT_EQ(fs[c], st.fixed_shift[c]);
      }
      EXPECT_EQ(stage.multiplier, multiplier);
      EXPECT_EQ(stage.type, type);
      EXPECT_EQ(stage.mode, mode);
      EXPECT_EQ(stage.zero_point, st.stage.zero_point);
      EXPECT_EQ(stage.qmin, st.stage.qmin);
      EXPECT_EQ(stage.qmax, st.stage.qmax);
      EXPECT_EQ(float_bits(stage.fmin), float_bits(st.stage.fmin));
      EXPECT_EQ(float_bits(stage.fmax), float_bits(st.stage.fmax));
    }
  }
  // The float family needs no fixed-point arrays.
  float multiplier[3];
  OutputStage stage;
  EXPECT_NO_THROW(compute_output_stage(OutputType::kUint8, RequantMode::kFloat, 0.1, ws, 3, 3, 0.25, 7, -kInf, kInf,
                                       multiplier, nullptr, nullptr, &stage));
}

TEST(GemmOutputStage, ActivationBounds) {
  const float ws[] = {1.0f};
  OutputStageStorage st;
  const auto bounds = [&](OutputType t, RequantMode mode, double sy, int32_t zy, double lo, double hi) {
    make_output_stage(t, mode, 1.0, ws, 1, 1, sy, zy, lo, hi, &st);
    return std::make_pair(st.stage.qmin, st.stage.qmax);
  };
  using P = std::pair<int32_t, int32_t>;
  for (RequantMode mode : {RequantMode::kFloat, RequantMode::kFixedPoint}) {
    // No activation: the type's range. ReLU: from the zero point. ReLU6 at scale 0.1: zp + 60.
    EXPECT_EQ(bounds(OutputType::kUint8, mode, 0.1, 10, -kInf, kInf), P(0, 255));
    EXPECT_EQ(bounds(OutputType::kUint8, mode, 0.1, 10, 0.0, kInf), P(10, 255));
    EXPECT_EQ(bounds(OutputType::kUint8, mode, 0.1, 10, 0.0, 6.0), P(10, 70));
    EXPECT_EQ(bounds(OutputType::kInt8, mode, 0.1, -100, 0.0, 6.0), P(-100, -40));
    // Bounds past the type's range are cut to it.
    EXPECT_EQ(bounds(OutputType::kInt8, mode, 0.01, 0, 0.0, 6.0), P(0, 127));
    EXPECT_EQ(bounds(OutputType::kInt16, mode, 1e-3, 0, -1.0, 1.0), P(-1000, 1000));
    // A range inside one step collapses to one level.
    EXPECT_EQ(bounds(OutputType::kUint8, mode, 1.0, 0, 0.6, 0.7), P(1, 1));
  }
  // At a tie the families differ: 1.25 / 0.5 = 2.5 → 2 (PyTorch, ties to even) or 3 (TFLite,
  // away from zero); -1.25 → -2 or -3.
  EXPECT_EQ(bounds(OutputType::kInt8, RequantMode::kFloat, 0.5, 0, -1.25, 1.25), P(-2, 2));
  EXPECT_EQ(bounds(OutputType::kInt8, RequantMode::kFixedPoint, 0.5, 0, -1.25, 1.25), P(-3, 3));
}

// --- weight packing ----------------------------------------------------------------------------

TEST(GemmPackWeights, LayoutSumsAndZeroPoints) {
  std::mt19937 rng(7);
  for (bool is_unsigned : {false, true}) {
    for (int64_t n : {1, 15, 16, 17, 40}) {
      for (int64_t k : {0, 1, 3, 4, 5, 9, 64}) {
        std::vector<uint8_t> w(static_cast<size_t>(n * k));
        for (auto& x : w) x = uniform_int<int>(rng, 0, 255);
        std::vector<int32_t> zp(static_cast<size_t>(n));
        for (auto& z : zp) {
          z = is_unsigned ? uniform_int<int>(rng, 0, 255) : uniform_int<int>(rng, -128, 127);
        }
        const PackedWeights p = pack_weights(w.data(), is_unsigned, n, k, zp.data(), zp.size());
        const PackedWeightsView v = p.view();
        ASSERT_EQ(v.k_padded, (k + 3) / 4 * 4);
        ASSERT_EQ(v.n_blocks, (n + 15) / 16);
        ASSERT_EQ(p.data.size(), packed_weight_bytes(n, k));
        ASSERT_EQ(p.data.size(), static_cast<size_t>(v.n_blocks) * v.block_stride());
        bool any_zp = false;
        for (int64_t c = 0; c < v.n_blocks * 16; ++c) {
          int32_t sum = 0;
          for (int64_t i = 0; i < v.k_padded; ++i) {
            const int8_t got = p.data[static_cast<size_t>(c / 16) * v.block_stride() +
                                      static_cast<size_t>((i / 4) * 64 + (c % 16) * 4 + i % 4)];
            int32_t want = 0;  // padding
            if (c < n && i < k) {
              const uint8_t raw = w[static_cast<size_t>(c * k + i)];
              want = is_unsigned ? raw - 128 : static_cast<int8_t>(raw);
            }
            ASSERT_EQ(got, want) << "channel " << c << ", k " << i;
            sum += want;
          }
          if (c < n) {
            EXPECT_EQ(p.column_sum[static_cast<size_t>(c)], sum);
            EXPECT_EQ(p.zero_point[static_cast<size_t>(c)], zp[static_cast<size_t>(c)] - (is_unsigned ? 128 : 0));
            any_zp |= p.zero_point[static_cast<size_t>(c)] != 0;
          }
        }
        EXPECT_EQ(p.has_weight_zero_point, any_zp);
      }
    }
  }
  // Symmetric weights need no row sums: int8 with zero point 0, uint8 with 128 (per tensor).
  const uint8_t w[4] = {1, 2, 3, 4};
  const int32_t zero = 0, mid = 128;
  EXPECT_FALSE(pack_weights(w, false, 1, 4, &zero, 1).has_weight_zero_point);
  EXPECT_FALSE(pack_weights(w, true, 1, 4, &mid, 1).has_weight_zero_point);
  EXPECT_TRUE(pack_weights(w, true, 1, 4, &zero, 1).has_weight_zero_point);
}

// Run-time B (quantized_matmul): the same packed bytes, sums and zero points from a transposed
// [K, N] layout (the interleaving path), a [N, K] layout with padded rows, and one with no dense
// dimension (the general path), as from the dense [N, K] original.
TEST(GemmPackWeights, StridedLayoutsPackLikeDenseRows) {
  std::mt19937 rng(11);
  for (bool is_unsigned : {false, true}) {
    for (int64_t n : {1, 7, 16, 33, 64}) {
      for (int64_t k : {0, 1, 3, 4, 6, 64, 129}) {
        std::vector<uint8_t> dense(static_cast<size_t>(n * k));
        for (auto& x : dense) x = uniform_int<int>(rng, 0, 255);
        const int32_t zp = is_unsigned ? 131 : -3;
        const PackedWeights want = pack_weights(dense.data(), is_unsigned, n, k, &zp, 1);
        // (n_stride, k_stride) and a buffer holding element (c, i) there.
        const size_t pad = 3;
        const std::pair<size_t, size_t> layouts[] = {
            {1, static_cast<size_t>(n) + pad},    // [K, N + pad]
            {static_cast<size_t>(k) + pad, 1},    // [N, K + pad]
            {2, 2 * static_cast<size_t>(n) + 1},  // every other column
        };
        for (const auto& [n_stride, k_stride] : layouts) {
          std::vector<uint8_t> buffer(static_cast<size_t>(n) * n_stride + static_cast<size_t>(k) * k_stride + 1, 0xA5);
          for (int64_t c = 0; c < n; ++c)
            for (int64_t i = 0; i < k; ++i)
              buffer[static_cast<size_t>(c) * n_stride + static_cast<size_t>(i) * k_stride] =
                  dense[static_cast<size_t>(c * k + i)];
          std::vector<int8_t> data(packed_weight_bytes(n, k), 0x33);
          std::vector<int32_t> zero_point(static_cast<size_t>(n)), column_sum(static_cast<size_t>(n));
          const bool any = pack_weights_strided(buffer.data(), is_unsigned, n, k, n_stride, k_stride, &zp, 1,
                                                data.data(), zero_point.data(), column_sum.data());
          const std::string where = "n " + std::to_string(n) + ", k " + std::to_string(k) + ", strides " +
                                    std::to_string(n_stride) + "/" + std::to_string(k_stride);
          EXPECT_EQ(data, want.data) << where;
          EXPECT_EQ(column_sum, want.column_sum) << where;
          EXPECT_EQ(zero_point, want.zero_point) << where;
          EXPECT_EQ(any, want.has_weight_zero_point) << where;
        }
      }
    }
  }
}

// Row sums (the weight zero point's compensation), every row of the rowsum family: lengths
// around each kernel's 16-, 32- and 64-byte steps, both readings of the bytes, strided rows, and
// rows that end at an inaccessible page (a tail must not read past the row's last byte).
class RowSumKernels : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { fn_ = registered(ukernels::rowsum_kernels(), GetParam()).kernel; }
  ukernels::RowSumFn fn_ = nullptr;
};

TEST_P(RowSumKernels, MatchNaiveSumsForBothSignednesses) {
  std::mt19937 rng(13);
  for (size_t k : {0, 1, 15, 16, 17, 28, 31, 32, 33, 63, 64, 65, 100, 127, 128, 200, 4099}) {
    const size_t rows = 9, stride = k + 5;  // two groups of four rows (summed together) and one
    // The last row ends at the page's end.
    Guarded<uint8_t> a((rows - 1) * stride + k);
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
    if (k == 200) {
      for (size_t i = 0; i < a.size(); ++i) a[i] = 255;  // the largest sums
    }
    for (bool a_signed : {false, true}) {
      std::vector<int32_t> got(rows);
      fn_(rows, k, a.data(), stride, a_signed, got.data());
      for (size_t i = 0; i < rows; ++i) {
        int32_t want = 0;
        for (size_t j = 0; j < k; ++j) {
          const uint8_t v = a[i * stride + j];
          want += a_signed ? static_cast<int8_t>(v) : v;
        }
        EXPECT_EQ(got[i], want) << "k " << k << ", row " << i << (a_signed ? ", int8" : ", uint8");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kernel, RowSumKernels, ::testing::ValuesIn(runnable_kernels(ukernels::rowsum_kernels())),
                         kernel_param_name);

TEST(GemmPackWeights, Errors) {
  const std::vector<uint8_t> w(64, 1);
  const int32_t zps[] = {0, 0};
  const int32_t bad_int8 = 128, bad_uint8_hi = 256, bad_uint8_lo = -1, int8_lo = -129;
  EXPECT_THROW(pack_weights(w.data(), false, 1, 4, &bad_int8, 1), std::invalid_argument);
  EXPECT_THROW(pack_weights(w.data(), false, 1, 4, &int8_lo, 1), std::invalid_argument);
  EXPECT_THROW(pack_weights(w.data(), true, 1, 4, &bad_uint8_hi, 1), std::invalid_argument);
  EXPECT_THROW(pack_weights(w.data(), true, 1, 4, &bad_uint8_lo, 1), std::invalid_argument);
  EXPECT_THROW(pack_weights(w.data(), false, 3, 4, zps, 2), std::invalid_argument);  // count
  // K past kMaxGemmK could overflow int32 sums: rejected before anything is read.
  EXPECT_THROW(pack_weights(w.data(), false, 1, kMaxGemmK + 1, zps, 1), std::invalid_argument);
  EXPECT_THROW(pack_weights(w.data(), false, -1, 4, zps, 1), std::invalid_argument);
}

// --- the qgemm() driver against a naive oracle -------------------------------------------------

struct GemmProblem {
  int64_t m = 0, n = 0, k = 0;
  bool a_signed = false;
  int32_t za = 0;
  size_t a_stride = 0;
  std::vector<uint8_t> a;  // raw bytes, [m, a_stride]
  bool w_unsigned = false;
  std::vector<uint8_t> w;     // raw bytes, [n, k]
  std::vector<int32_t> wzp;   // 1 or n
  std::vector<float> wscale;  // 1 or n
  std::vector<int32_t> bias;  // n or empty
  double sa = 0.02, sy = 0.05;
  int32_t zy = 0;
  OutputType type = OutputType::kUint8;
  RequantMode mode = RequantMode::kFloat;
  double act_min = -kInf, act_max = kInf;
  size_t out_stride = 0;
};

int32_t value_a(const GemmProblem& p, int64_t i, int64_t kk) {
  const uint8_t raw = p.a[static_cast<size_t>(i) * p.a_stride + static_cast<size_t>(kk)];
  return p.a_signed ? static_cast<int8_t>(raw) : raw;
}
int32_t value_w(const GemmProblem& p, int64_t c, int64_t kk) {
  const uint8_t raw = p.w[static_cast<size_t>(c * p.k + kk)];
  return p.w_unsigned ? raw : static_cast<int8_t>(raw);
}

// The spec's output stage, written out again from docs/numerics.md (not from the kernels):
// exact int64 total, then each family's formula with its own quantization of the bounds.
std::vector<uint8_t> oracle(const GemmProblem& p) {
  const size_t es = element_size(p.type);
  std::vector<uint8_t> out(static_cast<size_t>(p.m) * p.out_stride * es, 0xA5);
  int32_t lo = 0, hi = 0;
  type_bounds(p.type, &lo, &hi);
  int64_t qmin = lo, qmax = hi;
  if (p.type != OutputType::kFloat) {
    const auto bound = [&](double v) -> int64_t {
      const float q = p.mode == RequantMode::kFloat
                          ? std::nearbyint(static_cast<float>(v) * static_cast<float>(1.0 / p.sy))
                          : std::round(static_cast<float>(v) / static_cast<float>(p.sy));
      return static_cast<int64_t>(q) + p.zy;
    };
    if (std::isfinite(p.act_min)) qmin = std::max<int64_t>(qmin, bound(p.act_min));
    if (std::isfinite(p.act_max)) qmax = std::min<int64_t>(qmax, bound(p.act_max));
    if (qmin > qmax) qmin = qmax;
  }
  for (int64_t c = 0; c < p.n; ++c) {
    const int32_t zb = p.wzp[p.wzp.size() == 1 ? 0 : static_cast<size_t>(c)];
    const float sb = p.wscale[p.wscale.size() == 1 ? 0 : static_cast<size_t>(c)];
    const double acc_scale = static_cast<double>(static_cast<float>(p.sa) * sb);
    for (int64_t i = 0; i < p.m; ++i) {
      int64_t total = p.bias.empty() ? 0 : p.bias[static_cast<size_t>(c)];
      for (int64_t kk = 0; kk < p.k; ++kk) {
        total += static_cast<int64_t>(value_a(p, i, kk) - p.za) * (value_w(p, c, kk) - zb);
      }
      EXPECT_TRUE(total >= kInt32Min && total <= kInt32Max) << "test problem overflows int32";
      const int32_t t = static_cast<int32_t>(total);
      uint8_t* dst = out.data() + (static_cast<size_t>(i) * p.out_stride + static_cast<size_t>(c)) * es;
      if (p.type == OutputType::kFloat) {
        float y = static_cast<float>(t) * static_cast<float>(acc_scale);
        const float fmin = static_cast<float>(p.act_min), fmax = static_cast<float>(p.act_max);
        y = y > fmin ? y : fmin;
        y = y < fmax ? y : fmax;
        std::memcpy(dst, &y, 4);
        continue;
      }
      int64_t q;
      if (p.mode == RequantMode::kFloat) {
        const float mult = static_cast<float>(acc_scale / p.sy);
        float v = std::nearbyint(static_cast<float>(t) * mult) + static_cast<float>(p.zy);
        v = std::min(std::max(v, static_cast<float>(qmin)), static_cast<float>(qmax));
        q = static_cast<int64_t>(v);
      } else {
        int32_t m0, shift;
        quantize_multiplier(acc_scale / p.sy, &m0, &shift);
        const int64_t v = multiply_by_quantized_multiplier(t, m0, shift);
        q = std::clamp<int64_t>(v + p.zy, qmin, qmax);
      }
      if (p.type == OutputType::kInt16) {
        const int16_t v = static_cast<int16_t>(q);
        std::memcpy(dst, &v, 2);
      } else {
        *dst = static_cast<uint8_t>(q);
      }
    }
  }
  return out;
}

struct Prepared {
  PackedWeights packed;
  OutputStageStorage stage;
};

void prepare(const GemmProblem& p, Prepared* prep) {
  prep->packed = pack_weights(p.w.data(), p.w_unsigned, p.n, p.k, p.wzp.data(), p.wzp.size());
  make_output_stage(p.type, p.mode, p.sa, p.wscale.data(), p.wscale.size(), p.n, p.sy, p.zy, p.act_min, p.act_max,
                    &prep->stage);
}

// Runs qgemm on rows [m0, m1) and channels [n0, n1) into out.
void run(const GemmProblem& p, const Prepared& prep, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
         std::vector<uint8_t>* out) {
  // A's last row ends at an inaccessible page: the driver must not read past K (a kernel that
  // reads whole 4-byte groups gets a padded copy when K is not a multiple of 4).
  Guarded<uint8_t> a(p.m > 0 ? static_cast<size_t>(p.m - 1) * p.a_stride + static_cast<size_t>(p.k) : 0);
  a.assign(p.a);
  GemmActivations act;
  act.data = a.data();
  act.is_signed = p.a_signed;
  act.zero_point = p.za;
  act.stride = p.a_stride;
  qgemm(act, m0, m1, prep.packed.view(), n0, n1, p.bias.empty() ? nullptr : p.bias.data(), prep.stage.stage,
        out->data(), p.out_stride);
}

GemmProblem random_problem(std::mt19937& rng, int64_t m, int64_t n, int64_t k) {
  GemmProblem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a_signed = uniform_int<int>(rng, 0, 1) == 1;
  p.za = p.a_signed ? pick(rng, {-128, 127, 0, uniform_int<int>(rng, -128, 127)})
                    : pick(rng, {0, 255, 128, uniform_int<int>(rng, 0, 255)});
  p.a_stride = static_cast<size_t>(k) + uniform_int<size_t>(rng, 0, 3);
  p.a.resize(static_cast<size_t>(m) * p.a_stride + 1);
  for (auto& x : p.a) x = uniform_int<int>(rng, 0, 255);
  p.w_unsigned = uniform_int<int>(rng, 0, 1) == 1;
  p.w.resize(static_cast<size_t>(n * k));
  for (auto& x : p.w) x = uniform_int<int>(rng, 0, 255);
  const bool per_channel = uniform_int<int>(rng, 0, 3) != 0;
  const size_t channels = per_channel ? static_cast<size_t>(n) : 1;
  p.wzp.resize(channels);
  for (auto& z : p.wzp) {
    // uint8 weights: asymmetric per-channel zero points (row sums); int8 weights: symmetric.
    z = p.w_unsigned ? pick(rng, {0, 255, 128, uniform_int<int>(rng, 0, 255)}) : 0;
  }
  if (!p.w_unsigned && uniform_int<int>(rng, 0, 3) == 0) {
    for (auto& z : p.wzp) z = pick(rng, {-128, 127, uniform_int<int>(rng, -128, 127)});
  }
  p.wscale.resize(uniform_int<int>(rng, 0, 3) == 0 ? 1 : static_cast<size_t>(n));
  for (auto& s : p.wscale) s = log_uniform(rng, 0.01, 0.04);
  if (uniform_int<int>(rng, 0, 3) != 0) {
    p.bias.resize(static_cast<size_t>(n));
    const int32_t range = uniform_int<int>(rng, 0, 3) == 0 ? 1 << 20 : 1 << 12;
    for (auto& b : p.bias) b = uniform_int<int32_t>(rng, -range, range);
  }
  p.sa = log_uniform(rng, 1e-3, 1e-1);
  p.type = static_cast<OutputType>(uniform_int<int>(rng, 0, 3));
  p.mode = uniform_int<int>(rng, 0, 1) == 0 ? RequantMode::kFloat : RequantMode::kFixedPoint;
  // An output scale that puts the typical total some tens of levels from the zero point, from
  // about one level (ties, rounding) to far past the type's range (saturation).
  double sum_sq = 1.0;
  int samples = 0;
  for (int64_t i = 0; i < std::min<int64_t>(m, 4); ++i) {
    for (int64_t c = 0; c < std::min<int64_t>(n, 8); ++c, ++samples) {
      const int32_t zb = p.wzp[p.wzp.size() == 1 ? 0 : static_cast<size_t>(c)];
      double t = p.bias.empty() ? 0.0 : p.bias[static_cast<size_t>(c)];
      for (int64_t kk = 0; kk < k; ++kk) {
        t += double(value_a(p, i, kk) - p.za) * (value_w(p, c, kk) - zb);
      }
      sum_sq += t * t;
    }
  }
  const double rms = std::sqrt(sum_sq / std::max(samples, 1));
  p.sy = p.sa * 0.02 * rms / 40.0 * log_uniform(rng, 1.0 / 40, 8.0);
  if (p.type != OutputType::kFloat) {
    int32_t lo, hi;
    type_bounds(p.type, &lo, &hi);
    p.zy = uniform_int<int>(rng, 0, 2) == 0 ? pick(rng, {lo, hi}) : uniform_int<int32_t>(rng, lo, hi);
  }
  switch (uniform_int<int>(rng, 0, 3)) {
    case 0:
      p.act_min = 0.0;
      p.act_max = kInf;
      break;  // ReLU
    case 1:
      p.act_min = 0.0;
      p.act_max = 6.0;
      break;  // ReLU6
    case 2:
      p.act_min = -1.0;
      p.act_max = 1.0;
      break;  // a clamp
    default: break;
  }
  p.out_stride = static_cast<size_t>(n) + uniform_int<size_t>(rng, 0, 3);
  return p;
}

std::string describe(const GemmProblem& p) {
  std::ostringstream s;
  s << "M " << p.m << ", N " << p.n << ", K " << p.k << ", A " << (p.a_signed ? "int8" : "uint8") << " za " << p.za
    << ", W " << (p.w_unsigned ? "uint8" : "int8") << " (" << p.wzp.size() << " zero points, " << p.wscale.size()
    << " scales), out " << type_name(p.type) << " zy " << p.zy << ", "
    << (p.mode == RequantMode::kFloat ? "float" : "fixed point") << " requantization, activation [" << p.act_min << ", "
    << p.act_max << "], " << (p.bias.empty() ? "no bias" : "bias");
  return s.str();
}

::testing::AssertionResult same_bytes(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, size_t elem) {
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      return ::testing::AssertionFailure() << "first difference at byte " << i << " (element " << i / elem << "): got "
                                           << int{got[i]} << ", want " << int{want[i]};
    }
  }
  return ::testing::AssertionSuccess();
}

class QgemmTest : public IsaTest {};

// Full problem against the oracle, then a few splits into row and channel ranges, which must
// give the same bytes (and leave everything outside their range alone).
void check_problem(const GemmProblem& p, std::mt19937& rng, bool check_splits) {
  SCOPED_TRACE(describe(p));
  Prepared prep;
  prepare(p, &prep);
  const std::vector<uint8_t> want = oracle(p);
  std::vector<uint8_t> got(want.size(), 0xA5);
  run(p, prep, 0, p.m, 0, p.n, &got);
  ASSERT_TRUE(same_bytes(got, want, element_size(p.type)));
  if (!check_splits || p.m == 0) return;
  for (int split = 0; split < 3; ++split) {
    std::vector<uint8_t> parts(want.size(), 0xA5);
    const int64_t mcut = uniform_int<int64_t>(rng, 0, p.m);
    const int64_t nblocks = (p.n + 15) / 16;
    const int64_t ncut = std::min<int64_t>(p.n, 16 * uniform_int<int64_t>(rng, 0, nblocks));
    for (auto [m0, m1] : {std::pair<int64_t, int64_t>{0, mcut}, {mcut, p.m}}) {
      for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, ncut}, {ncut, p.n}}) {
        run(p, prep, m0, m1, n0, n1, &parts);
      }
    }
    ASSERT_TRUE(same_bytes(parts, want, element_size(p.type))) << "split at row " << mcut << ", channel " << ncut;
  }
}

TEST_P(QgemmTest, MatchesOracleOnRandomShapes) {
  IsaOverride force(GetParam());
  std::mt19937 rng(2024 + static_cast<int>(GetParam()));
  const int64_t ms[] = {1, 2, 3, 5, 8, 9, 13, 16, 17, 23, 40};
  const int64_t ns[] = {1, 3, 15, 16, 17, 31, 48, 50, 64, 97, 144};
  const int64_t ks[] = {0, 1, 2, 3, 4, 5, 7, 8, 15, 17, 33, 64, 65, 100, 257};
  for (int iter = 0; iter < 400; ++iter) {
    const GemmProblem p = random_problem(rng, pick(rng, ms), pick(rng, ns), pick(rng, ks));
    check_problem(p, rng, iter % 4 == 0);
    if (HasFatalFailure()) return;
  }
}

TEST_P(QgemmTest, LargeShapes) {
  IsaOverride force(GetParam());
  std::mt19937 rng(77);
  // N large (many column chunks), K large (long reductions, ragged tail), M past several tiles.
  const int64_t shapes[][3] = {{2, 3072, 40}, {1, 700, 768}, {3, 20, 4100}, {37, 100, 300}};
  for (const auto& s : shapes) {
    for (int i = 0; i < 2; ++i) {
      GemmProblem p = random_problem(rng, s[0], s[1], s[2]);
      if (i == 1 && !p.w_unsigned) {  // make sure asymmetric weights (row sums) are covered
        for (auto& z : p.wzp) z = uniform_int<int>(rng, -128, 127);
      }
      check_problem(p, rng, true);
      if (HasFatalFailure()) return;
    }
  }
}

TEST_P(QgemmTest, EdgeCases) {
  IsaOverride force(GetParam());
  std::mt19937 rng(5);
  // Empty M and K = 0 (bias only).
  for (int64_t m : {0, 1, 4}) {
    for (int i = 0; i < 8; ++i) check_problem(random_problem(rng, m, 33, 0), rng, true);
  }
  // Extreme operands: every product at its largest magnitude, zero points at the other end,
  // so |Σ (a - za)(b - zb)| = K · 255 · 255 (K = 4100 keeps it inside int32 with the bias).
  for (bool a_signed : {false, true}) {
    for (bool w_unsigned : {false, true}) {
      GemmProblem p = random_problem(rng, 3, 20, 4100);
      p.a_signed = a_signed;
      p.w_unsigned = w_unsigned;
      std::fill(p.a.begin(), p.a.end(), a_signed ? 0x7F : 0xFF);
      p.za = a_signed ? -128 : 0;
      std::fill(p.w.begin(), p.w.end(), w_unsigned ? 0x00 : 0x80);
      std::fill(p.wzp.begin(), p.wzp.end(), w_unsigned ? 255 : 127);
      p.bias.clear();
      p.type = OutputType::kInt16;
      p.sy = p.sa * 1e-3;  // saturates
      check_problem(p, rng, false);
      p.type = OutputType::kFloat;
      check_problem(p, rng, false);
    }
  }
  // n_begin must start a block.
  GemmProblem p = random_problem(rng, 2, 40, 8);
  Prepared prep;
  prepare(p, &prep);
  std::vector<uint8_t> out(oracle(p).size());
  EXPECT_THROW(run(p, prep, 0, 2, 8, 40, &out), std::invalid_argument);
}

TEST_P(QgemmTest, KernelName) {
  IsaOverride force(GetParam());
  const std::string name = qgemm_kernel_name();
  // The prefix says how the kernel reads A: uint8 (x86, scalar) or int8 (ARM).
  const char* prefix = ukernels::gemm_microkernel_for(GetParam()).a_signed ? "qs8-gemm-" : "qu8-gemm-";
  EXPECT_EQ(name.rfind(prefix, 0), 0u) << name;
  if (GetParam() == Isa::kAvx512Vnni) {
    EXPECT_NE(name.find("avx512vnni"), std::string::npos);
  }
  if (GetParam() == Isa::kScalar) {
    EXPECT_NE(name.find("scalar"), std::string::npos);
  }
}

// Rows by offset (GemmActivations::row_offsets) only where the kernel reads them, for tapped
// calls, and with weight zero points only with the taps' run sums: otherwise a logic_error, never
// rows read at the wrong place.
TEST_P(QgemmTest, RowsByOffsetOnlyWhereTheyCanBeRead) {
  IsaOverride force(GetParam());
  const int64_t n = 32, k = 64, m = 8;
  const std::vector<int8_t> weight(static_cast<size_t>(n * k), 3);
  const int32_t zero = 0, five = 5;
  const PackedWeights symmetric = pack_weights(weight.data(), false, n, k, &zero, 1);
  const PackedWeights with_zero_point = pack_weights(weight.data(), false, n, k, &five, 1);
  OutputStageStorage st;
  const float scale = 0.01f;
  make_output_stage(OutputType::kUint8, RequantMode::kFloat, 0.1, &scale, 1, n, 0.5, 0, -kInf, kInf, &st);
  std::vector<uint8_t> a(4096, 7), out(static_cast<size_t>(m * n), 0);
  std::vector<int64_t> row_offsets(m);
  for (int64_t i = 0; i < m; ++i) row_offsets[static_cast<size_t>(i)] = (m - 1 - i) * k;  // any order
  const int64_t tap_offsets[1] = {0};
  GemmActivations rows{a.data(), false, 0, static_cast<size_t>(k)};
  rows.row_offsets = row_offsets.data();
  const auto call = [&](const GemmActivations& x, const PackedWeights& w) {
    qgemm(x, 0, m, w.view(), 0, n, nullptr, st.stage, out.data(), static_cast<size_t>(n));
  };
  EXPECT_THROW(call(rows, symmetric), std::logic_error);  // not tapped
  GemmActivations tapped = rows;
  tapped.tap_offsets = tap_offsets;
  tapped.taps = 1;
  const int32_t layout = symmetric.view().prepacked_b != nullptr ? symmetric.view().prepacked_layout : 0;
  if (qgemm_taps_supported(GetParam(), 2, m, layout, k) && qgemm_rows_by_offset(GetParam(), 2, m, layout)) {
    call(tapped, symmetric);
    for (uint8_t v : out) ASSERT_EQ(v, 3);  // 64 · 7 · 3 at scale 0.1 · 0.01, over 0.5: 2.688
    EXPECT_THROW(call(tapped, with_zero_point), std::logic_error);  // no run sums
  } else {
    EXPECT_THROW(call(tapped, symmetric), std::logic_error);
  }
}

#if defined(__x86_64__)
TEST(QgemmTileChoice, AvxVnni512PicksTheWidthWhoseLastTileIsFullest) {
  // The choice reads the registry's data only: it runs on any CPU, whatever the kernels' ISA.
  // 64-channel tiles where 64 divides the width better than 48 (most CNN layers), 48-channel
  // ones otherwise (BERT's 768 / 3072, and ties). Results never depend on it (the tests above).
  for (size_t blocks : {4u, 7u, 8u, 16u, 32u, 10u}) {
    EXPECT_STREQ(ukernels::gemm_microkernel_for(Isa::kAvx512Vnni, blocks, 100).name, "qu8-gemm-6x64c4-avx512vnni")
        << blocks << " blocks";
  }
  for (size_t blocks : {1u, 2u, 3u, 5u, 6u, 48u, 192u}) {
    EXPECT_STREQ(ukernels::gemm_microkernel_for(Isa::kAvx512Vnni, blocks, 100).name, "qu8-gemm-8x48c4-avx512vnni")
        << blocks << " blocks";
  }
}

TEST(QgemmTileChoice, Avx2SplitsPairsFromMinRows) {
  // Few rows: the kernel that reads the packed bytes (splitting B per call would cost a pass over
  // the weights); from min_rows on, vpmaddubsw on B split into pairs that cannot saturate.
  const GemmMicrokernel& split = registered(ukernels::gemm_kernels(), "qu8-gemm-5x16c4split-avx2").kernel;
  const std::string name = split.name;
  const size_t min_rows = split.min_rows;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    for (size_t rows = 1; rows < min_rows; ++rows) {
      EXPECT_STREQ(ukernels::gemm_microkernel_for(isa, 4, rows).name, "qu8-gemm-3x16c4-avx2");
    }
    for (size_t rows : {min_rows, min_rows + 1, size_t{512}}) {
      EXPECT_EQ(ukernels::gemm_microkernel_for(isa, 4, rows).name, name) << rows << " rows";
    }
  }
}

#endif

TEST_P(QgemmTest, AdversarialWeightsMatchOracle) {
  // The patterns where a vpmaddubsw kernel saturates, through the whole driver (both AVX2
  // kernels, every tile edge): all ±127 / -128 weights, same-sign k pairs past 128, alternating
  // extremes, groups that pair only across two groups (or not at all); activations at 0 / 255
  // with zero points at the other end; K not a multiple of 4 or of a vector; M = 1 and N not a
  // multiple of the tile; random shapes and zero points.
  IsaOverride force(GetParam());
  std::mt19937 rng(31337);
  const int64_t shapes[][3] = {{1, 16, 64},   {1, 17, 3},   {2, 33, 5},     {3, 48, 31}, {4, 16, 33},
                               {5, 50, 130},  {8, 97, 257}, {13, 20, 1023}, {17, 3, 4},  {9, 40, 66},
                               {33, 70, 130}, {16, 33, 7},  {23, 50, 257}};
  for (int pattern = 0; pattern < 11; ++pattern) {
    for (const auto& s : shapes) {
      GemmProblem p = random_problem(rng, s[0], s[1], s[2]);
      p.a_signed = false;
      p.w_unsigned = false;
      for (auto& z : p.wzp) z = 0;
      const size_t k = static_cast<size_t>(p.k);
      for (size_t i = 0; i < p.w.size(); ++i) {
        const size_t kk = i % k;
        int v = 0;
        switch (pattern) {
          case 0: v = 127; break;
          case 1: v = -128; break;
          case 2: v = -127; break;
          case 3:
            v = kk % 2 == 0                           ? uniform_int<int>(rng, 64, 127) * (i / k % 2 ? 1 : -1)
                : static_cast<int8_t>(p.w[i - 1]) > 0 ? 127
                                                      : -128;
            break;
          case 4: v = kk % 2 == 0 ? 127 : -128; break;
          case 5: v = kk % 4 < 2 ? 127 : -127; break;  // every k pair same-sign and unsafe
          case 6:                                      // small weights with a few unsafe pairs: a sparse remainder
            v = kk % 2 == 1 && uniform_int<int>(rng, 0, 30) == 0 ? (static_cast<int8_t>(p.w[i - 1]) >= 0 ? 127 : -128)
                                                                 : uniform_int<int>(rng, -100, 100);
            break;
          case 7: {  // k groups of three 127s, then of three -128s, a 0 where the channel says: no
                     // pairing of a group is safe, one across the two groups is, per channel;
                     // some channels put 127 for both 0s (five 127s: no safe pairing at all)
            const size_t channel = i / k, group = kk / 4;
            const bool other_here = kk % 4 == (channel * 3 + group) % 4;
            const int other = (channel * 7 + group / 2) % 8 == 0 ? 127 : 0;
            v = other_here ? other : group % 2 == 0 ? 127 : -128;
            break;
          }
          case 8:  // two groups of 127s, then two of -128s (a 0 or -127 here and there): neither
                   // a group nor two adjacent groups can be paired safely
            v = uniform_int<int>(rng, 0, 12) == 0 ? pick(rng, {0, -127}) : kk / 4 % 4 < 2 ? 127 : -128;
            break;
          case 9:  // groups (127, 2, 2, 2) and (65, 65, 65, 2): every pairing of the two groups'
                   // 8 k has an unsafe pair (127 with a 2, or two 65s), so nothing may be matched
            v = kk / 4 % 2 == 0 ? (kk % 4 == i / k % 4 ? 127 : 2) : (kk % 4 == 3 ? 2 : 65);
            break;
          case 10: {  // pattern 7's two groups between two of small weights, from group 1 on: only
                      // the groups (4j + 1, 4j + 2) can be matched, a pair starting at an odd group
            const size_t channel = i / k, group = kk / 4;
            if (group % 4 == 0 || group % 4 == 3) {
              v = uniform_int<int>(rng, -40, 40);
            } else {
              v = kk % 4 == (channel * 3 + group) % 4 ? 0 : group % 4 == 1 ? 127 : -128;
            }
            break;
          }
        }
        p.w[i] = static_cast<uint8_t>(static_cast<int8_t>(v));
      }
      for (size_t i = 0; i < p.a.size(); ++i) {
        p.a[i] = pattern == 4 ? (i % 2 == 0 ? 255 : 0) : uniform_int<int>(rng, 0, 3) ? 255 : 0;
      }
      p.za = pick(rng, {0, 255, uniform_int<int>(rng, 0, 255)});
      p.type = OutputType::kInt16;
      p.sy = p.sa * 0.5;
      check_problem(p, rng, true);
      if (HasFatalFailure()) return;
      p.type = OutputType::kFloat;
      check_problem(p, rng, false);
      if (HasFatalFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, QgemmTest, ::testing::ValuesIn(architecture_isas()), isa_param_name);

}  // namespace
