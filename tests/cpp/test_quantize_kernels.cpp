// Quantize / dequantize microkernels: every ISA path against the scalar reference bit for bit,
// the scalar reference against an oracle written from the numerics spec, the public dispatching
// entry points under each forced ISA, and fake quantization.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <iterator>
#include <limits>
#include <sstream>
#include <type_traits>

#include "core/isa.h"
#include "core/quantize.h"
#include "core/ukernels/ukernels.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;

constexpr float kInf = std::numeric_limits<float>::infinity();

// --- quantized types -----------------------------------------------------------------------------

template <typename T>
struct TypeTag {
  using type = T;
};

template <typename Q>
const char* qtype_name() {
  if constexpr (std::is_same_v<Q, uint8_t>) return "uint8";
  if constexpr (std::is_same_v<Q, int8_t>) return "int8";
  if constexpr (std::is_same_v<Q, uint16_t>) return "uint16";
  if constexpr (std::is_same_v<Q, int16_t>) return "int16";
  if constexpr (std::is_same_v<Q, int32_t>) return "int32";
}

// Calls f(TypeTag<Q>{}) for every quantized type the kernels are instantiated for; stops at the
// first type with a failure so a broken kernel reports once, not thousands of times.
template <typename F>
void for_each_qtype(F&& f) {
  auto run = [&](auto tag) {
    if (::testing::Test::HasFailure()) return;
    SCOPED_TRACE(qtype_name<typename decltype(tag)::type>());
    f(tag);
  };
  run(TypeTag<uint8_t>{});
  run(TypeTag<int8_t>{});
  run(TypeTag<uint16_t>{});
  run(TypeTag<int16_t>{});
  run(TypeTag<int32_t>{});
}

// The largest float below 2^31: the highest level an int32 quantization can produce, since
// 2^31 - 1 has no float representation.
int64_t int32_float_ceiling() { return static_cast<int64_t>(std::nextafter(2147483648.0f, 0.0f)); }

bool exact_in_float(int64_t v) { return static_cast<int64_t>(static_cast<float>(v)) == v; }

// --- kernel tables ---------------------------------------------------------------------------------

template <typename Q>
struct Kernels {
  bool (*quantize)(const float*, Q*, size_t, const QuantizeParams&);
  bool (*quantize_channelwise)(const float*, Q*, size_t, const float*, const float*, float, float);
  void (*dequantize)(const Q*, float*, size_t, const DequantizeParams&);
  void (*dequantize_channelwise)(const Q*, float*, size_t, const float*, const float*);
};

// The microkernels of one ISA (its rows in the kernel registry), called directly.
template <typename Q>
Kernels<Q> kernels(Isa isa) {
  const auto& q = own_row(ukernels::quantize_kernels<Q>(), isa).kernel;
  const auto& d = own_row(ukernels::dequantize_kernels<Q>(), isa).kernel;
  return {q.tensor, q.channelwise, d.tensor, d.channelwise};
}

// The public entry points, which route to the active ISA.
template <typename Q>
Kernels<Q> dispatching_kernels() {
  return {&circle_quant::quantize<Q>, &circle_quant::quantize_channelwise<Q>, &circle_quant::dequantize<Q>,
          &circle_quant::dequantize_channelwise<Q>};
}

// --- the oracle, written from the spec (quantize.h) ------------------------------------------------

// y = clamp(nearbyint(x * (float)(1.0 / (double)scale)) + zp, qmin, qmax), all in float; bounds
// that are not floats (int32 past 2^24) are replaced by the nearest float inside the range.
template <typename Q>
Q oracle_quantize(float x, float scale, int64_t zp, int64_t qmin, int64_t qmax) {
  const float inv_scale = static_cast<float>(1.0 / static_cast<double>(scale));
  const float v = std::nearbyint(x * inv_scale) + static_cast<float>(zp);
  float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  while (static_cast<double>(lo) < static_cast<double>(qmin)) lo = std::nextafter(lo, INFINITY);
  while (static_cast<double>(hi) > static_cast<double>(qmax)) hi = std::nextafter(hi, -INFINITY);
  const float clamped = v < lo ? lo : (v > hi ? hi : v);
  return static_cast<Q>(static_cast<int64_t>(clamped));
}

template <typename Q>
float oracle_dequantize(Q q, float scale, int64_t zp) {
  return (static_cast<float>(q) - static_cast<float>(zp)) * scale;
}

// --- problems --------------------------------------------------------------------------------------

struct Range {
  int64_t qmin, qmax;
};

// Full range, a narrowed one (int8 [-127, 127] and the like), a 4-bit range inside the type and a
// random sub-range.
template <typename Q>
std::vector<Range> quant_ranges(std::mt19937& rng) {
  const int64_t lo = std::numeric_limits<Q>::min(), hi = std::numeric_limits<Q>::max();
  const int64_t a = uniform_int(rng, lo, hi), b = uniform_int(rng, lo, hi);
  return {{lo, hi},
          std::is_signed_v<Q> ? Range{lo + 1, hi} : Range{1, hi - 1},
          std::is_signed_v<Q> ? Range{-8, 7} : Range{0, 15},
          {std::min(a, b), std::max(a, b)}};
}

// A value for quantization with (scale, zp) over [qmin, qmax]: mostly on and around the grid, with
// exact .5 ties (exact when scale is a power of two), saturating values, infinities, denormals and
// signed zeros mixed in.
float sample_value(std::mt19937& rng, float scale, int64_t zp, int64_t qmin, int64_t qmax) {
  const double lo = static_cast<double>(qmin - zp) * scale;
  const double hi = static_cast<double>(qmax - zp) * scale;
  const double margin = 0.1 * (hi - lo) + 4.0 * scale;
  const int64_t kmax = int64_t{1} << 20;  // keeps k + 0.5 exact in float
  switch (uniform_int(rng, 0, 19)) {
    case 0:
    case 1:
    case 2: {
      const int64_t k = uniform_int(rng, std::max(qmin - zp - 2, -kmax), std::min(qmax - zp + 2, kmax));
      return (static_cast<float>(k) + 0.5f) * scale;
    }
    case 3: return pick(rng, {1e30f, -1e30f, FLT_MAX, -FLT_MAX, 3e9f, -3e9f});
    case 4: return pick(rng, {kInf, -kInf});
    case 5: return float_from_bits(uniform_int<uint32_t>(rng, 1, 0x007fffff) | pick(rng, {0u, 0x80000000u}));
    case 6: return pick(rng, {0.0f, -0.0f});
    case 7:
    case 8: return uniform(rng, -3.0 * scale, 3.0 * scale);
    default: return uniform(rng, lo - margin, hi + margin);
  }
}

// One kernel input of n elements: float values with per-element scale and zero point (the same
// for every element unless per_element), and quantized values for the dequantize kernels.
template <typename Q>
struct Problem {
  Problem(size_t n_, size_t offset_)
      : n(n_),
        offset(offset_),
        zp_int(n_),
        x(n_, offset_, NAN),
        scale(n_, offset_, NAN),
        inv_scale(n_, offset_, NAN),
        zero_point(n_, offset_, NAN),
        q(n_, offset_, Q{0}) {}

  QuantizeParams params() const { return make_quantize_params(tensor_scale, tensor_zero_point, qmin, qmax); }
  DequantizeParams dequantize_params() const { return {tensor_scale, static_cast<float>(tensor_zero_point)}; }
  std::string describe() const {
    std::ostringstream s;
    s << "n=" << n << " offset=" << offset << " range=[" << qmin << ", " << qmax << "] scale=" << tensor_scale
      << " zero_point=" << tensor_zero_point;
    return s.str();
  }

  size_t n, offset;
  int64_t qmin = 0, qmax = 0;
  float tensor_scale = 1;
  int64_t tensor_zero_point = 0;
  std::vector<int64_t> zp_int;
  Buffer<float> x, scale, inv_scale, zero_point;  // inputs past the end are NaN
  Buffer<Q> q;
};

template <typename Q>
Problem<Q> make_problem(std::mt19937& rng, size_t n, size_t offset, Range r, bool pow2_scale, bool per_element) {
  Problem<Q> p(n, offset);
  p.qmin = r.qmin;
  p.qmax = r.qmax;
  auto draw_scale = [&] {
    return pow2_scale ? std::ldexp(1.0f, uniform_int(rng, -10, 3)) : log_uniform(rng, 1e-4, 10);
  };
  auto draw_zp = [&] { return uniform_int(rng, r.qmin, r.qmax); };
  p.tensor_scale = draw_scale();
  p.tensor_zero_point = draw_zp();
  const int64_t tlo = std::numeric_limits<Q>::min(), thi = std::numeric_limits<Q>::max();
  for (size_t i = 0; i < n; ++i) {
    const float s = per_element ? draw_scale() : p.tensor_scale;
    const int64_t z = per_element ? draw_zp() : p.tensor_zero_point;
    p.scale[i] = s;
    p.inv_scale[i] = static_cast<float>(1.0 / static_cast<double>(s));
    p.zero_point[i] = static_cast<float>(z);
    p.zp_int[i] = z;
    p.x[i] = sample_value(rng, s, z, r.qmin, r.qmax);
    p.q[i] = static_cast<Q>(uniform_int(rng, 0, 3) == 0 ? pick(rng, {tlo, thi, z}) : uniform_int(rng, tlo, thi));
  }
  return p;
}

// Calls body(problem) for every range, scale kind (random / power of two), size and pointer
// offset; stops at the first problem with a failure.
template <typename Q, typename Body>
void for_each_problem(std::mt19937& rng, const std::vector<Range>& ranges, bool per_element, Body&& body) {
  for (const Range& r : ranges) {
    for (bool pow2_scale : {false, true}) {
      for (size_t n : test_sizes(rng)) {
        for (size_t offset : kOffsets) {
          auto p = make_problem<Q>(rng, n, offset, r, pow2_scale, per_element);
          SCOPED_TRACE(p.describe() + (per_element ? " (per-element parameters)" : ""));
          body(p);
          if (::testing::Test::HasFailure()) return;
        }
      }
    }
  }
}

template <typename Q>
Q q_sentinel() {
  return static_cast<Q>(static_cast<uint32_t>(0x5a5a5a5au));
}

// Runs `run(kernels, out)` with the kernels under test and with the scalar reference: both must
// return true, agree bit for bit and write nothing outside [0, n).
template <typename Q, typename Out, typename Run>
void expect_same_as_scalar(const char* what, const Kernels<Q>& k, size_t n, size_t offset, Out guard, Run run) {
  SCOPED_TRACE(what);
  Buffer<Out> want(n, offset, guard), got(n, offset, guard);
  EXPECT_TRUE(run(kernels<Q>(Isa::kScalar), want.data()));
  EXPECT_TRUE(run(k, got.data())) << "reported a NaN that is not in the input";
  EXPECT_TRUE(same_bits(got.data(), want.data(), n));
  EXPECT_TRUE(got.guard_intact()) << "wrote outside the output";
}

// The four kernels of `k` against the scalar reference over every problem for Q.
template <typename Q>
void expect_kernels_match_scalar(const Kernels<Q>& k, std::mt19937& rng) {
  for (bool per_element : {false, true}) {
    for_each_problem<Q>(rng, quant_ranges<Q>(rng), per_element, [&](const Problem<Q>& p) {
      const QuantizeParams tp = p.params();
      const DequantizeParams dp = p.dequantize_params();
      const size_t n = p.n;
      expect_same_as_scalar("quantize", k, n, p.offset, q_sentinel<Q>(),
                            [&](const Kernels<Q>& kk, Q* y) { return kk.quantize(p.x.data(), y, n, tp); });
      expect_same_as_scalar("quantize_channelwise", k, n, p.offset, q_sentinel<Q>(), [&](const Kernels<Q>& kk, Q* y) {
        return kk.quantize_channelwise(p.x.data(), y, n, p.inv_scale.data(), p.zero_point.data(), tp.qmin, tp.qmax);
      });
      expect_same_as_scalar("dequantize", k, n, p.offset, float_sentinel(), [&](const Kernels<Q>& kk, float* y) {
        kk.dequantize(p.q.data(), y, n, dp);
        return true;
      });
      expect_same_as_scalar("dequantize_channelwise", k, n, p.offset, float_sentinel(),
                            [&](const Kernels<Q>& kk, float* y) {
                              kk.dequantize_channelwise(p.q.data(), y, n, p.scale.data(), p.zero_point.data());
                              return true;
                            });
    });
  }
}

// --- per-ISA kernel tests ------------------------------------------------------------------------

class QuantizeKernels : public IsaTest {};
INSTANTIATE_FOR_EACH_ISA(QuantizeKernels);

TEST_P(QuantizeKernels, MatchScalarBitForBit) {
  std::mt19937 rng(1234);
  for_each_qtype([&](auto tag) {
    using Q = typename decltype(tag)::type;
    expect_kernels_match_scalar(kernels<Q>(GetParam()), rng);
  });
}

TEST_P(QuantizeKernels, DispatchUnderForcedIsaMatchesScalar) {
  IsaOverride forced(GetParam());
  EXPECT_EQ(active_isa(), GetParam());
  std::mt19937 rng(99);
  for_each_qtype([&](auto tag) {
    using Q = typename decltype(tag)::type;
    expect_kernels_match_scalar(dispatching_kernels<Q>(), rng);
  });
}

TEST_P(QuantizeKernels, NanAnywhereMakesQuantizeFail) {
  const float nans[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::signaling_NaN()};
  std::mt19937 rng(7);
  for_each_qtype([&](auto tag) {
    using Q = typename decltype(tag)::type;
    const Kernels<Q> k = kernels<Q>(GetParam());
    for_each_problem<Q>(rng, quant_ranges<Q>(rng), true, [&](Problem<Q>& p) {
      const QuantizeParams tp = p.params();
      for (size_t pos : special_positions(p.n)) {
        const float saved = p.x[pos];
        p.x[pos] = pick(rng, nans);
        Buffer<Q> y(p.n, p.offset, q_sentinel<Q>());
        EXPECT_FALSE(k.quantize(p.x.data(), y.data(), p.n, tp)) << "NaN at index " << pos;
        EXPECT_FALSE(k.quantize_channelwise(p.x.data(), y.data(), p.n, p.inv_scale.data(), p.zero_point.data(), tp.qmin,
                                            tp.qmax))
            << "NaN at index " << pos;
        EXPECT_TRUE(y.guard_intact());
        p.x[pos] = saved;
      }
    });
  });
}

// Hand-derived: with scale 1/2 the values below sit exactly halfway between two levels and must
// round to the even one; repeated so every lane, the unrolled loop and the tail see them.
TEST_P(QuantizeKernels, TiesRoundHalfToEven) {
  const float x[] = {0.25f, 0.75f, 1.25f, -0.25f, -0.75f, -1.25f, 2.25f, -2.25f};
  const int want[] = {0, 2, 2, 0, -2, -2, 4, -4};
  constexpr size_t kRepeat = 9;
  for_each_qtype([&](auto tag) {
    using Q = typename decltype(tag)::type;
    const int64_t zp = std::is_signed_v<Q> ? 0 : 10;
    const int64_t qmin = std::numeric_limits<Q>::min(), qmax = std::numeric_limits<Q>::max();
    const size_t n = kRepeat * std::size(x) + 3;
    Buffer<float> in(n, 1, NAN), scale(n, 1, 0.5f), inv(n, 1, 2.0f), zpf(n, 1, float(zp));
    for (size_t i = 0; i < n; ++i) in[i] = x[i % std::size(x)];
    const Kernels<Q> k = kernels<Q>(GetParam());
    const QuantizeParams p = make_quantize_params(0.5, zp, qmin, qmax);
    Buffer<Q> a(n, 1, q_sentinel<Q>()), b(n, 1, q_sentinel<Q>());
    ASSERT_TRUE(k.quantize(in.data(), a.data(), n, p));
    ASSERT_TRUE(k.quantize_channelwise(in.data(), b.data(), n, inv.data(), zpf.data(), p.qmin, p.qmax));
    for (size_t i = 0; i < n; ++i) {
      const int64_t expected = want[i % std::size(x)] + zp;
      ASSERT_EQ(int64_t{a[i]}, expected) << "quantize, x = " << in[i] << " at " << i;
      ASSERT_EQ(int64_t{b[i]}, expected) << "quantize_channelwise, x = " << in[i] << " at " << i;
    }
  });
}

// Values the spec fixes regardless of scale: saturation of huge values and infinities at the range
// bounds, and tiny values (denormals, signed zeros) at the zero point.
TEST_P(QuantizeKernels, SpecialValuesSaturateOrMapToZeroPoint) {
  std::mt19937 rng(5);
  for_each_qtype([&](auto tag) {
    using Q = typename decltype(tag)::type;
    for (const Range& r : quant_ranges<Q>(rng)) {
      if (!exact_in_float(r.qmin) || !exact_in_float(r.qmax)) continue;  // see Int32BoundsNot...
      const int64_t zp = uniform_int(rng, r.qmin, r.qmax);
      // The zero point is added in float: an int32 one may round to a multiple of 2^k.
      const int64_t zp_level = static_cast<int64_t>(static_cast<float>(zp));
      const int64_t top = std::min(r.qmax, int32_float_ceiling());
      const std::pair<float, int64_t> cases[] = {
          {kInf, top},      {-kInf, r.qmin},   {FLT_MAX, top},           {-FLT_MAX, r.qmin},
          {0.0f, zp_level}, {-0.0f, zp_level}, {FLT_TRUE_MIN, zp_level}, {-FLT_MIN / 2, zp_level}};
      const size_t n = 37;
      for (double scale : {1e-4, 1.0, 10.0}) {
        for (const auto& [value, expected] : cases) {
          Buffer<float> in(n, 1, NAN);
          std::fill(in.data(), in.data() + n, value);
          Buffer<Q> y(n, 1, q_sentinel<Q>());
          ASSERT_TRUE(
              kernels<Q>(GetParam()).quantize(in.data(), y.data(), n, make_quantize_params(scale, zp, r.qmin, r.qmax)));
          for (size_t i = 0; i < n; ++i) {
            ASSERT_EQ(int64_t{y[i]}, expected) << "x = " << describe(value) << " scale " << scale << " zp " << zp
                                               << " range [" << r.qmin << ", " << r.qmax << "] index " << i;
          }
        }
      }
    }
  });
}

// int32 bounds beyond 2^24 need not be floats. Clamping against their float roundings must still
// keep every output inside [qmin, qmax], the range the caller declared (and dequantizes with).
TEST_P(QuantizeKernels, Int32BoundsNotExactInFloatStayInRange) {
  const Range ranges[] = {{INT32_MIN + 1, INT32_MAX}, {-16777219, 16777219}, {-33554435, 100}};
  const float values[] = {-kInf, kInf, -FLT_MAX, FLT_MAX, -3e9f, 3e9f};
  const size_t n = 37;
  for (const Range& r : ranges) {
    const QuantizeParams p = make_quantize_params(1.0, 0, r.qmin, r.qmax);
    for (float value : values) {
      Buffer<float> in(n, 0, NAN);
      std::fill(in.data(), in.data() + n, value);
      Buffer<int32_t> y(n, 0, q_sentinel<int32_t>());
      ASSERT_TRUE(kernels<int32_t>(GetParam()).quantize(in.data(), y.data(), n, p));
      EXPECT_TRUE(y[0] >= r.qmin && y[0] <= r.qmax)
          << "x = " << value << " quantizes to " << y[0] << ", outside [quant_min, quant_max] = [" << r.qmin << ", "
          << r.qmax << "]";
    }
  }
}

// --- scalar reference against the spec ------------------------------------------------------------

TEST(QuantizeReference, ScalarKernelsMatchSpecOracle) {
  std::mt19937 rng(2024);
  for_each_qtype([&](auto tag) {
    using Q = typename decltype(tag)::type;
    for (bool per_element : {false, true}) {
      for_each_problem<Q>(rng, quant_ranges<Q>(rng), per_element, [&](const Problem<Q>& p) {
        Buffer<Q> y(p.n, p.offset, q_sentinel<Q>());
        Buffer<float> d(p.n, p.offset, float_sentinel());
        if (per_element) {
          const QuantizeParams b = make_quantize_params(1.0, 0, p.qmin, p.qmax);
          ASSERT_TRUE(ukernels::f32_quantize_channelwise_scalar(p.x.data(), y.data(), p.n, p.inv_scale.data(),
                                                                p.zero_point.data(), b.qmin, b.qmax));
          ukernels::q_dequantize_channelwise_scalar(p.q.data(), d.data(), p.n, p.scale.data(), p.zero_point.data());
        } else {
          ASSERT_TRUE(ukernels::f32_quantize_scalar(p.x.data(), y.data(), p.n, p.params()));
          ukernels::q_dequantize_scalar(p.q.data(), d.data(), p.n, p.dequantize_params());
        }
        for (size_t i = 0; i < p.n; ++i) {
          const Q want = oracle_quantize<Q>(p.x[i], p.scale[i], p.zp_int[i], p.qmin, p.qmax);
          ASSERT_EQ(y[i], want) << "quantize x = " << describe(p.x[i]) << " at " << i;
          const float want_d = oracle_dequantize(p.q[i], p.scale[i], p.zp_int[i]);
          ASSERT_EQ(float_bits(d[i]), float_bits(want_d)) << "dequantize q = " << +p.q[i] << " at " << i << ": got "
                                                          << describe(d[i]) << ", want " << describe(want_d);
        }
      });
    }
  });
}

TEST(QuantizeParamsTest, Int32UpperBoundIsCappedBelowTwoToThe31) {
  const QuantizeParams p = make_quantize_params(0.5, 7, INT32_MIN, INT32_MAX);
  EXPECT_LT(p.qmax, 2147483648.0f);
  EXPECT_EQ(p.qmax, std::nextafter(2147483648.0f, 0.0f));
  EXPECT_EQ(p.qmin, -2147483648.0f);
  // The cap only applies to bounds that do not fit: a small int32 range is kept as is.
  EXPECT_EQ(make_quantize_params(0.5, 0, -1000, 1000).qmax, 1000.0f);
}

TEST(QuantizeParamsTest, FieldsFollowTheSpec) {
  for (double scale : {0.1, 1.0 / 3.0, 1e-4, 7.0, 0.0078125}) {
    for_each_qtype([&](auto tag) {
      using Q = typename decltype(tag)::type;
      const int64_t qmin = std::numeric_limits<Q>::min(), qmax = std::numeric_limits<Q>::max();
      const QuantizeParams p = make_quantize_params(scale, qmin + 1, qmin, qmax);
      EXPECT_EQ(float_bits(p.inv_scale), float_bits(static_cast<float>(1.0 / scale)));
      EXPECT_EQ(p.zero_point, static_cast<float>(qmin + 1));
      EXPECT_EQ(p.qmin, static_cast<float>(qmin));
      if (sizeof(Q) < 4) {
        EXPECT_EQ(p.qmax, static_cast<float>(qmax));
      }
    });
  }
}

TEST(IsaSelection, OverrideAndParsing) {
  for (Isa isa : kAllIsas) {
    EXPECT_EQ(parse_isa(isa_name(isa)), isa);
    if (isa_supported(isa)) {
      IsaOverride forced(isa);
      EXPECT_EQ(active_isa(), isa);
    } else {
      EXPECT_THROW(set_isa_override(isa), std::runtime_error);
    }
  }
  EXPECT_TRUE(isa_supported(Isa::kScalar));
  try {
    parse_isa("sse2");
    ADD_FAILURE() << "parse_isa accepted 'sse2'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("scalar, avx2, avxvnni, avx512, avx512vnni, amx, neon, neondot"),
              std::string::npos)
        << e.what();
  }
}

// --- fake quantization: every ISA against the spec oracle ------------------------------------------

TEST_P(QuantizeKernels, FakeQuantizeMatchesSpecOracleWithStraightThroughMask) {
  IsaOverride forced(GetParam());
  const std::vector<Range> ranges = {{0, 255}, {-128, 127}, {-127, 127}, {0, 15}, {-32768, 32767}};
  std::mt19937 rng(11);
  for (bool per_element : {false, true}) {
    for_each_problem<int32_t>(rng, ranges, per_element, [&](Problem<int32_t>& p) {
      const size_t n = p.n;
      // The op layer passes int32 clamp bounds (the widest type) to the fake-quantize kernels.
      const QuantizeParams tp = p.params();
      auto run = [&](float* y, uint8_t* mask) {
        return per_element ? fake_quantize_channelwise(p.x.data(), y, mask, n, p.inv_scale.data(), p.zero_point.data(),
                                                       p.scale.data(), tp.qmin, tp.qmax)
                           : fake_quantize(p.x.data(), y, mask, n, tp, p.tensor_scale);
      };
      Buffer<float> y(n, p.offset, float_sentinel()), y_nomask(n, p.offset, float_sentinel());
      Buffer<uint8_t> mask(n, p.offset, 0xa5);
      ASSERT_TRUE(run(y.data(), mask.data()));
      ASSERT_TRUE(run(y_nomask.data(), nullptr));
      EXPECT_TRUE(same_bits(y_nomask.data(), y.data(), n)) << "the mask changed the output";
      EXPECT_TRUE(y.guard_intact() && mask.guard_intact()) << "wrote outside the output";
      for (size_t i = 0; i < n; ++i) {
        const float inv = static_cast<float>(1.0 / static_cast<double>(p.scale[i]));
        const float v = std::nearbyint(p.x[i] * inv) + static_cast<float>(p.zp_int[i]);
        const bool in_range = v >= static_cast<float>(p.qmin) && v <= static_cast<float>(p.qmax);
        const float q = std::min(std::max(v, static_cast<float>(p.qmin)), static_cast<float>(p.qmax));
        const float want = (q - static_cast<float>(p.zp_int[i])) * p.scale[i];
        ASSERT_EQ(float_bits(y[i]), float_bits(want))
            << "x = " << describe(p.x[i]) << " at " << i << ": got " << describe(y[i]);
        ASSERT_EQ(mask[i], in_range ? 1 : 0) << "x = " << describe(p.x[i]) << " at " << i;
      }
      for (size_t pos : special_positions(n)) {
        const float saved = p.x[pos];
        p.x[pos] = NAN;
        EXPECT_FALSE(run(y.data(), mask.data())) << "NaN at index " << pos;
        p.x[pos] = saved;
      }
    });
  }
}

}  // namespace
