// choose_qparams against cases worked out by hand from torchao's formulas:
//   asymmetric: scale = max((max(max, 0) - min(min, 0)) / (qmax - qmin), eps),
//               zero_point = clamp(qmin - nearbyint(min(min, 0) / scale), qmin, qmax)
//   symmetric:  scale = max(max(-min(min, 0), max(max, 0)) / ((qmax - qmin) / 2), eps),
//               zero_point = the configured symmetric zero point
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/qparams.h"

namespace {

using circle_quant::choose_qparams;
using circle_quant::QParams;
using circle_quant::QParamsConfig;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kEps = FLT_EPSILON;  // torch.finfo(torch.float32).eps, the observers' default

QParamsConfig asymmetric(int64_t qmin, int64_t qmax, float eps = kEps) { return {qmin, qmax, false, 0, eps}; }
QParamsConfig symmetric(int64_t qmin, int64_t qmax, int64_t zero_point, float eps = kEps) {
  return {qmin, qmax, true, zero_point, eps};
}

void expect_qparams(float min, float max, const QParamsConfig& config, float scale, int64_t zero_point) {
  const QParams q = choose_qparams(min, max, config);
  EXPECT_EQ(q.scale, scale) << "range [" << min << ", " << max << "]";
  EXPECT_EQ(q.zero_point, zero_point) << "range [" << min << ", " << max << "]";
}

TEST(ChooseQParams, AsymmetricUint8) {
  // 4/255 = 0.01568...; -1 / scale = -63.75 rounds to -64.
  expect_qparams(-1.0f, 3.0f, asymmetric(0, 255), 4.0f / 255.0f, 64);
  // The float 1/255 lies just above 1/255, so -0.5 / scale = -127.49999 and rounds to -127.
  expect_qparams(-0.5f, 0.5f, asymmetric(0, 255), 1.0f / 255.0f, 127);
}

TEST(ChooseQParams, AsymmetricSignedRanges) {
  // int8: -1 / (4/255) = -63.75 -> -64, so zero_point = -128 + 64.
  expect_qparams(-1.0f, 3.0f, asymmetric(-128, 127), 4.0f / 255.0f, -64);
  // A user range [10, 20]: scale 4/10; -1 / 0.4f = -2.49999996 rounds to -2.
  expect_qparams(-1.0f, 3.0f, asymmetric(10, 20), 4.0f / 10.0f, 12);
}

TEST(ChooseQParams, Symmetric) {
  // Narrow int8 range [-127, 127]: half range 127, largest magnitude 2.
  expect_qparams(-2.0f, 1.0f, symmetric(-127, 127, 0), 2.0f / 127.0f, 0);
  // Full int8 range: half range 255 / 2 = 127.5.
  expect_qparams(-0.5f, 3.0f, symmetric(-128, 127, 0), 3.0f / 127.5f, 0);
  // uint8 keeps torchao's zero point 128.
  expect_qparams(0.0f, 3.0f, symmetric(0, 255, 128), 3.0f / 127.5f, 128);
}

TEST(ChooseQParams, RangeIsExtendedToIncludeZero) {
  // [2, 5] is treated as [0, 5] and [-5, -2] as [-5, 0].
  expect_qparams(2.0f, 5.0f, asymmetric(0, 255), 5.0f / 255.0f, 0);
  expect_qparams(-5.0f, -2.0f, asymmetric(0, 255), 5.0f / 255.0f, 255);
  expect_qparams(2.0f, 5.0f, symmetric(-127, 127, 0), 5.0f / 127.0f, 0);
  expect_qparams(-5.0f, -2.0f, symmetric(-127, 127, 0), 5.0f / 127.0f, 0);
}

TEST(ChooseQParams, EpsIsTheSmallestScale) {
  expect_qparams(0.0f, 0.0f, asymmetric(0, 255), kEps, 0);
  expect_qparams(0.0f, 0.0f, asymmetric(-128, 127), kEps, -128);
  expect_qparams(0.0f, 0.0f, symmetric(-127, 127, 0), kEps, 0);
  expect_qparams(0.0f, 0.0f, asymmetric(0, 255, 1e-3f), 1e-3f, 0);
  // A tiny range below eps: scale eps, and -1e-6 / 1e-3 rounds to 0.
  expect_qparams(-1e-6f, 1e-6f, asymmetric(0, 255, 1e-3f), 1e-3f, 0);
}

// Data entirely below zero puts the zero point at the top of the range, for every type width (the
// ranges are wide enough that eps does not raise the scale). For int32, qmin - nearbyint(min /
// scale) = -2^31 + 2^32 lies past int32, so the clamp, not an int32 overflow, must decide it.
TEST(ChooseQParams, ZeroPointIsClampedIntoTheRange) {
  const std::pair<int64_t, int64_t> ranges[] = {
      {0, 255}, {-128, 127}, {-32768, 32767}, {0, 65535}, {INT32_MIN, INT32_MAX}};
  for (const auto& [qmin, qmax] : ranges) {
    for (float min : {-1000.0f, -5000.0f}) {
      const QParams q = choose_qparams(min, 0.0f, asymmetric(qmin, qmax));
      EXPECT_EQ(q.zero_point, qmax) << "range [" << min << ", 0], quant range [" << qmin << ", " << qmax << "], scale "
                                    << q.scale;
    }
  }
}

void expect_invalid(float min, float max, const char* cause) {
  try {
    choose_qparams(min, max, asymmetric(0, 255));
    ADD_FAILURE() << "no error for [" << min << ", " << max << "]";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(cause), std::string::npos) << "[" << min << ", " << max << "]: " << e.what();
  }
}

TEST(ChooseQParams, InvalidRangesThrowNamingTheCause) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  expect_invalid(kInf, -kInf, "no data");
  expect_invalid(nan, 1.0f, "NaN");
  expect_invalid(-1.0f, nan, "NaN");
  expect_invalid(-kInf, 1.0f, "Inf");
  expect_invalid(-1.0f, kInf, "Inf");
  expect_invalid(-kInf, kInf, "Inf");
  expect_invalid(2.0f, 1.0f, "greater than");
}

// A scale of 0 would divide by zero (UB converting NaN to int64); Inf quantizes nothing.
TEST(ChooseQParams, ZeroOrInfiniteScalesThrow) {
  for (const auto& config : {asymmetric(0, 255, 0.0f), symmetric(-127, 127, 0, 0.0f)}) {
    try {
      choose_qparams(0.0f, 0.0f, config);
      ADD_FAILURE() << "expected std::invalid_argument for [0, 0] with eps = 0";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("gives scale 0"), std::string::npos) << e.what();
    }
  }
  try {
    choose_qparams(-3e38f, 3e38f, asymmetric(0, 255));
    ADD_FAILURE() << "expected std::invalid_argument for [-3e38, 3e38]";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("gives scale inf"), std::string::npos) << e.what();
  }
}

}  // namespace
