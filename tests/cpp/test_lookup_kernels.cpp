// The byte-table kernels (x8-lut-<isa>) of every ISA against the scalar reference and against a
// naive loop: every byte value, every table entry, lengths around the vector widths, misaligned
// pointers, a tail that ends at an inaccessible page, and in-place use.
#include <gtest/gtest.h>

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

class LookupKernelsTest : public IsaTest {};
INSTANTIATE_FOR_EACH_ISA(LookupKernelsTest);

TEST_P(LookupKernelsTest, MatchesScalarOnEveryByteAndLength) {
  const uk::LookupKernel lut = uk::kernel_for(uk::lookup_kernels(), GetParam()).kernel;
  std::mt19937 rng(23);
  for (int round = 0; round < 4; ++round) {
    // A random table, then ones whose neighbouring entries differ in every bit (a wrong word or
    // half picked by the SIMD paths shows), then the identity.
    std::vector<uint8_t> table = random_table(rng);
    if (round == 1) for (int i = 0; i < 256; ++i) table[i] = static_cast<uint8_t>(i & 1 ? 0xA5 ^ i : 0x5A ^ i);
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
  const uk::LookupKernel lut = uk::kernel_for(uk::lookup_kernels(), GetParam()).kernel;
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
  for (Isa isa : elementwise_isas()) {
    if (!isa_supported(isa)) continue;
    IsaOverride forced(isa);
    lookup_bytes(x.data(), y.data(), x.size(), table.data());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], table[x[i]]) << isa_name(isa) << " at " << i;
  }
}

}  // namespace
