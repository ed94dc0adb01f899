// Helpers shared by the torch-free kernel suites: the ISA-parameterised fixture, guarded buffers
// that catch out-of-bounds reads and writes, random inputs and bit-exact comparison.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/isa.h"
#include "core/qgemm.h"
#include "core/ukernels/registry.h"

namespace circle_quant {
// Names the ISA in gtest's messages instead of printing its bytes.
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace circle_quant

namespace circle_quant_test {

using circle_quant::Isa;

// Fixture for kernel tests run once per ISA; ISAs this CPU lacks are skipped.
class IsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!circle_quant::isa_supported(GetParam())) {
      GTEST_SKIP() << circle_quant::isa_name(GetParam()) << " is not supported by this CPU";
    }
  }
};

// --- memory whose end touches an inaccessible page --------------------------------------------

// Whether Guarded buffers protect the page(s) after their data. Always, except where the
// environment says CIRCLE_QUANT_TEST_GUARD_PAGES=0: scripts/test_x86_tiers.sh sets it under qemu,
// whose TCG (7.2) faults on the masked-off lanes of vpmaskmov loads and stores, which real CPUs
// never touch; there the tests still check every value, only over-reads go unnoticed.
inline bool guard_pages_enabled() {
  const char* env = std::getenv("CIRCLE_QUANT_TEST_GUARD_PAGES");
  return env == nullptr || std::string(env) != "0";
}

// n elements of T ending exactly at an inaccessible region of at least guard_bytes: a kernel
// reading or writing one element past the end (or a row after the last, within guard_bytes)
// crashes the test instead of passing silently.
template <typename T>
class Guarded {
 public:
  explicit Guarded(size_t n, size_t guard_bytes = 1) : n_(n) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t data_bytes = (n * sizeof(T) + page - 1) / page * page;
    const size_t guard = (std::max<size_t>(guard_bytes, 1) + page - 1) / page * page;
    map_bytes_ = data_bytes + guard;
    void* p = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<char*>(p);
    if (guard_pages_enabled() && mprotect(base_ + data_bytes, guard, PROT_NONE) != 0) {
      throw std::runtime_error("mprotect failed");
    }
    data_ = reinterpret_cast<T*>(base_ + data_bytes - n * sizeof(T));
  }
  ~Guarded() { munmap(base_, map_bytes_); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  size_t size() const { return n_; }
  // Copies up to size() elements of v to the front.
  void assign(const std::vector<T>& v) { std::copy_n(v.begin(), std::min(v.size(), n_), data_); }
  std::vector<T> to_vector() const { return std::vector<T>(data_, data_ + n_); }

 private:
  char* base_ = nullptr;
  size_t map_bytes_ = 0;
  T* data_ = nullptr;
  size_t n_ = 0;
};

inline std::string isa_param_name(const ::testing::TestParamInfo<Isa>& info) {
  return circle_quant::isa_name(info.param);
}

// The ISA levels of the architecture the tests were built for, lowest first: the other
// architecture's levels could only be skipped.
inline std::vector<Isa> architecture_isas() {
  std::vector<Isa> isas;
  for (Isa isa : circle_quant::kAllIsas) {
    const bool arm = isa == Isa::kNeon || isa == Isa::kNeonDot;
#if defined(__x86_64__)
    const bool here = !arm;
#elif defined(__aarch64__)
    const bool here = isa == Isa::kScalar || arm;
#else
    const bool here = isa == Isa::kScalar;
#endif
    // Levels this CPU cannot run are left out, not skipped: the tests only list what they ran
    // (the VEX avxvnni kernel has an EVEX twin that runs on AVX512-VNNI machines).
    if (here && circle_quant::isa_supported(isa)) isas.push_back(isa);
  }
  return isas;
}

// Range, element size and name of a GEMM output type.
inline void type_bounds(circle_quant::OutputType t, int32_t* lo, int32_t* hi) {
  using circle_quant::OutputType;
  switch (t) {
    case OutputType::kUint8:
      *lo = 0;
      *hi = 255;
      return;
    case OutputType::kInt8:
      *lo = -128;
      *hi = 127;
      return;
    case OutputType::kInt16:
      *lo = -32768;
      *hi = 32767;
      return;
    case OutputType::kFloat:
      *lo = 0;
      *hi = 0;
      return;
  }
}

inline size_t element_size(circle_quant::OutputType t) {
  using circle_quant::OutputType;
  return t == OutputType::kFloat ? 4 : t == OutputType::kInt16 ? 2 : 1;
}

inline const char* type_name(circle_quant::OutputType t) {
  using circle_quant::OutputType;
  switch (t) {
    case OutputType::kUint8: return "uint8";
    case OutputType::kInt8: return "int8";
    case OutputType::kInt16: return "int16";
    case OutputType::kFloat: return "float";
  }
  return "?";
}

// The levels with their own elementwise kernels (quantize, dequantize, fake quantize, observers)
// in the kernel registry and this CPU runs. The others run the code of a level below
// (ukernels/registry.h), so testing them again adds nothing.
inline std::vector<Isa> elementwise_isas() {
  namespace uk = circle_quant::ukernels;
  std::vector<Isa> isas;
  for (Isa isa : architecture_isas()) {
    bool own = false;
    const auto check = [&](const auto& list) {
      for (const auto& row : list) own |= row.isa == isa;
    };
    check(uk::quantize_kernels<uint8_t>());
    check(uk::dequantize_kernels<uint8_t>());
    check(uk::fake_quantize_kernels());
    check(uk::minmax_kernels());
    check(uk::histogram_kernels());
    if (own) isas.push_back(isa);
  }
  return isas;
}

// The names of a registry list's rows this CPU runs (the parameters of the per-kernel suites);
// rows of levels it lacks are left out, not skipped. `keep` filters further.
template <typename Kernel, typename Keep>
std::vector<std::string> runnable_kernels(const circle_quant::ukernels::KernelList<Kernel>& list, Keep keep) {
  std::vector<std::string> names;
  for (const auto& row : list) {
    if (circle_quant::isa_supported(row.isa) && keep(row)) names.push_back(row.name);
  }
  return names;
}
template <typename Kernel>
std::vector<std::string> runnable_kernels(const circle_quant::ukernels::KernelList<Kernel>& list) {
  return runnable_kernels(list, [](const auto&) { return true; });
}

// The row called `name` (a test parameter from runnable_kernels); throws if there is none.
template <typename Kernel>
const circle_quant::ukernels::RegisteredKernel<Kernel>& registered(
    const circle_quant::ukernels::KernelList<Kernel>& list, const std::string& name) {
  for (const auto& row : list) {
    if (name == row.name) return row;
  }
  throw std::invalid_argument("no registered kernel " + name);
}

// The row of `isa` itself (an elementwise_isas() level); throws if the list has none.
template <typename Kernel>
const circle_quant::ukernels::RegisteredKernel<Kernel>& own_row(const circle_quant::ukernels::KernelList<Kernel>& list,
                                                                Isa isa) {
  for (const auto& row : list) {
    if (row.isa == isa) return row;
  }
  throw std::invalid_argument(std::string("no registered kernel for ") + circle_quant::isa_name(isa));
}

// A kernel name as a gtest parameter name: "qu8-gemm-3x16c4-avx2" → "qu8_gemm_3x16c4_avx2".
inline std::string kernel_as_param(const std::string& kernel) {
  std::string s = kernel;
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}
inline std::string kernel_param_name(const ::testing::TestParamInfo<std::string>& info) {
  return kernel_as_param(info.param);
}

// Instantiates an IsaTest suite for the elementwise kernels once per elementwise_isas() level.
#define INSTANTIATE_FOR_EACH_ISA(Fixture)                                                              \
  INSTANTIATE_TEST_SUITE_P(Isa, Fixture, ::testing::ValuesIn(::circle_quant_test::elementwise_isas()), \
                           ::circle_quant_test::isa_param_name)

// Forces an ISA for the dispatching entry points for the lifetime of the object.
struct IsaOverride {
  explicit IsaOverride(Isa isa) { circle_quant::set_isa_override(isa); }
  ~IsaOverride() { circle_quant::clear_isa_override(); }
  IsaOverride(const IsaOverride&) = delete;
  IsaOverride& operator=(const IsaOverride&) = delete;
};

// Lengths around every vector width and unroll factor, plus a few random ones.
inline std::vector<size_t> test_sizes(std::mt19937& rng) {
  std::vector<size_t> sizes = {0, 1, 2, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 4097};
  std::uniform_int_distribution<size_t> extra(1, 300);
  for (int i = 0; i < 6; ++i) sizes.push_back(extra(rng));
  return sizes;
}

// Element offsets of the data pointer: aligned storage and misaligned by one element.
constexpr size_t kOffsets[] = {0, 1};

// n elements preceded by `offset` guard elements (which misaligns data()) and followed by
// kGuard more. For inputs the guard holds a value that would change the result if read (NaN);
// for outputs, a sentinel that must survive the kernel.
template <typename T>
class Buffer {
 public:
  static constexpr size_t kGuard = 64;

  Buffer(size_t n, size_t offset, T guard)
      : storage_(offset + n + kGuard, guard), offset_(offset), n_(n), guard_(guard) {}

  T* data() { return storage_.data() + offset_; }
  const T* data() const { return storage_.data() + offset_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }

  // True when no element outside [0, n) was written.
  bool guard_intact() const {
    for (size_t i = 0; i < storage_.size(); ++i) {
      if (i >= offset_ && i < offset_ + n_) continue;
      if (std::memcmp(&storage_[i], &guard_, sizeof(T)) != 0) return false;
    }
    return true;
  }

 private:
  std::vector<T> storage_;
  size_t offset_, n_;
  T guard_;
};

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float float_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// A NaN payload no kernel produces: marks output elements that must stay untouched.
inline float float_sentinel() { return float_from_bits(0x7fbadbadu); }

inline std::string describe(float v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g (%a, bits 0x%08x)", v, v, float_bits(v));
  return buf;
}
template <typename T>
std::string describe(T v) {
  return std::to_string(+v);
}

// Bit-for-bit equality of two arrays, reporting the first difference.
template <typename T>
::testing::AssertionResult same_bits(const T* got, const T* want, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      return ::testing::AssertionFailure() << "first difference at index " << i << " of " << n << ": got "
                                           << describe(got[i]) << ", want " << describe(want[i]);
    }
  }
  return ::testing::AssertionSuccess();
}

// Uniform in log space over [lo, hi] (lo > 0), rounded to float.
inline float log_uniform(std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> d(std::log(lo), std::log(hi));
  return static_cast<float>(std::exp(d(rng)));
}

inline float uniform(std::mt19937& rng, double lo, double hi) {
  return static_cast<float>(std::uniform_real_distribution<double>(lo, hi)(rng));
}

template <typename I>
I uniform_int(std::mt19937& rng, I lo, I hi) {
  return std::uniform_int_distribution<I>(lo, hi)(rng);
}

// Picks one element of a non-empty list uniformly.
template <typename T, size_t N>
T pick(std::mt19937& rng, const T (&values)[N]) {
  return values[uniform_int<size_t>(rng, 0, N - 1)];
}

// Positions worth placing a special value at: first, middle, last (the last is in the kernels'
// tail whenever n is not a multiple of the vector width).
inline std::vector<size_t> special_positions(size_t n) {
  if (n == 0) return {};
  return {0, n / 2, n - 1};
}

}  // namespace circle_quant_test
