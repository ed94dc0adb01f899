// The kernel registry (csrc/core/ukernels/registry.h) as a whole: every row names its file and
// its ISA the way the README says, every kernel file has a row, dispatch can reach every
// dispatched row, and every row this CPU runs is a parameter of a suite that compares it with
// the scalar reference bit for bit. A kernel added without a row, or a row no test or dispatch
// reaches, fails here.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/isa.h"
#include "core/ukernels/registry.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;
namespace uk = circle_quant::ukernels;
using uk::KernelFamily;

// The file-name prefix of each family: <input>-<op>.
std::string family_prefix(KernelFamily f, bool a_signed) {
  switch (f) {
    case KernelFamily::kQuantize: return "f32-quantize-";
    case KernelFamily::kDequantize: return "q-dequantize-";
    case KernelFamily::kFakeQuantize: return "f32-fake-quantize-";
    case KernelFamily::kMinMax: return "f32-minmax-";
    case KernelFamily::kHistogram: return "f32-histogram-";
    case KernelFamily::kGemm: return a_signed ? "qs8-gemm-" : "qu8-gemm-";
    case KernelFamily::kRequantize: return "qs32-requantize-";
    case KernelFamily::kResidualAdd: return "q8-vadd-";
    case KernelFamily::kDwConv: return "q8-dwconv-";
    case KernelFamily::kLookup: return "x8-lut-";
    case KernelFamily::kSoftmax: return "q8-softmax-";
    case KernelFamily::kWinograd: return "q8-winograd-";
    case KernelFamily::kRowSum: return "q8-rowsum-";
  }
  return "?";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The levels of this build's architecture, supported here or not.
std::vector<Isa> build_isas() {
  std::vector<Isa> isas;
  for (Isa isa : kAllIsas) {
    const bool arm = isa == Isa::kNeon || isa == Isa::kNeonDot;
#if defined(__x86_64__)
    if (!arm) isas.push_back(isa);
#elif defined(__aarch64__)
    if (isa == Isa::kScalar || arm) isas.push_back(isa);
#else
    if (isa == Isa::kScalar) isas.push_back(isa);
#endif
  }
  return isas;
}

bool gemm_a_signed(const std::string& name) {
  for (const auto& row : uk::gemm_kernels()) {
    if (name == row.name) return row.kernel.a_signed;
  }
  return false;
}

TEST(KernelRegistry, NamesFollowInputOpIsa) {
  for (const uk::KernelInfo& k : uk::registered_kernels()) {
    const std::string name = k.name;
    EXPECT_EQ(name.rfind(family_prefix(k.family, gemm_a_signed(name)), 0), 0u)
        << name << " in family " << uk::family_name(k.family);
    EXPECT_TRUE(ends_with(name, std::string("-") + isa_name(k.isa))) << name << " needs " << isa_name(k.isa);
  }
  for (const auto& row : uk::gemm_kernels()) EXPECT_STREQ(row.name, row.kernel.name);
  for (const auto& row : uk::dwconv_kernels()) EXPECT_STREQ(row.name, row.kernel.name);
}

// csrc/core/ukernels/<name>.cpp for every row, and a row for every kernel file of this
// architecture (the build compiles every such file: CMakeLists.txt globs them by ISA suffix).
TEST(KernelRegistry, EveryKernelFileHasARowAndEveryRowAFile) {
  std::set<std::string> rows;
  for (const uk::KernelInfo& k : uk::registered_kernels()) {
    EXPECT_TRUE(rows.insert(k.name).second) << "two rows named " << k.name;
  }
  std::set<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(CIRCLE_QUANT_UKERNELS_DIR)) {
    const std::string file = entry.path().filename().string();
    if (entry.path().extension() != ".cpp" || file == "registry.cpp") continue;
    const std::string stem = entry.path().stem().string();
    for (Isa isa : build_isas()) {
      if (ends_with(stem, std::string("-") + isa_name(isa))) files.insert(stem);
    }
  }
  for (const std::string& f : files) EXPECT_TRUE(rows.count(f)) << f << ".cpp has no registry row";
  for (const std::string& r : rows) EXPECT_TRUE(files.count(r)) << r << " has no file " << r << ".cpp";
}

template <typename Kernel>
void expect_scalar_first(const uk::KernelList<Kernel>& list, const char* family) {
  ASSERT_FALSE(list.empty()) << family;
  EXPECT_EQ(list.front().isa, Isa::kScalar) << family << ": the scalar reference comes first";
}

TEST(KernelRegistry, EveryFamilyStartsWithTheScalarReference) {
  expect_scalar_first(uk::quantize_kernels<uint8_t>(), "quantize");
  expect_scalar_first(uk::dequantize_kernels<uint8_t>(), "dequantize");
  expect_scalar_first(uk::fake_quantize_kernels(), "fake_quantize");
  expect_scalar_first(uk::minmax_kernels(), "minmax");
  expect_scalar_first(uk::histogram_kernels(), "histogram");
  expect_scalar_first(uk::gemm_kernels(), "gemm");
  expect_scalar_first(uk::requantize_kernels(), "requantize");
  expect_scalar_first(uk::residual_add_kernels(), "residual_add");
  expect_scalar_first(uk::dwconv_kernels(), "dwconv");
  expect_scalar_first(uk::lookup_kernels(), "lookup");
  expect_scalar_first(uk::softmax_kernels(), "softmax");
  expect_scalar_first(uk::winograd_kernels(), "winograd");
  expect_scalar_first(uk::rowsum_kernels(), "rowsum");
}

template <typename Kernel>
void expect_dispatch_reaches_every_row(const uk::KernelList<Kernel>& list) {
  for (const auto& row : list) {
    if (!row.dispatched) continue;
    bool reached = false;
    for (Isa isa : build_isas()) reached |= &uk::kernel_for(list, isa) == &row;
    EXPECT_TRUE(reached) << row.name << " is dispatched but no ISA level picks it";
  }
}

// Dispatch reads the rows only: every level of the build is resolved, supported here or not.
TEST(KernelRegistry, DispatchReachesEveryDispatchedRow) {
  expect_dispatch_reaches_every_row(uk::quantize_kernels<int8_t>());
  expect_dispatch_reaches_every_row(uk::dequantize_kernels<int8_t>());
  expect_dispatch_reaches_every_row(uk::fake_quantize_kernels());
  expect_dispatch_reaches_every_row(uk::minmax_kernels());
  expect_dispatch_reaches_every_row(uk::histogram_kernels());
  expect_dispatch_reaches_every_row(uk::dwconv_kernels());
  expect_dispatch_reaches_every_row(uk::lookup_kernels());
  expect_dispatch_reaches_every_row(uk::softmax_kernels());
  expect_dispatch_reaches_every_row(uk::winograd_kernels());
  expect_dispatch_reaches_every_row(uk::rowsum_kernels());
  // GEMM: some level, row count and channel-block count picks each dispatched row.
  std::set<const uk::GemmMicrokernel*> picked;
  for (Isa isa : build_isas()) {
    for (size_t blocks = 0; blocks <= 16; ++blocks) {
      for (size_t rows : {1, 2, 4, 7, 8, 16, 64, 512}) picked.insert(&uk::gemm_microkernel_for(isa, blocks, rows));
    }
  }
  std::set<uk::RequantizeFn> stages;
  std::set<uk::ResidualAddFn> adds;
  for (const auto& row : uk::gemm_kernels()) {
    if (!row.dispatched) continue;
    EXPECT_TRUE(picked.count(&row.kernel)) << row.name << " is dispatched but never picked";
    stages.insert(row.kernel.requantize);
    adds.insert(row.kernel.add_residual);
  }
  // The output stages and residual adds are reached through the GEMM kernels (and depthwise
  // conv, which takes its level's default GEMM kernel's).
  for (const auto& row : uk::requantize_kernels()) {
    EXPECT_TRUE(stages.count(row.kernel)) << row.name << " is no dispatched GEMM kernel's output stage";
  }
  for (const auto& row : uk::residual_add_kernels()) {
    EXPECT_TRUE(adds.count(row.kernel)) << row.name << " is no dispatched GEMM kernel's residual add";
  }
  // Every GEMM kernel of one level shares the default's A domain, output stage and add, so the
  // per-call choice never changes results.
  for (Isa isa : build_isas()) {
    const uk::GemmMicrokernel& d = uk::gemm_microkernel_for(isa);
    for (size_t blocks = 0; blocks <= 16; ++blocks) {
      for (size_t rows : {1, 8, 512}) {
        const uk::GemmMicrokernel& k = uk::gemm_microkernel_for(isa, blocks, rows);
        EXPECT_EQ(k.a_signed, d.a_signed) << k.name;
        EXPECT_EQ(k.requantize, d.requantize) << k.name;
        EXPECT_EQ(k.add_residual, d.add_residual) << k.name;
      }
    }
  }
}

// The parameter names of every instantiated test, by suite ("Gemm/MicrokernelTest" → names).
std::set<std::string> params_of(const std::string& suite) {
  std::set<std::string> params;
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit.total_test_suite_count(); ++i) {
    const ::testing::TestSuite& s = *unit.GetTestSuite(i);
    if (suite != s.name()) continue;
    for (int j = 0; j < s.total_test_count(); ++j) {
      const std::string test = s.GetTestInfo(j)->name();
      const size_t slash = test.rfind('/');
      if (slash != std::string::npos) params.insert(test.substr(slash + 1));
    }
  }
  return params;
}

// Per-kernel suites take the row's name; the elementwise suites take an ISA level and call the
// level's own rows.
template <typename Kernel>
void expect_in_suites(const uk::KernelList<Kernel>& list, std::vector<std::string> suites, bool by_isa) {
  std::set<std::string> params;
  for (const std::string& s : suites) {
    const std::set<std::string> p = params_of(s);
    params.insert(p.begin(), p.end());
  }
  for (const auto& row : list) {
    if (!isa_supported(row.isa)) continue;
    const std::string want = by_isa ? isa_name(row.isa) : kernel_as_param(row.name);
    EXPECT_TRUE(params.count(want)) << row.name << " runs on this CPU but no test of "
                                    << ::testing::PrintToString(suites) << " takes it";
  }
}

TEST(KernelRegistry, EveryRowThisCpuRunsIsComparedWithScalarByATest) {
  expect_in_suites(uk::quantize_kernels<uint8_t>(), {"Isa/QuantizeKernels"}, true);
  expect_in_suites(uk::dequantize_kernels<uint8_t>(), {"Isa/QuantizeKernels"}, true);
  expect_in_suites(uk::fake_quantize_kernels(), {"Isa/QuantizeKernels"}, true);
  expect_in_suites(uk::minmax_kernels(), {"Isa/ObserveKernelsTest"}, true);
  expect_in_suites(uk::histogram_kernels(), {"Isa/ObserveKernelsTest"}, true);
  expect_in_suites(uk::gemm_kernels(), {"Gemm/MicrokernelTest", "Kernel/ArmGemmUkernels"}, false);
  expect_in_suites(uk::requantize_kernels(), {"Gemm/RequantizeTest"}, false);
  expect_in_suites(uk::residual_add_kernels(), {"Kernel/ResidualAddKernelTest"}, false);
  expect_in_suites(uk::dwconv_kernels(), {"Kernel/DwConvKernels"}, false);
  expect_in_suites(uk::lookup_kernels(), {"Kernel/LookupKernelsTest"}, false);
  expect_in_suites(uk::softmax_kernels(), {"Kernel/SoftmaxKernelsTest"}, false);
  expect_in_suites(uk::winograd_kernels(), {"Kernel/WinogradKernels"}, false);
  expect_in_suites(uk::rowsum_kernels(), {"Kernel/RowSumKernels"}, false);
}

}  // namespace
