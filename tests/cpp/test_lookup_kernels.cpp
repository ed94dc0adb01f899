// The byte-table kernels (x8-lut-<isa>) and the softmax row kernels (q8-softmax-<isa>) of every
// ISA against the scalar reference and against naive loops: every byte value, lengths around the
// vector widths, misaligned pointers, tails that end at an inaccessible page.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "core/quantize.h"
#include "core/ukernels/registry.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;
namespace uk = circle_quant::ukernels;

std::vector<uint8_t> random_table(std::mt19937& rng) {
  std::vector<uint8_t> table(256);
  for (auto& t : table) t = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
  return table;
}

// Per registered kernel this CPU runs (NEON's lookup has no quantize rows beside it, so the
// elementwise ISA list would miss it).
class LookupKernelsTest : public ::testing::TestWithParam<std::string> {
 protected:
  uk::LookupKernel kernel() const { return registered(uk::lookup_kernels(), GetParam()).kernel; }
};
INSTANTIATE_TEST_SUITE_P(Kernel, LookupKernelsTest, ::testing::ValuesIn(runnable_kernels(uk::lookup_kernels())),
                         kernel_param_name);

TEST_P(LookupKernelsTest, MatchesScalarOnEveryByteAndLength) {
  const uk::LookupKernel lut = kernel();
  std::mt19937 rng(23);
  for (int round = 0; round < 4; ++round) {
    // A random table, then ones whose neighbouring entries differ in every bit (a wrong word or
    // half picked by the SIMD paths shows), then the identity.
    std::vector<uint8_t> table = random_table(rng);
    if (round == 1)
      for (int i = 0; i < 256; ++i) table[i] = static_cast<uint8_t>(i & 1 ? 0xA5 ^ i : 0x5A ^ i);
    if (round == 2) std::iota(table.begin(), table.end(), 0);
    for (size_t n : test_sizes(rng)) {
      for (size_t offset : kOffsets) {
        Buffer<uint8_t> x(n, offset, 0x77), y(n, offset, 0xEE), want(n, 0, 0);
        for (size_t i = 0; i < n; ++i) x[i] = static_cast<uint8_t>(i < 256 ? i : uniform_int<int>(rng, 0, 255));
        for (size_t i = 0; i < n; ++i) want[i] = table[x[i]];  // the naive loop
        lut(x.data(), y.data(), n, table.data());
        SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << offset << " round=" << round);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], want[i]) << "at " << i << ", byte " << int(x[i]);
        ASSERT_TRUE(y.guard_intact());
        std::vector<uint8_t> scalar(n);
        uk::x8_lut_scalar(x.data(), scalar.data(), n, table.data());
        ASSERT_TRUE(std::equal(scalar.begin(), scalar.end(), y.data()));
      }
    }
  }
}

TEST_P(LookupKernelsTest, TailEndsAtAnInaccessiblePageAndInPlace) {
  const uk::LookupKernel lut = kernel();
  std::mt19937 rng(29);
  const std::vector<uint8_t> table = random_table(rng);
  for (size_t n : {1, 5, 31, 33, 63, 65, 127, 200}) {
    Guarded<uint8_t> x(n), y(n);
    for (size_t i = 0; i < n; ++i) x.data()[i] = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
    lut(x.data(), y.data(), n, table.data());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(y.data()[i], table[x.data()[i]]) << "n=" << n << " at " << i;
    lut(x.data(), x.data(), n, table.data());  // in place
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(x.data()[i], y.data()[i]) << "in place, n=" << n << " at " << i;
  }
}

TEST(LookupDispatch, FollowsTheActiveIsa) {
  std::mt19937 rng(31);
  const std::vector<uint8_t> table = random_table(rng);
  std::vector<uint8_t> x(1000), y(1000);
  for (auto& v : x) v = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
  for (Isa isa : architecture_isas()) {
    if (!isa_supported(isa)) continue;
    IsaOverride forced(isa);
    lookup_bytes(x.data(), y.data(), x.size(), table.data());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], table[x[i]]) << isa_name(isa) << " at " << i;
  }
}

class SoftmaxKernelsTest : public ::testing::TestWithParam<std::string> {
 protected:
  uk::SoftmaxKernel kernel() const { return registered(uk::softmax_kernels(), GetParam()).kernel; }
};
INSTANTIATE_TEST_SUITE_P(Kernel, SoftmaxKernelsTest, ::testing::ValuesIn(runnable_kernels(uk::softmax_kernels())),
                         kernel_param_name);

std::vector<float> exp_table(float scale) {
  std::vector<float> table(256);
  for (int d = 0; d < 256; ++d) table[d] = std::exp(-static_cast<float>(d) * scale);
  return table;
}

// The spec written out: maximum, exps by distance, sixteen running sums, pairwise combination.
std::vector<float> naive_softmax(const uint8_t* x, size_t n, uint8_t flip, const std::vector<float>& table) {
  int top = 0;
  for (size_t i = 0; i < n; ++i) top = std::max(top, static_cast<int>(x[i] ^ flip));
  std::vector<float> p(n), sums(16, 0.f);
  for (size_t i = 0; i < n; ++i) sums[i % 16] += p[i] = table[top - (x[i] ^ flip)];
  for (size_t width = 16; width > 1; width /= 2)
    for (size_t i = 0; i < width / 2; ++i) sums[i] = sums[2 * i] + sums[2 * i + 1];
  const float inverse = 1.f / sums[0];
  for (auto& v : p) v *= inverse;
  return p;
}

TEST_P(SoftmaxKernelsTest, MatchesScalarBitForBit) {
  const uk::SoftmaxKernel softmax = kernel();
  std::mt19937 rng(37);
  for (float scale : {0.003f, 0.08f, 0.7f, 9.f}) {  // nearly flat rows to one-hot ones
    const std::vector<float> table = exp_table(scale);
    for (size_t n : test_sizes(rng)) {
      if (n == 0) continue;
      for (uint8_t flip : {uint8_t{0}, uint8_t{0x80}}) {
        for (size_t offset : kOffsets) {
          Buffer<uint8_t> x(n, offset, 0xFF);  // a guard byte read as data would be the maximum
          for (size_t i = 0; i < n; ++i) x[i] = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
          if (n > 3) x[n - 1] = static_cast<uint8_t>(0xFF ^ flip);  // the maximum in the tail
          Buffer<float> p(n, offset, -1.f);
          std::vector<float> want(n);
          softmax(x.data(), n, flip, table.data(), p.data());
          uk::q8_softmax_scalar(x.data(), n, flip, table.data(), want.data());
          SCOPED_TRACE(::testing::Message() << "n=" << n << " flip=" << int(flip) << " scale=" << scale);
          ASSERT_EQ(std::memcmp(p.data(), want.data(), n * sizeof(float)), 0);
          ASSERT_TRUE(p.guard_intact());
          const std::vector<float> naive = naive_softmax(x.data(), n, flip, table);
          ASSERT_EQ(std::memcmp(naive.data(), want.data(), n * sizeof(float)), 0);
        }
      }
    }
  }
}

TEST_P(SoftmaxKernelsTest, RowEndsAtAnInaccessiblePage) {
  const uk::SoftmaxKernel softmax = kernel();
  std::mt19937 rng(41);
  const std::vector<float> table = exp_table(0.05f);
  for (size_t n : {1, 7, 17, 63, 65, 128, 131}) {
    Guarded<uint8_t> x(n);
    Guarded<float> p(n);
    for (size_t i = 0; i < n; ++i) x.data()[i] = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
    softmax(x.data(), n, 0, table.data(), p.data());
    const std::vector<float> naive = naive_softmax(x.data(), n, 0, table);
    ASSERT_EQ(std::memcmp(naive.data(), p.data(), n * sizeof(float)), 0) << "n=" << n;
  }
}

}  // namespace
