// The automatic ISA choice on whatever CPU runs the tests. scripts/test_x86_tiers.sh runs this
// suite under qemu-user emulating lesser CPUs (an AVX2-only Haswell, a pre-AVX Nehalem) and names
// the level the choice must land on in CIRCLE_QUANT_EXPECT_ISA; scripts/test_arm.sh does the same
// for AArch64 cores with and without the dot product.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/isa.h"
#include "core/quantize.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;

// What the choice must be: the level CIRCLE_QUANT_ISA forces, else the best one the CPU reports.
Isa wanted_isa() {
  if (const char* forced = std::getenv("CIRCLE_QUANT_ISA")) return parse_isa(forced);
  return architecture_isas().back();  // supported levels of this architecture, lowest first
}

TEST(IsaSelection, AutomaticChoiceIsTheBestLevelTheCpuReports) {
  EXPECT_EQ(active_isa(), wanted_isa()) << "chose " << isa_name(active_isa());
  if (const char* expected = std::getenv("CIRCLE_QUANT_EXPECT_ISA")) {
    EXPECT_STREQ(isa_name(active_isa()), expected) << "the emulated CPU should have led to '" << expected << "'";
  }
}

TEST(IsaSelection, LevelsAboveTheCpuAreRefusedByName) {
  for (Isa isa : kAllIsas) {
    if (isa_supported(isa)) continue;
    try {
      set_isa_override(isa);
      clear_isa_override();
      ADD_FAILURE() << "forcing unsupported '" << isa_name(isa) << "' was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(isa_name(isa)), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(active_isa(), wanted_isa()) << "a refused override must leave the choice alone";
}

// The automatic choice runs elementwise kernels bit-identical to the scalar reference (the GEMM
// and conv suites force every supported level, the automatic one included).
TEST(IsaSelection, AutomaticKernelsMatchScalar) {
  std::mt19937 rng(11);
  std::vector<float> x(1031);
  for (auto& v : x) v = uniform(rng, -300, 300);
  const QuantizeParams p = make_quantize_params(0.7, 5, -128, 127);
  std::vector<int8_t> automatic(x.size()), reference(x.size());
  ASSERT_TRUE(quantize<int8_t>(x.data(), automatic.data(), x.size(), p));
  {
    IsaOverride forced(Isa::kScalar);
    ASSERT_TRUE(quantize<int8_t>(x.data(), reference.data(), x.size(), p));
  }
  EXPECT_TRUE(same_bits(automatic.data(), reference.data(), x.size()));
}

}  // namespace
