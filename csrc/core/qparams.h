// Scale and zero point from an observed range, as torchao's observers compute them.
#pragma once

#include <cstdint>

namespace circle_quant {

struct QParams {
  float scale;
  int64_t zero_point;
};

struct QParamsConfig {
  int64_t quant_min;
  int64_t quant_max;
  bool symmetric;
  // Zero point of symmetric schemes: 0 for signed types; torchao uses 128 for uint8 (the
  // midpoint (quant_min + quant_max) / 2 for a user range) and 32768 for uint16.
  int64_t symmetric_zero_point;
  float eps;  // smallest scale allowed
};

// Throws std::invalid_argument when [min, max] cannot give parameters: never observed
// (min = +inf, max = -inf), NaN or Inf bounds, or min > max. The message says which.
QParams choose_qparams(float min, float max, const QParamsConfig& config);

}  // namespace circle_quant
