// The fused residual add (ResidualAdd in qgemm.h, the q8-vadd kernels): every ISA's kernel against
// the scalar reference bit for bit (tiles ending at an unmapped page, bytes between the tile's
// columns and its stride checked untouched), the scalar reference against a float32 formula
// written out again here (float family) and a test-local TFLite ADD (fixed-point family),
// hand-computed ties of both families, make_residual_add()'s checks and bounds, and the qgemm() /
// qconv2d() drivers with a residual against the same driver without one followed by the scalar
// add (split row / channel / pixel ranges, groups, depthwise).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/isa.h"
#include "core/qconv.h"
#include "core/qgemm.h"
#include "core/ukernels/qgemm_ukernels.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;

constexpr double kInf = std::numeric_limits<double>::infinity();

#if defined(__aarch64__)
constexpr int kScale = 1;  // under qemu: fewer random cases
#else
constexpr int kScale = 3;
#endif

// --- quantized elements -------------------------------------------------------------------------

const char* mode_name(RequantMode m) { return m == RequantMode::kFloat ? "float" : "fixed point"; }

int32_t load_q(const uint8_t* base, size_t i, OutputType t) {
  switch (t) {
    case OutputType::kUint8: return base[i];
    case OutputType::kInt8: return static_cast<int8_t>(base[i]);
    case OutputType::kInt16: {
      int16_t v;
      std::memcpy(&v, base + 2 * i, 2);
      return v;
    }
    case OutputType::kFloat: break;
  }
  return 0;
}

void store_q(uint8_t* base, size_t i, OutputType t, int32_t v) {
  if (t == OutputType::kInt16) {
    const int16_t q = static_cast<int16_t>(v);
    std::memcpy(base + 2 * i, &q, 2);
  } else {
    base[i] = static_cast<uint8_t>(v);
  }
}

// A zero point of type t: an extreme, the middle or anything.
int32_t random_zero_point(std::mt19937& rng, OutputType t) {
  int32_t lo, hi;
  type_bounds(t, &lo, &hi);
  switch (uniform_int<int>(rng, 0, 4)) {
    case 0: return lo;
    case 1: return hi;
    case 2: return t == OutputType::kUint8 ? 128 : 0;
    default: return uniform_int<int32_t>(rng, lo, hi);
  }
}

// A value of type t: mostly anything, often an extreme, sometimes next to the zero point.
int32_t random_value(std::mt19937& rng, OutputType t, int32_t zero_point) {
  int32_t lo, hi;
  type_bounds(t, &lo, &hi);
  switch (uniform_int<int>(rng, 0, 9)) {
    case 0: return lo;
    case 1: return hi;
    case 2:
    case 3: return std::clamp(zero_point + uniform_int<int32_t>(rng, -3, 3), lo, hi);
    default: return uniform_int<int32_t>(rng, lo, hi);
  }
}

// --- the parameters of one add ------------------------------------------------------------------

struct AddParams {
  OutputType type = OutputType::kUint8;
  RequantMode mode = RequantMode::kFloat;
  double sy = 1, sr = 1, so = 1;  // layer output, residual, add output scales
  int32_t zy = 0, zr = 0, zo = 0;
  double act_min = -kInf, act_max = kInf;

  std::string describe() const {
    std::ostringstream s;
    s.precision(9);
    s << type_name(type) << ", " << mode_name(mode) << ": sy " << sy << " zy " << zy << ", sr " << sr << " zr " << zr
      << ", so " << so << " zo " << zo << ", activation [" << act_min << ", " << act_max << "]";
    return s.str();
  }
};

ResidualAdd make_add(const AddParams& p) {
  ResidualAdd add;
  make_residual_add(p.type, p.mode, p.sy, p.zy, p.sr, p.zr, p.so, p.zo, p.act_min, p.act_max, &add);
  return add;
}

// Random activation bounds: none, ReLU, ReLU6 or a clamp a few dozen output levels wide.
void random_activation(std::mt19937& rng, AddParams* p) {
  switch (uniform_int<int>(rng, 0, 4)) {
    case 0:
      p->act_min = 0.0;
      p->act_max = kInf;
      break;
    case 1:
      p->act_min = 0.0;
      p->act_max = 6.0;
      break;
    case 2:
      p->act_min = -p->so * uniform(rng, 0, 80);
      p->act_max = p->so * uniform(rng, 1, 80);
      break;
    default: p->act_min = -kInf; p->act_max = kInf;
  }
}

// Scales from 1e-4 to 10: independent, equal, output relative to the inputs, or powers of two
// (exact products: ties in both families' rounding).
AddParams random_add_params(std::mt19937& rng) {
  AddParams p;
  p.type = static_cast<OutputType>(uniform_int<int>(rng, 0, 2));
  p.mode = uniform_int<int>(rng, 0, 1) == 0 ? RequantMode::kFloat : RequantMode::kFixedPoint;
  switch (uniform_int<int>(rng, 0, 3)) {
    case 0:
      p.sy = log_uniform(rng, 1e-4, 10);
      p.sr = log_uniform(rng, 1e-4, 10);
      p.so = log_uniform(rng, 1e-4, 10);
      break;
    case 1:
      p.sy = p.sr = log_uniform(rng, 1e-4, 10);
      p.so = p.sy * log_uniform(rng, 0.5, 4);
      break;
    case 2:
      p.sy = log_uniform(rng, 1e-4, 10);
      p.sr = log_uniform(rng, 1e-4, 10);
      p.so = std::max(p.sy, p.sr) * log_uniform(rng, 0.25, 8);
      break;
    default:
      p.so = std::ldexp(1.0, uniform_int<int>(rng, -12, 3));
      p.sy = p.so * std::ldexp(1.0, uniform_int<int>(rng, -2, 1));
      p.sr = p.so * std::ldexp(1.0, uniform_int<int>(rng, -2, 1));
  }
  p.zy = random_zero_point(rng, p.type);
  p.zr = random_zero_point(rng, p.type);
  p.zo = random_zero_point(rng, p.type);
  random_activation(rng, &p);
  return p;
}

// --- an independent reference -------------------------------------------------------------------

// Keeps a product from being contracted with the following addition into an FMA (GCC contracts
// by default where the target has FMA, e.g. AArch64; the library is built with -ffp-contract=off).
float rounded(float x) {
  volatile float v = x;
  return v;
}

// The clamp: activation bounds quantized as each family's runtime does (PyTorch: multiply by the
// float reciprocal, ties to even; TFLite: float division, ties away from zero), within the type.
std::pair<int32_t, int32_t> reference_bounds(const AddParams& p) {
  int32_t lo, hi;
  type_bounds(p.type, &lo, &hi);
  const auto quantize = [&](double v) -> int64_t {
    float q = p.mode == RequantMode::kFloat ? std::nearbyint(static_cast<float>(v) * static_cast<float>(1.0 / p.so))
                                            : std::round(static_cast<float>(v) / static_cast<float>(p.so));
    q = std::min(std::max(q, -1e9f), 1e9f);
    return static_cast<int64_t>(q) + p.zo;
  };
  int64_t qmin = lo, qmax = hi;
  if (std::isfinite(p.act_min)) qmin = std::max<int64_t>(qmin, quantize(p.act_min));
  if (std::isfinite(p.act_max)) qmax = std::min<int64_t>(qmax, quantize(p.act_max));
  if (qmin > qmax) qmin = qmax;
  return {static_cast<int32_t>(qmin), static_cast<int32_t>(qmax)};
}

// PT2E's dequantize → add → quantize in float32.
int32_t reference_float(const AddParams& p, int32_t y, int32_t r) {
  const float sy = static_cast<float>(p.sy), sr = static_cast<float>(p.sr);
  const float inv = static_cast<float>(1.0 / p.so);
  const float a = rounded((static_cast<float>(y) - static_cast<float>(p.zy)) * sy);
  const float b = rounded((static_cast<float>(r) - static_cast<float>(p.zr)) * sr);
  const float v = std::nearbyint((a + b) * inv) + static_cast<float>(p.zo);
  const auto [qmin, qmax] = reference_bounds(p);
  if (v <= static_cast<float>(qmin)) return qmin;
  if (v >= static_cast<float>(qmax)) return qmax;
  return static_cast<int32_t>(v);
}

// TFLite's ADD: Prepare (twice the larger input scale, 20 bits of headroom, 15 for int16; the
// scales are the file's float32) and reference_ops::AddElementwise.
struct TfliteAdd {
  int32_t left_shift;
  int32_t m1, s1, m2, s2, mo, so;
};

TfliteAdd tflite_prepare(const AddParams& p) {
  TfliteAdd t;
  t.left_shift = p.type == OutputType::kInt16 ? 15 : 20;
  const float scale1 = static_cast<float>(p.sy), scale2 = static_cast<float>(p.sr);
  const float output_scale = static_cast<float>(p.so);
  const double twice_max_input_scale = 2 * static_cast<double>(std::max(scale1, scale2));
  const double real_input1_multiplier = scale1 / twice_max_input_scale;
  const double real_input2_multiplier = scale2 / twice_max_input_scale;
  const double real_output_multiplier = twice_max_input_scale / ((1 << t.left_shift) * output_scale);
  quantize_multiplier(real_input1_multiplier, &t.m1, &t.s1);
  quantize_multiplier(real_input2_multiplier, &t.m2, &t.s2);
  quantize_multiplier(real_output_multiplier, &t.mo, &t.so);
  return t;
}

int32_t reference_fixed_point(const AddParams& p, const TfliteAdd& t, int32_t y, int32_t r) {
  const int32_t input1_val = y - p.zy, input2_val = r - p.zr;
  // |value - zero point| ≤ 65535 and 65535 · 2^15 < 2^31: no overflow in any type.
  const int32_t shifted_input1_val = input1_val * (1 << t.left_shift);
  const int32_t shifted_input2_val = input2_val * (1 << t.left_shift);
  const int32_t scaled_input1_val = multiply_by_quantized_multiplier(shifted_input1_val, t.m1, t.s1);
  const int32_t scaled_input2_val = multiply_by_quantized_multiplier(shifted_input2_val, t.m2, t.s2);
  const int32_t raw_sum = scaled_input1_val + scaled_input2_val;
  const int32_t raw_output = multiply_by_quantized_multiplier(raw_sum, t.mo, t.so) + p.zo;
  const auto [qmin, qmax] = reference_bounds(p);
  return std::min(qmax, std::max(qmin, raw_output));
}

// --- one tile -----------------------------------------------------------------------------------

struct Tile {
  AddParams p;
  size_t rows = 0, cols = 0, out_stride = 0, other_stride = 0;
  std::vector<uint8_t> out, other;  // bytes; gaps between cols and stride hold a byte pattern

  size_t elem() const { return element_size(p.type); }
  static size_t bytes(size_t rows, size_t cols, size_t stride, size_t elem) {
    return rows == 0 ? 0 : ((rows - 1) * stride + cols) * elem;
  }
  bool inside(size_t byte, size_t stride) const {
    const size_t e = byte / elem();
    return e % stride < cols;
  }
  std::string describe() const {
    std::ostringstream s;
    s << rows << "x" << cols << " tile, out stride " << out_stride << ", other stride " << other_stride << ", "
      << p.describe();
    return s.str();
  }
};

void fill_tile(std::mt19937& rng, Tile* t) {
  const size_t elem = t->elem();
  t->out.resize(Tile::bytes(t->rows, t->cols, t->out_stride, elem));
  t->other.resize(Tile::bytes(t->rows, t->cols, t->other_stride, elem));
  for (size_t i = 0; i < t->out.size(); ++i) t->out[i] = static_cast<uint8_t>(i * 37 + 11);
  for (size_t i = 0; i < t->other.size(); ++i) t->other[i] = static_cast<uint8_t>(i * 53 + 5);
  for (size_t i = 0; i < t->rows; ++i) {
    for (size_t j = 0; j < t->cols; ++j) {
      store_q(t->out.data(), i * t->out_stride + j, t->p.type, random_value(rng, t->p.type, t->p.zy));
      store_q(t->other.data(), i * t->other_stride + j, t->p.type, random_value(rng, t->p.type, t->p.zr));
    }
  }
}

Tile random_tile(std::mt19937& rng) {
  Tile t;
  t.p = random_add_params(rng);
  t.rows = uniform_int<size_t>(rng, 1, 9);
  t.cols = uniform_int<int>(rng, 0, 3) == 0 ? pick(rng, {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 64, 65})
                                            : uniform_int<size_t>(rng, 0, 70);
  t.out_stride = t.cols + (uniform_int<int>(rng, 0, 3) == 0 ? 0 : uniform_int<size_t>(rng, 1, 20));
  t.other_stride = t.cols + (uniform_int<int>(rng, 0, 3) == 0 ? 0 : uniform_int<size_t>(rng, 1, 20));
  fill_tile(rng, &t);
  return t;
}

// Runs `fn` on the tile: out and other end at an unmapped page; the add's own other / other_stride
// are left null (the kernels take the operand as arguments). Returns the out bytes.
std::vector<uint8_t> run_tile(ukernels::ResidualAddFn fn, const Tile& t, const ResidualAdd& add_in) {
  Guarded<uint8_t> out(t.out.size()), other(t.other.size());
  out.assign(t.out);
  other.assign(t.other);
  ResidualAdd add = add_in;
  add.other = nullptr;
  add.other_stride = 0;
  fn(t.rows, t.cols, out.data(), t.out_stride, other.data(), t.other_stride, t.p.type, t.p.mode, add);
  EXPECT_TRUE(other.to_vector() == t.other) << "the residual operand was modified";
  return out.to_vector();
}

// got against want inside the tile; every byte between the columns and the stride untouched in
// got (want is not trusted for those).
::testing::AssertionResult check_tile(const Tile& t, const std::vector<uint8_t>& got,
                                      const std::vector<uint8_t>& want) {
  if (got.size() != t.out.size() || want.size() != t.out.size()) {
    return ::testing::AssertionFailure() << "size mismatch";
  }
  for (size_t b = 0; b < got.size(); ++b) {
    if (!t.inside(b, t.out_stride)) {
      if (got[b] != t.out[b]) {
        return ::testing::AssertionFailure()
               << "byte " << b << " (row " << b / t.elem() / t.out_stride << ", column " << b / t.elem() % t.out_stride
               << ") outside the tile changed from " << int{t.out[b]} << " to " << int{got[b]};
      }
    }
  }
  for (size_t i = 0; i < t.rows; ++i) {
    for (size_t j = 0; j < t.cols; ++j) {
      const size_t e = i * t.out_stride + j;
      const int32_t g = load_q(got.data(), e, t.p.type), w = load_q(want.data(), e, t.p.type);
      if (g != w) {
        return ::testing::AssertionFailure()
               << "row " << i << ", column " << j << ": y " << load_q(t.out.data(), e, t.p.type) << ", r "
               << load_q(t.other.data(), i * t.other_stride + j, t.p.type) << ": got " << g << ", want " << w;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// The expected tile from the test's own formulas.
std::vector<uint8_t> reference_tile(const Tile& t) {
  std::vector<uint8_t> want = t.out;
  const TfliteAdd tfl = t.p.mode == RequantMode::kFixedPoint ? tflite_prepare(t.p) : TfliteAdd{};
  for (size_t i = 0; i < t.rows; ++i) {
    for (size_t j = 0; j < t.cols; ++j) {
      const int32_t y = load_q(t.out.data(), i * t.out_stride + j, t.p.type);
      const int32_t r = load_q(t.other.data(), i * t.other_stride + j, t.p.type);
      const int32_t v =
          t.p.mode == RequantMode::kFloat ? reference_float(t.p, y, r) : reference_fixed_point(t.p, tfl, y, r);
      store_q(want.data(), i * t.out_stride + j, t.p.type, v);
    }
  }
  return want;
}

// --- 1. every ISA's kernel against the scalar reference -----------------------------------------

// Parameter: a q8-vadd row of the kernel registry (every one this CPU runs).
class ResidualAddKernelTest : public ::testing::TestWithParam<std::string> {
 protected:
  const ukernels::RegisteredKernel<ukernels::ResidualAddFn>& row() const {
    return registered(ukernels::residual_add_kernels(), GetParam());
  }
  ukernels::ResidualAddFn kernel() const { return row().kernel; }
};

TEST_P(ResidualAddKernelTest, MatchesScalarOnRandomTiles) {
  ASSERT_NE(kernel(), nullptr);
  std::mt19937 rng(1234 + static_cast<int>(row().isa));
  for (int iter = 0; iter < 1500 * kScale; ++iter) {
    const Tile t = random_tile(rng);
    SCOPED_TRACE(::testing::Message() << "iteration " << iter << ": " << t.describe());
    const ResidualAdd add = make_add(t.p);
    const std::vector<uint8_t> want =
        run_tile(registered(ukernels::residual_add_kernels(), "q8-vadd-scalar").kernel, t, add);
    const std::vector<uint8_t> got = run_tile(kernel(), t, add);
    ASSERT_TRUE(check_tile(t, want, want)) << "scalar reference";
    ASSERT_TRUE(check_tile(t, got, want));
  }
}

// Sums past both ends of every type: qmax / qmin whatever the path, and the activation's bound.
TEST_P(ResidualAddKernelTest, SaturatesBothWays) {
  std::mt19937 rng(8);
  for (OutputType type : {OutputType::kUint8, OutputType::kInt8, OutputType::kInt16}) {
    for (RequantMode mode : {RequantMode::kFloat, RequantMode::kFixedPoint}) {
      for (bool relu : {false, true}) {
        for (bool up : {true, false}) {
          int32_t lo, hi;
          type_bounds(type, &lo, &hi);
          Tile t;
          t.p.type = type;
          t.p.mode = mode;
          t.p.sy = t.p.sr = 1.0;
          t.p.so = 1.0;
          // up: y = r = hi against zero points lo (each dequantizes to hi - lo), and vice versa.
          t.p.zy = t.p.zr = up ? lo : hi;
          t.p.zo = type == OutputType::kUint8 ? 100 : -20;
          if (relu) t.p.act_min = 0.0;
          t.rows = 3;
          t.cols = 37;
          t.out_stride = 41;
          t.other_stride = 39;
          fill_tile(rng, &t);
          for (size_t i = 0; i < t.rows; ++i) {
            for (size_t j = 0; j < t.cols; ++j) {
              store_q(t.out.data(), i * t.out_stride + j, type, up ? hi : lo);
              store_q(t.other.data(), i * t.other_stride + j, type, up ? hi : lo);
            }
          }
          SCOPED_TRACE(t.describe());
          const std::vector<uint8_t> got = run_tile(kernel(), t, make_add(t.p));
          std::vector<uint8_t> want = t.out;
          const int32_t expect = up ? hi : relu ? t.p.zo : lo;
          for (size_t i = 0; i < t.rows; ++i) {
            for (size_t j = 0; j < t.cols; ++j) store_q(want.data(), i * t.out_stride + j, type, expect);
          }
          ASSERT_TRUE(check_tile(t, got, want));
        }
      }
    }
  }
}

// rows = 0 or cols = 0: nothing is read or written.
TEST_P(ResidualAddKernelTest, EmptyTilesAreNoOps) {
  std::mt19937 rng(3);
  for (OutputType type : {OutputType::kUint8, OutputType::kInt8, OutputType::kInt16}) {
    for (RequantMode mode : {RequantMode::kFloat, RequantMode::kFixedPoint}) {
      AddParams p;
      p.type = type;
      p.mode = mode;
      p.sy = 0.5;
      p.sr = 0.25;
      p.so = 0.3;
      const ResidualAdd add = make_add(p);
      std::vector<uint8_t> out(256), other(256);
      for (size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
        other[i] = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
      }
      const std::vector<uint8_t> out0 = out, other0 = other;
      kernel()(0, 40, out.data(), 40, other.data(), 40, type, mode, add);
      EXPECT_EQ(out, out0) << type_name(type) << ", " << mode_name(mode) << ", rows = 0";
      kernel()(4, 0, out.data(), 40, other.data(), 40, type, mode, add);
      EXPECT_EQ(out, out0) << type_name(type) << ", " << mode_name(mode) << ", cols = 0";
      EXPECT_EQ(other, other0);
    }
  }
}

// Ties of (a + b) / so at the kernels' vector widths and tails: the float family rounds half to
// even (2.5 → 2, 3.5 → 4), the fixed-point family half away from zero (2.5 → 3, -2.5 → -3).
TEST_P(ResidualAddKernelTest, TiesRoundPerFamily) {
  // sy = sr = 1, so = 2: out = round((y - zy + r - zr) / 2) + zo. Pattern of y - zy + r - zr.
  struct Pair {
    int32_t dy, dr;
  };
  const Pair sums[] = {{3, 2}, {4, 3},  {-3, -2}, {-4, -3}, {1, 0},   {-1, 0},
                       {5, 0}, {0, -5}, {2, 2},   {6, 1},   {-6, -1}, {0, 0}};
  // Float family (ties to even): 5/2 → 2, 7/2 → 4, -5/2 → -2, -7/2 → -4, 1/2 → 0, -1/2 → -0,
  // 5/2 → 2, -5/2 → -2, 2, 7/2 → 4, -7/2 → -4, 0.
  const int32_t want_float[] = {2, 4, -2, -4, 0, 0, 2, -2, 2, 4, -4, 0};
  // Fixed point (half away from zero): 3, 4, -3, -4, 1, -1, 3, -3, 2, 4, -4, 0.
  const int32_t want_fixed[] = {3, 4, -3, -4, 1, -1, 3, -3, 2, 4, -4, 0};
  constexpr size_t kPatterns = sizeof(sums) / sizeof(sums[0]);
  for (OutputType type : {OutputType::kUint8, OutputType::kInt8, OutputType::kInt16}) {
    for (RequantMode mode : {RequantMode::kFloat, RequantMode::kFixedPoint}) {
      Tile t;
      t.p.type = type;
      t.p.mode = mode;
      t.p.sy = t.p.sr = 1.0;
      t.p.so = 2.0;
      const int32_t base = type == OutputType::kUint8 ? 100 : 0;
      t.p.zy = base + 7;
      t.p.zr = base - 9;
      t.p.zo = base + 10;
      t.rows = 2;
      t.cols = 3 * kPatterns + 5;  // 41: full vectors and a tail at every width
      t.out_stride = t.cols + 3;
      t.other_stride = t.cols;
      std::mt19937 rng(1);
      fill_tile(rng, &t);
      std::vector<uint8_t> want = t.out;
      for (size_t i = 0; i < t.rows; ++i) {
        for (size_t j = 0; j < t.cols; ++j) {
          const size_t k = (j + i) % kPatterns;
          store_q(t.out.data(), i * t.out_stride + j, type, t.p.zy + sums[k].dy);
          store_q(t.other.data(), i * t.other_stride + j, type, t.p.zr + sums[k].dr);
          const int32_t q = mode == RequantMode::kFloat ? want_float[k] : want_fixed[k];
          store_q(want.data(), i * t.out_stride + j, type, t.p.zo + q);
        }
      }
      SCOPED_TRACE(t.describe());
      const ResidualAdd add = make_add(t.p);
      ASSERT_TRUE(check_tile(t, run_tile(kernel(), t, add), want));
      ASSERT_TRUE(
          check_tile(t, run_tile(registered(ukernels::residual_add_kernels(), "q8-vadd-scalar").kernel, t, add), want))
          << "scalar";
    }
  }
}

// An output scale whose float reciprocal is infinite (a denormal float scale): a + b = 0 gives
// 0 · inf = NaN, which every path must clamp the same way as the scalar code.
TEST_P(ResidualAddKernelTest, DegenerateScalesMatchScalar) {
  std::mt19937 rng(77);
  for (int iter = 0; iter < 60; ++iter) {
    Tile t;
    t.p = random_add_params(rng);
    t.p.mode = RequantMode::kFloat;
    t.p.so = 1e-39;
    t.p.act_min = -kInf;  // bounds quantized with an infinite reciprocal are not the point here
    t.p.act_max = kInf;
    t.p.sy = t.p.sr = 1.0;
    t.rows = 2;
    t.cols = uniform_int<size_t>(rng, 1, 40);
    t.out_stride = t.other_stride = t.cols;
    fill_tile(rng, &t);
    // Many y - zy = -(r - zr): a + b exactly 0.
    for (size_t j = 0; j < t.cols; j += 2) {
      const int32_t y = load_q(t.out.data(), j, t.p.type);
      int32_t lo, hi;
      type_bounds(t.p.type, &lo, &hi);
      const int32_t r = t.p.zr - (y - t.p.zy);
      if (r >= lo && r <= hi) store_q(t.other.data(), j, t.p.type, r);
    }
    SCOPED_TRACE(t.describe());
    // make_residual_add refuses a scale whose float32 reciprocal overflows; a struct filled by
    // hand that way must still give the scalar code's bits (0 · inf = NaN included).
    EXPECT_THROW(make_add(t.p), std::invalid_argument);
    t.p.so = 1.0;
    ResidualAdd add = make_add(t.p);
    add.inv_output_scale = std::numeric_limits<float>::infinity();
    ASSERT_TRUE(check_tile(t, run_tile(kernel(), t, add),
                           run_tile(registered(ukernels::residual_add_kernels(), "q8-vadd-scalar").kernel, t, add)));
  }
}

INSTANTIATE_TEST_SUITE_P(Kernel, ResidualAddKernelTest,
                         ::testing::ValuesIn(runnable_kernels(ukernels::residual_add_kernels())), kernel_param_name);

// --- 2. the scalar reference against the test's own formulas ------------------------------------

TEST(ResidualAddScalar, MatchesIndependentFormulas) {
  std::mt19937 rng(2025);
  int saturated_high = 0, saturated_low = 0, families[2] = {0, 0};
  for (int iter = 0; iter < 2000 * kScale; ++iter) {
    const Tile t = random_tile(rng);
    SCOPED_TRACE(::testing::Message() << "iteration " << iter << ": " << t.describe());
    const ResidualAdd add = make_add(t.p);
    const std::vector<uint8_t> want = reference_tile(t);
    const std::vector<uint8_t> got =
        run_tile(registered(ukernels::residual_add_kernels(), "q8-vadd-scalar").kernel, t, add);
    ASSERT_TRUE(check_tile(t, got, want));
    int32_t lo, hi;
    type_bounds(t.p.type, &lo, &hi);
    for (size_t i = 0; i < t.rows; ++i) {
      for (size_t j = 0; j < t.cols; ++j) {
        const int32_t v = load_q(got.data(), i * t.out_stride + j, t.p.type);
        saturated_high += v == hi;
        saturated_low += v == lo;
      }
    }
    families[static_cast<int>(t.p.mode)] += static_cast<int>(t.rows * t.cols);
  }
  // The random cases reach both ends of the types and both families.
  EXPECT_GT(saturated_high, 100);
  EXPECT_GT(saturated_low, 100);
  EXPECT_GT(families[0], 1000);
  EXPECT_GT(families[1], 1000);
}

TEST(ResidualAddScalar, FloatFamilyHandComputed) {
  // uint8, sy = 0.5, zy = 100; sr = 0.25, zr = 20; so = 0.5 (inv 2), zo = 3.
  AddParams p;
  p.type = OutputType::kUint8;
  p.sy = 0.5;
  p.zy = 100;
  p.sr = 0.25;
  p.zr = 20;
  p.so = 0.5;
  p.zo = 3;
  const ResidualAdd add = make_add(p);
  struct Case {
    int32_t y, r, want;
  };
  const Case cases[] = {
      {100, 20, 3},     // a = 0, b = 0
      {101, 21, 5},     // (0.5 + 0.25) · 2 = 1.5 → 2
      {101, 23, 5},     // (0.5 + 0.75) · 2 = 2.5 → 2 (tie to even)
      {101, 25, 7},     // (0.5 + 1.25) · 2 = 3.5 → 4 (tie to even)
      {102, 21, 5},     // (1 + 0.25) · 2 = 2.5 → 2
      {103, 22, 7},     // (1.5 + 0.5) · 2 = 4
      {99, 21, 3},      // (-0.5 + 0.25) · 2 = -0.5 → -0
      {99, 19, 1},      // (-0.5 - 0.25) · 2 = -1.5 → -2
      {97, 21, 1},      // (-1.5 + 0.25) · 2 = -2.5 → -2 (tie to even)
      {0, 0, 0},        // (-50 - 5) · 2 = -110, + 3 → clamped to 0
      {255, 255, 255},  // (77.5 + 58.75) · 2 = 272.5 → 272, + 3 → clamped to 255
  };
  for (const Case& c : cases) {
    uint8_t y = static_cast<uint8_t>(c.y);
    const uint8_t r = static_cast<uint8_t>(c.r);
    ukernels::q8_vadd_scalar(1, 1, &y, 1, &r, 1, p.type, p.mode, add);
    EXPECT_EQ(int{y}, c.want) << "y " << c.y << ", r " << c.r;
    EXPECT_EQ(reference_float(p, c.y, c.r), c.want) << "y " << c.y << ", r " << c.r;
  }
  // Ties to even: (a + b) / so exactly 2.5 → 2 and 3.5 → 4 (int8, all zero points 0, sy = sr = 1,
  // so = 2), and -2.5 → -2, -3.5 → -4.
  AddParams q;
  q.type = OutputType::kInt8;
  q.sy = q.sr = 1.0;
  q.so = 2.0;
  const ResidualAdd tie = make_add(q);
  const int32_t ys[] = {3, 4, -3, -4, 1, 127, -128};
  const int32_t rs[] = {2, 3, -2, -3, 0, 127, -128};
  const int32_t want[] = {2, 4, -2, -4, 0, 127, -128};
  for (int k = 0; k < 7; ++k) {
    int8_t y = static_cast<int8_t>(ys[k]);
    const int8_t r = static_cast<int8_t>(rs[k]);
    ukernels::q8_vadd_scalar(1, 1, &y, 1, &r, 1, q.type, q.mode, tie);
    EXPECT_EQ(int{y}, want[k]) << ys[k] << " + " << rs[k];
  }
}

TEST(ResidualAddScalar, FixedPointHandComputed) {
  // sy = sr = 1, so = 2, zero points 0: the input multipliers are 1/2 (M0 = 2^30, shift 0), so
  // each shifted input (d · 2^20) becomes d · 2^19; the output multiplier is 2 / (2^20 · 2) =
  // 2^-20 (M0 = 2^30, shift -19): the high multiply halves the sum to (dy + dr) · 2^18 and the
  // rounding shift by 19 gives (dy + dr) / 2 rounded half away from zero.
  for (OutputType type : {OutputType::kInt8, OutputType::kInt16}) {
    AddParams p;
    p.type = type;
    p.mode = RequantMode::kFixedPoint;
    p.sy = p.sr = 1.0;
    p.so = 2.0;
    const ResidualAdd add = make_add(p);
    EXPECT_EQ(add.layer_multiplier, 1 << 30);
    EXPECT_EQ(add.layer_shift, 0);
    EXPECT_EQ(add.other_multiplier, 1 << 30);
    EXPECT_EQ(add.other_shift, 0);
    EXPECT_EQ(add.output_multiplier, 1 << 30);
    // int16: left shift 15, output multiplier 2 / (2^15 · 2) = 2^-15 → shift -14; the same
    // rounding follows.
    EXPECT_EQ(add.output_shift, type == OutputType::kInt16 ? -14 : -19);
    const int32_t ys[] = {3, 4, -3, -4, 1, -1, 2};
    const int32_t rs[] = {2, 3, -2, -3, 0, 0, 2};
    const int32_t want[] = {3, 4, -3, -4, 1, -1, 2};  // 2.5, 3.5, -2.5, -3.5, 0.5, -0.5, 2
    for (int k = 0; k < 7; ++k) {
      int32_t got;
      if (type == OutputType::kInt8) {
        int8_t y = static_cast<int8_t>(ys[k]);
        const int8_t r = static_cast<int8_t>(rs[k]);
        ukernels::q8_vadd_scalar(1, 1, &y, 1, &r, 1, type, p.mode, add);
        got = y;
      } else {
        int16_t y = static_cast<int16_t>(ys[k]);
        const int16_t r = static_cast<int16_t>(rs[k]);
        ukernels::q8_vadd_scalar(1, 1, &y, 1, &r, 1, type, p.mode, add);
        got = y;
      }
      EXPECT_EQ(got, want[k]) << type_name(type) << ": " << ys[k] << " + " << rs[k];
      EXPECT_EQ(reference_fixed_point(p, tflite_prepare(p), ys[k], rs[k]), want[k]);
    }
  }
  // Unequal scales (uint8, zy = 10, zr = 200, zo = 50): sy = 0.5, sr = 0.25, so twice the larger
  // is 1 and the input multipliers are 1/2 (2^30, shift 0) and 1/4 (2^30, shift -1): with
  // dy = y - zy, dr = r - zr the rescaled inputs are dy · 2^19 and dr · 2^18 exactly.
  //   so = 0.25: output real 1 / (2^20 · 0.25) = 2^-18 (2^30, shift -17): (2·dy + dr) · 2^18 →
  //              2·dy + dr, exact (0.5·dy + 0.25·dr in steps of 0.25).
  //   so = 0.5:  output real 2^-19 (2^30, shift -18): (2·dy + dr) / 2, half away from zero.
  struct Case {
    double so;
    int32_t dy, dr, want;
  };
  const Case cases[] = {
      {0.25, 3, 5, 11},   {0.25, 1, -1, 1}, {0.25, -1, 1, -1},
      {0.25, -7, 2, -12}, {0.5, 1, -1, 1},  // 0.5 → 1 (float family: 0)
      {0.5, -1, 1, -1},                     // -0.5 → -1 (float family: -0)
      {0.5, 1, 1, 2},                       // 1.5 → 2
      {0.5, -1, -1, -2},                    // -1.5 → -2
      {0.5, 2, 1, 3},                       // 2.5 → 3 (float family: 2)
      {0.5, 3, 0, 3},                       // 3
  };
  for (const Case& c : cases) {
    AddParams u;
    u.type = OutputType::kUint8;
    u.mode = RequantMode::kFixedPoint;
    u.sy = 0.5;
    u.sr = 0.25;
    u.so = c.so;
    u.zy = 10;
    u.zr = 200;
    u.zo = 50;
    const ResidualAdd add = make_add(u);
    EXPECT_EQ(add.layer_multiplier, 1 << 30);
    EXPECT_EQ(add.layer_shift, 0);
    EXPECT_EQ(add.other_multiplier, 1 << 30);
    EXPECT_EQ(add.other_shift, -1);
    EXPECT_EQ(add.output_multiplier, 1 << 30);
    EXPECT_EQ(add.output_shift, c.so == 0.25 ? -17 : -18);
    uint8_t y = static_cast<uint8_t>(u.zy + c.dy);
    const uint8_t r = static_cast<uint8_t>(u.zr + c.dr);
    ukernels::q8_vadd_scalar(1, 1, &y, 1, &r, 1, u.type, u.mode, add);
    EXPECT_EQ(int{y}, u.zo + c.want) << "so " << c.so << ", dy " << c.dy << ", dr " << c.dr;
  }
}

// --- 3. make_residual_add -----------------------------------------------------------------------

TEST(ResidualAddSetup, RejectsBadParameters) {
  ResidualAdd add;
  const auto make = [&](OutputType t, RequantMode m, double sy, int32_t zy, double sr, int32_t zr, double so,
                        int32_t zo, double lo,
                        double hi) { make_residual_add(t, m, sy, zy, sr, zr, so, zo, lo, hi, &add); };
  for (RequantMode m : {RequantMode::kFloat, RequantMode::kFixedPoint}) {
    EXPECT_NO_THROW(make(OutputType::kUint8, m, 0.1, 0, 0.2, 255, 0.3, 128, -kInf, kInf));
    EXPECT_THROW(make(OutputType::kFloat, m, 0.1, 0, 0.2, 0, 0.3, 0, -kInf, kInf), std::invalid_argument);
    // Non-positive or non-finite, and positive scales that float32 (or its reciprocal) cannot
    // hold: they would silently become 0 or infinite in the kernels.
    for (double bad : {0.0, -0.1, -kInf, kInf, static_cast<double>(NAN), 1e-39, 1e-50, 1e39}) {
      EXPECT_THROW(make(OutputType::kInt8, m, bad, 0, 0.2, 0, 0.3, 0, -kInf, kInf), std::invalid_argument) << bad;
      EXPECT_THROW(make(OutputType::kInt8, m, 0.1, 0, bad, 0, 0.3, 0, -kInf, kInf), std::invalid_argument) << bad;
      EXPECT_THROW(make(OutputType::kInt8, m, 0.1, 0, 0.2, 0, bad, 0, -kInf, kInf), std::invalid_argument) << bad;
    }
    for (OutputType t : {OutputType::kUint8, OutputType::kInt8, OutputType::kInt16}) {
      int32_t lo, hi;
      type_bounds(t, &lo, &hi);
      SCOPED_TRACE(type_name(t));
      EXPECT_NO_THROW(make(t, m, 0.1, lo, 0.2, hi, 0.3, lo, -kInf, kInf));
      EXPECT_NO_THROW(make(t, m, 0.1, hi, 0.2, lo, 0.3, hi, -kInf, kInf));
      for (int32_t bad : {lo - 1, hi + 1}) {
        EXPECT_THROW(make(t, m, 0.1, bad, 0.2, 0, 0.3, 0, -kInf, kInf), std::invalid_argument) << bad;
        EXPECT_THROW(make(t, m, 0.1, 0, 0.2, bad, 0.3, 0, -kInf, kInf), std::invalid_argument) << bad;
        EXPECT_THROW(make(t, m, 0.1, 0, 0.2, 0, 0.3, bad, -kInf, kInf), std::invalid_argument) << bad;
      }
    }
    EXPECT_THROW(make(OutputType::kInt8, m, 0.1, 0, 0.2, 0, 0.3, 0, 1.0, 0.0), std::invalid_argument);
    EXPECT_THROW(make(OutputType::kInt8, m, 0.1, 0, 0.2, 0, 0.3, 0, NAN, 1.0), std::invalid_argument);
    EXPECT_THROW(make(OutputType::kInt8, m, 0.1, 0, 0.2, 0, 0.3, 0, 0.0, NAN), std::invalid_argument);
    EXPECT_NO_THROW(make(OutputType::kInt8, m, 0.1, 0, 0.2, 0, 0.3, 0, 1.0, 1.0));
  }
}

TEST(ResidualAddSetup, ActivationBounds) {
  const auto bounds = [](OutputType t, RequantMode m, double so, int32_t zo, double lo, double hi) {
    ResidualAdd add;
    make_residual_add(t, m, 0.1, 0, 0.2, 0, so, zo, lo, hi, &add);
    return std::make_pair(add.qmin, add.qmax);
  };
  using P = std::pair<int32_t, int32_t>;
  for (RequantMode m : {RequantMode::kFloat, RequantMode::kFixedPoint}) {
    SCOPED_TRACE(mode_name(m));
    EXPECT_EQ(bounds(OutputType::kUint8, m, 0.1, 10, -kInf, kInf), P(0, 255));
    EXPECT_EQ(bounds(OutputType::kInt8, m, 0.1, 10, -kInf, kInf), P(-128, 127));
    EXPECT_EQ(bounds(OutputType::kInt16, m, 0.1, 10, -kInf, kInf), P(-32768, 32767));
    // ReLU: the output zero point, whatever it is.
    for (int32_t zo : {0, 10, 128, 255}) EXPECT_EQ(bounds(OutputType::kUint8, m, 0.1, zo, 0.0, kInf), P(zo, 255));
    for (int32_t zo : {-128, -5, 0, 127}) EXPECT_EQ(bounds(OutputType::kInt8, m, 0.37, zo, 0.0, kInf), P(zo, 127));
    for (int32_t zo : {-32768, 7, 32767}) EXPECT_EQ(bounds(OutputType::kInt16, m, 1e-3, zo, 0.0, kInf), P(zo, 32767));
    // ReLU6 at scale 0.1: zo + 60; past the type: cut.
    EXPECT_EQ(bounds(OutputType::kUint8, m, 0.1, 10, 0.0, 6.0), P(10, 70));
    EXPECT_EQ(bounds(OutputType::kInt8, m, 0.1, -100, 0.0, 6.0), P(-100, -40));
    EXPECT_EQ(bounds(OutputType::kInt8, m, 0.01, 0, 0.0, 6.0), P(0, 127));
    EXPECT_EQ(bounds(OutputType::kInt16, m, 1e-3, 0, -1.0, 1.0), P(-1000, 1000));
    // A range inside one step collapses to one level; one past the type's range to its end.
    EXPECT_EQ(bounds(OutputType::kUint8, m, 1.0, 0, 0.6, 0.7), P(1, 1));
    EXPECT_EQ(bounds(OutputType::kUint8, m, 0.01, 0, 10.0, 20.0), P(255, 255));
  }
  // At a tie the families differ: 1.25 / 0.5 = 2.5 → 2 (ties to even) or 3 (away from zero).
  EXPECT_EQ(bounds(OutputType::kInt8, RequantMode::kFloat, 0.5, 0, -1.25, 1.25), P(-2, 2));
  EXPECT_EQ(bounds(OutputType::kInt8, RequantMode::kFixedPoint, 0.5, 0, -1.25, 1.25), P(-3, 3));
}

TEST(ResidualAddSetup, FieldsFollowTheSpec) {
  std::mt19937 rng(99);
  for (int iter = 0; iter < 300; ++iter) {
    const AddParams p = random_add_params(rng);
    SCOPED_TRACE(p.describe());
    ResidualAdd add;
    const int8_t marker = 0;
    add.other = &marker;  // not make_residual_add()'s to fill
    add.other_stride = 1234;
    make_residual_add(p.type, p.mode, p.sy, p.zy, p.sr, p.zr, p.so, p.zo, p.act_min, p.act_max, &add);
    EXPECT_EQ(add.other, &marker);
    EXPECT_EQ(add.other_stride, 1234u);
    EXPECT_EQ(float_bits(add.layer_scale), float_bits(static_cast<float>(p.sy)));
    EXPECT_EQ(float_bits(add.other_scale), float_bits(static_cast<float>(p.sr)));
    EXPECT_EQ(float_bits(add.inv_output_scale), float_bits(static_cast<float>(1.0 / p.so)));
    EXPECT_EQ(add.layer_zero_point, p.zy);
    EXPECT_EQ(add.other_zero_point, p.zr);
    EXPECT_EQ(add.output_zero_point, p.zo);
    const auto [qmin, qmax] = reference_bounds(p);
    EXPECT_EQ(add.qmin, qmin);
    EXPECT_EQ(add.qmax, qmax);
    if (p.mode == RequantMode::kFixedPoint) {
      const TfliteAdd t = tflite_prepare(p);
      EXPECT_EQ(add.left_shift, t.left_shift);
      EXPECT_EQ(add.layer_multiplier, t.m1);
      EXPECT_EQ(add.layer_shift, t.s1);
      EXPECT_EQ(add.other_multiplier, t.m2);
      EXPECT_EQ(add.other_shift, t.s2);
      EXPECT_EQ(add.output_multiplier, t.mo);
      EXPECT_EQ(add.output_shift, t.so);
    }
    if (HasFailure()) return;
  }
}

// --- 4. the drivers -----------------------------------------------------------------------------

// A residual operand of `rows` x `cols` (stride `stride`) ending at an unmapped page.
struct Residual {
  AddParams p;
  size_t stride = 0;
  std::unique_ptr<Guarded<uint8_t>> data;
  ResidualAdd add;
};

// The add after a layer with output (type, mode, sy, zy): the residual's and the output's
// parameters around the layer's, any activation.
void make_residual(std::mt19937& rng, OutputType type, RequantMode mode, double sy, int32_t zy, size_t rows,
                   size_t cols, Residual* res) {
  AddParams& p = res->p;
  p.type = type;
  p.mode = mode;
  p.sy = sy;
  p.zy = zy;
  p.sr = sy * log_uniform(rng, 0.2, 5);
  p.so = std::max(p.sy, p.sr) * log_uniform(rng, 0.5, 4);
  p.zr = random_zero_point(rng, type);
  p.zo = random_zero_point(rng, type);
  random_activation(rng, &p);
  res->stride = cols + (uniform_int<int>(rng, 0, 2) == 0 ? 0 : uniform_int<size_t>(rng, 1, 9));
  const size_t elem = element_size(type);
  res->data = std::make_unique<Guarded<uint8_t>>(Tile::bytes(rows, cols, res->stride, elem));
  for (size_t b = 0; b < res->data->size(); ++b) res->data->data()[b] = static_cast<uint8_t>(b * 29 + 3);
  for (size_t i = 0; i < rows; ++i) {
    for (size_t j = 0; j < cols; ++j) {
      store_q(res->data->data(), i * res->stride + j, type, random_value(rng, type, p.zr));
    }
  }
  res->add = make_add(p);
  res->add.other = res->data->data();
  res->add.other_stride = res->stride;
}

::testing::AssertionResult same_elements(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                                         OutputType t, size_t stride) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size mismatch";
  const size_t elem = element_size(t);
  for (size_t e = 0; e < got.size() / elem; ++e) {
    if (std::memcmp(&got[e * elem], &want[e * elem], elem) != 0) {
      return ::testing::AssertionFailure()
             << "first difference at row " << e / stride << ", column " << e % stride << ": got "
             << load_q(got.data(), e, t) << ", want " << load_q(want.data(), e, t);
    }
  }
  return ::testing::AssertionSuccess();
}

// qgemm(): with a residual, against qgemm() without one followed by the scalar add.
struct GemmCase {
  int64_t m = 0, n = 0, k = 0;
  bool a_signed = false;
  int32_t za = 0;
  std::vector<uint8_t> a;
  bool w_unsigned = false;
  std::vector<uint8_t> w;
  std::vector<int32_t> wzp, bias;
  std::vector<float> wscale;
  double sa = 0.02;
  OutputType type = OutputType::kUint8;
  RequantMode mode = RequantMode::kFloat;
  double sy = 1;
  int32_t zy = 0;
  double layer_min = -kInf, layer_max = kInf;
  size_t out_stride = 0;

  std::string describe() const {
    std::ostringstream s;
    s << "M " << m << ", N " << n << ", K " << k << ", A " << (a_signed ? "int8" : "uint8") << " za " << za << ", W "
      << (w_unsigned ? "uint8" : "int8") << ", out stride " << out_stride << ", layer activation [" << layer_min << ", "
      << layer_max << "]";
    return s.str();
  }
};

class ResidualAddQgemmTest : public IsaTest {};

TEST_P(ResidualAddQgemmTest, MatchesUnfusedOnRandomShapes) {
  IsaOverride force(GetParam());
  std::mt19937 rng(31 + static_cast<int>(GetParam()));
  const int64_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 17, 24, 25};
  const int64_t ns[] = {1, 3, 15, 16, 17, 31, 32, 33, 47, 48, 50, 64, 70, 97, 144};
  const int64_t ks[] = {1, 3, 4, 8, 17, 33, 64, 100};
  for (int iter = 0; iter < 60 * kScale && !HasFailure(); ++iter) {
    GemmCase c;
    c.m = pick(rng, ms);
    c.n = pick(rng, ns);
    c.k = pick(rng, ks);
    c.a_signed = uniform_int<int>(rng, 0, 1) == 1;
    c.za = c.a_signed ? uniform_int<int32_t>(rng, -128, 127) : uniform_int<int32_t>(rng, 0, 255);
    c.a.resize(static_cast<size_t>(c.m * c.k));
    for (auto& x : c.a) x = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
    c.w_unsigned = uniform_int<int>(rng, 0, 1) == 1;
    c.w.resize(static_cast<size_t>(c.n * c.k));
    for (auto& x : c.w) x = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
    const size_t channels = uniform_int<int>(rng, 0, 3) == 0 ? 1 : static_cast<size_t>(c.n);
    c.wzp.resize(channels);
    for (auto& z : c.wzp) {
      z = c.w_unsigned ? uniform_int<int32_t>(rng, 0, 255)
                       : (uniform_int<int>(rng, 0, 1) ? 0 : uniform_int<int32_t>(rng, -128, 127));
    }
    c.wscale.resize(channels);
    for (auto& s : c.wscale) s = log_uniform(rng, 0.005, 0.05);
    if (uniform_int<int>(rng, 0, 3) != 0) {
      c.bias.resize(static_cast<size_t>(c.n));
      for (auto& b : c.bias) b = uniform_int<int32_t>(rng, -20000, 20000);
    }
    c.sa = log_uniform(rng, 1e-3, 1e-1);
    c.type = static_cast<OutputType>(uniform_int<int>(rng, 0, 2));
    c.mode = uniform_int<int>(rng, 0, 1) == 0 ? RequantMode::kFloat : RequantMode::kFixedPoint;
    c.out_stride = static_cast<size_t>(c.n) + uniform_int<size_t>(rng, 0, 5);
    if (uniform_int<int>(rng, 0, 2) == 0) c.layer_min = 0.0;  // a ReLU before the add
    const PackedWeights packed = pack_weights(c.w.data(), c.w_unsigned, c.n, c.k, c.wzp.data(), c.wzp.size());
    GemmActivations act;
    act.data = c.a.data();
    act.is_signed = c.a_signed;
    act.zero_point = c.za;
    act.stride = static_cast<size_t>(c.k);
    const int32_t* bias = c.bias.empty() ? nullptr : c.bias.data();

    // The layer's output scale from its real outputs (float output stage): most outputs in range.
    {
      OutputStageStorage fst;
      make_output_stage(OutputType::kFloat, RequantMode::kFloat, c.sa, c.wscale.data(), c.wscale.size(), c.n, 1.0, 0,
                        -kInf, kInf, &fst);
      std::vector<float> real(static_cast<size_t>(c.m * c.n));
      qgemm(act, 0, c.m, packed.view(), 0, c.n, bias, fst.stage, real.data(), static_cast<size_t>(c.n));
      float largest = 0;
      for (float v : real) largest = std::max(largest, std::fabs(v));
      const double levels = c.type == OutputType::kInt16 ? 20000.0 : 100.0;
      c.sy = (largest > 0 ? largest / levels : 0.01) * log_uniform(rng, 0.5, 2);
    }
    c.zy = random_zero_point(rng, c.type);
    OutputStageStorage st;
    make_output_stage(c.type, c.mode, c.sa, c.wscale.data(), c.wscale.size(), c.n, c.sy, c.zy, c.layer_min, c.layer_max,
                      &st);
    Residual res;
    make_residual(rng, c.type, c.mode, c.sy, c.zy, static_cast<size_t>(c.m), static_cast<size_t>(c.n), &res);
    SCOPED_TRACE(::testing::Message() << "iteration " << iter << ": " << c.describe() << "; add " << res.p.describe()
                                      << ", residual stride " << res.stride);

    const size_t elem = element_size(c.type);
    const size_t out_bytes = static_cast<size_t>(c.m) * c.out_stride * elem;
    const std::vector<uint8_t> residual_before = res.data->to_vector();
    std::vector<uint8_t> want(out_bytes, 0xA5);
    qgemm(act, 0, c.m, packed.view(), 0, c.n, bias, st.stage, want.data(), c.out_stride);
    ukernels::q8_vadd_scalar(static_cast<size_t>(c.m), static_cast<size_t>(c.n), want.data(), c.out_stride,
                             res.data->data(), res.stride, c.type, c.mode, res.add);

    OutputStage fused = st.stage;
    fused.residual = &res.add;
    // One call.
    std::vector<uint8_t> got(out_bytes, 0xA5);
    qgemm(act, 0, c.m, packed.view(), 0, c.n, bias, fused, got.data(), c.out_stride);
    ASSERT_TRUE(same_elements(got, want, c.type, c.out_stride)) << "one call";
    // Four calls: rows split at mcut, channels at a multiple of 16.
    const int64_t mcut = uniform_int<int64_t>(rng, 0, c.m);
    const int64_t ncut = std::min<int64_t>(c.n, 16 * uniform_int<int64_t>(rng, 0, (c.n + 15) / 16));
    std::fill(got.begin(), got.end(), 0xA5);
    for (auto [m0, m1] : {std::pair<int64_t, int64_t>{0, mcut}, {mcut, c.m}}) {
      for (auto [n0, n1] : {std::pair<int64_t, int64_t>{ncut, c.n}, {0, ncut}}) {
        qgemm(act, m0, m1, packed.view(), n0, n1, bias, fused, got.data(), c.out_stride);
      }
    }
    ASSERT_TRUE(same_elements(got, want, c.type, c.out_stride)) << "split at row " << mcut << ", channel " << ncut;
    // Rows [m0, m1) with m0 > 0 only, channels in two calls: the other rows untouched.
    if (c.m >= 2) {
      const int64_t m0 = uniform_int<int64_t>(rng, 1, c.m - 1);
      const int64_t m1 = uniform_int<int64_t>(rng, m0 + 1, c.m);
      std::fill(got.begin(), got.end(), 0xA5);
      qgemm(act, m0, m1, packed.view(), 0, ncut, bias, fused, got.data(), c.out_stride);
      qgemm(act, m0, m1, packed.view(), ncut, c.n, bias, fused, got.data(), c.out_stride);
      std::vector<uint8_t> want_rows(out_bytes, 0xA5);
      const size_t row_bytes = c.out_stride * elem;
      std::copy(want.begin() + static_cast<ptrdiff_t>(m0 * row_bytes),
                want.begin() + static_cast<ptrdiff_t>(m1 * row_bytes),
                want_rows.begin() + static_cast<ptrdiff_t>(m0 * row_bytes));
      ASSERT_TRUE(same_elements(got, want_rows, c.type, c.out_stride))
          << "rows [" << m0 << ", " << m1 << "), channels split at " << ncut;
    }
    ASSERT_TRUE(res.data->to_vector() == residual_before) << "the residual operand was modified";
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, ResidualAddQgemmTest, ::testing::ValuesIn(architecture_isas()), isa_param_name);

// qconv2d(): with a residual, against qconv2d() without one followed by the scalar add.
struct ConvShape {
  int64_t batch, in_h, in_w, in_c, out_c, kernel, stride, pad, groups;
};

class ResidualAddQconvTest : public IsaTest {
 protected:
  void check(std::mt19937& rng, const ConvShape& s, ConvKind expected_kind) {
    std::ostringstream what;
    what << "N " << s.batch << " H " << s.in_h << " W " << s.in_w << " C " << s.in_c << " OC " << s.out_c << " k "
         << s.kernel << " s " << s.stride << " p " << s.pad << " g " << s.groups;
    SCOPED_TRACE(what.str());
    IsaOverride force(GetParam());
    ConvWeightShape shape;
    shape.out_channels = s.out_c;
    shape.group_in_channels = s.in_c / s.groups;
    shape.kernel_h = shape.kernel_w = s.kernel;
    shape.groups = s.groups;
    Conv2dGeometry geo;
    geo.batch = s.batch;
    geo.in_h = s.in_h;
    geo.in_w = s.in_w;
    geo.stride_h = geo.stride_w = s.stride;
    geo.pad_h = geo.pad_w = s.pad;
    const int64_t out_h = conv_output_size(s.in_h, s.kernel, s.stride, s.pad, 1);
    const int64_t out_w = conv_output_size(s.in_w, s.kernel, s.stride, s.pad, 1);
    const int64_t pixels = s.batch * out_h * out_w;
    ASSERT_GT(pixels, 0);

    const bool x_signed = uniform_int<int>(rng, 0, 1) == 1;
    const int32_t za = x_signed ? uniform_int<int32_t>(rng, -128, 127) : uniform_int<int32_t>(rng, 0, 255);
    std::vector<uint8_t> input(static_cast<size_t>(s.batch * s.in_h * s.in_w * s.in_c));
    for (auto& x : input) x = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
    const bool w_unsigned = uniform_int<int>(rng, 0, 1) == 1;
    std::vector<uint8_t> weight(static_cast<size_t>(s.out_c * shape.reduction()));
    for (auto& x : weight) x = static_cast<uint8_t>(uniform_int<int>(rng, 0, 255));
    std::vector<int32_t> wzp(static_cast<size_t>(s.out_c));
    for (auto& z : wzp) z = w_unsigned ? uniform_int<int32_t>(rng, 0, 255) : uniform_int<int32_t>(rng, -10, 10);
    std::vector<float> wscale(static_cast<size_t>(s.out_c));
    for (auto& v : wscale) v = log_uniform(rng, 0.005, 0.05);
    std::vector<int32_t> bias(static_cast<size_t>(s.out_c));
    for (auto& b : bias) b = uniform_int<int32_t>(rng, -20000, 20000);
    const ConvWeights w = pack_conv_weights(weight.data(), w_unsigned, shape, wzp.data(), wzp.size());
    ASSERT_EQ(w.view().kind, expected_kind);
    const ConvActivations x{input.data(), x_signed, za};
    const double sa = log_uniform(rng, 1e-3, 1e-1);
    const OutputType type = static_cast<OutputType>(uniform_int<int>(rng, 0, 2));
    const RequantMode mode = uniform_int<int>(rng, 0, 1) == 0 ? RequantMode::kFloat : RequantMode::kFixedPoint;
    const size_t oc = static_cast<size_t>(s.out_c);

    double sy;
    {
      OutputStageStorage fst;
      make_output_stage(OutputType::kFloat, RequantMode::kFloat, sa, wscale.data(), wscale.size(), s.out_c, 1.0, 0,
                        -kInf, kInf, &fst);
      std::vector<float> real(static_cast<size_t>(pixels) * oc);
      qconv2d(x, geo, w.view(), bias.data(), fst.stage, 0, pixels, 0, s.out_c, real.data());
      float largest = 0;
      for (float v : real) largest = std::max(largest, std::fabs(v));
      const double levels = type == OutputType::kInt16 ? 20000.0 : 100.0;
      sy = (largest > 0 ? largest / levels : 0.01) * log_uniform(rng, 0.5, 2);
    }
    const int32_t zy = random_zero_point(rng, type);
    OutputStageStorage st;
    make_output_stage(type, mode, sa, wscale.data(), wscale.size(), s.out_c, sy, zy,
                      uniform_int<int>(rng, 0, 2) == 0 ? 0.0 : -kInf, kInf, &st);
    Residual res;
    make_residual(rng, type, mode, sy, zy, static_cast<size_t>(pixels), oc, &res);
    SCOPED_TRACE(::testing::Message() << (x_signed ? "int8" : "uint8") << " input za " << za << ", "
                                      << qconv_kernel_name(w.view()) << "; add " << res.p.describe()
                                      << ", residual stride " << res.stride);

    const size_t elem = element_size(type);
    const size_t out_bytes = static_cast<size_t>(pixels) * oc * elem;
    const std::vector<uint8_t> residual_before = res.data->to_vector();
    Buffer<uint8_t> want(out_bytes, 0, 0xA5);
    qconv2d(x, geo, w.view(), bias.data(), st.stage, 0, pixels, 0, s.out_c, want.data());
    ukernels::q8_vadd_scalar(static_cast<size_t>(pixels), oc, want.data(), oc, res.data->data(), res.stride, type, mode,
                             res.add);
    const std::vector<uint8_t> want_bytes(want.data(), want.data() + out_bytes);

    OutputStage fused = st.stage;
    fused.residual = &res.add;
    std::vector<std::vector<int64_t>> splits = {{pixels}};
    if (pixels > 1) {
      const int64_t cut = uniform_int<int64_t>(rng, 1, pixels - 1);
      splits.push_back({cut, pixels});
      std::vector<int64_t> three = {uniform_int<int64_t>(rng, 0, pixels), uniform_int<int64_t>(rng, 0, pixels), pixels};
      std::sort(three.begin(), three.end());
      splits.push_back(three);
    }
    for (const auto& ends : splits) {
      Buffer<uint8_t> got(out_bytes, 0, 0xA5);
      int64_t begin = 0;
      std::ostringstream desc;
      for (int64_t end : ends) {
        // Later ranges first: each call must index the residual from its own pixels.
        desc << "[" << begin << ", " << end << ") ";
        begin = end;
      }
      for (size_t r = ends.size(); r-- > 0;) {
        const int64_t b = r == 0 ? 0 : ends[r - 1];
        qconv2d(x, geo, w.view(), bias.data(), fused, b, ends[r], 0, s.out_c, got.data());
      }
      EXPECT_TRUE(got.guard_intact()) << "wrote outside the output";
      ASSERT_TRUE(same_elements(std::vector<uint8_t>(got.data(), got.data() + out_bytes), want_bytes, type, oc))
          << "pixel ranges " << desc.str();
    }
    // Channel ranges (as the threads take them when they split a wide layer's channels), the later
    // first: each call must index the residual and the per-channel terms from its own channels.
    if (qconv2d_splits_channels(w.view()) && s.out_c > 16) {
      const int64_t cut = 16 * uniform_int<int64_t>(rng, 1, (s.out_c - 1) / 16);
      Buffer<uint8_t> got(out_bytes, 0, 0xA5);
      qconv2d(x, geo, w.view(), bias.data(), fused, 0, pixels, cut, s.out_c, got.data());
      qconv2d(x, geo, w.view(), bias.data(), fused, 0, pixels, 0, cut, got.data());
      EXPECT_TRUE(got.guard_intact()) << "wrote outside the output";
      ASSERT_TRUE(same_elements(std::vector<uint8_t>(got.data(), got.data() + out_bytes), want_bytes, type, oc))
          << "channel ranges [0, " << cut << ") [" << cut << ", " << s.out_c << ")";
    }
    ASSERT_TRUE(res.data->to_vector() == residual_before) << "the residual operand was modified";
  }
};

TEST_P(ResidualAddQconvTest, Pointwise) {
  std::mt19937 rng(101);
  for (int iter = 0; iter < 8 * kScale && !HasFailure(); ++iter) {
    const ConvShape s{uniform_int<int64_t>(rng, 1, 2),
                      uniform_int<int64_t>(rng, 1, 9),
                      uniform_int<int64_t>(rng, 1, 9),
                      uniform_int<int64_t>(rng, 1, 40),
                      uniform_int<int64_t>(rng, 1, 70),
                      1,
                      1,
                      0,
                      1};
    check(rng, s, ConvKind::kGemm);
  }
  check(rng, {1, 18, 18, 8, 33, 1, 1, 0, 1}, ConvKind::kGemm);  // 324 pixels
}

TEST_P(ResidualAddQconvTest, Conv3x3) {
  std::mt19937 rng(202);
  for (int iter = 0; iter < 6 * kScale && !HasFailure(); ++iter) {
    const ConvShape s{uniform_int<int64_t>(rng, 1, 2),
                      uniform_int<int64_t>(rng, 3, 9),
                      uniform_int<int64_t>(rng, 3, 9),
                      uniform_int<int64_t>(rng, 1, 16),
                      uniform_int<int64_t>(rng, 1, 50),
                      3,
                      uniform_int<int64_t>(rng, 1, 2),
                      1,
                      1};
    check(rng, s, ConvKind::kGemm);
  }
  check(rng, {1, 18, 18, 4, 20, 3, 1, 1, 1}, ConvKind::kGemm);  // two im2col tiles
}

TEST_P(ResidualAddQconvTest, Grouped) {
  std::mt19937 rng(303);
  for (int iter = 0; iter < 6 * kScale && !HasFailure(); ++iter) {
    const int64_t cg = uniform_int<int64_t>(rng, 1, 8), ng = uniform_int<int64_t>(rng, 1, 24);
    const ConvShape s{uniform_int<int64_t>(rng, 1, 2),
                      uniform_int<int64_t>(rng, 3, 9),
                      uniform_int<int64_t>(rng, 3, 9),
                      2 * cg,
                      2 * ng,
                      3,
                      1,
                      1,
                      2};
    check(rng, s, ConvKind::kGemm);
  }
  check(rng, {1, 18, 18, 6, 34, 3, 1, 1, 2}, ConvKind::kGemm);  // two im2col tiles, 17 per group
  check(rng, {2, 5, 5, 4, 6, 1, 1, 0, 2}, ConvKind::kGemm);     // 1x1 grouped: im2col path
}

TEST_P(ResidualAddQconvTest, Depthwise) {
  std::mt19937 rng(404);
  for (int iter = 0; iter < 8 * kScale && !HasFailure(); ++iter) {
    const int64_t c = uniform_int<int64_t>(rng, 1, 70);
    const ConvShape s{uniform_int<int64_t>(rng, 1, 2),
                      uniform_int<int64_t>(rng, 2, 12),
                      uniform_int<int64_t>(rng, 2, 12),
                      c,
                      c,
                      3,
                      uniform_int<int64_t>(rng, 1, 2),
                      1,
                      c};
    check(rng, s, ConvKind::kDepthwise);
  }
  check(rng, {1, 20, 20, 16, 16, 3, 1, 1, 16}, ConvKind::kDepthwise);
  check(rng, {1, 4, 150, 8, 8, 3, 1, 1, 8}, ConvKind::kDepthwise);  // rows past one tile
}

INSTANTIATE_TEST_SUITE_P(Isa, ResidualAddQconvTest, ::testing::ValuesIn(architecture_isas()), isa_param_name);

}  // namespace
