// Scalar reference: min and max of a float32 buffer, NaNs reported and left out.
#include <cmath>
#include <limits>

#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

MinMax f32_minmax_scalar(const float* x, size_t n) {
  MinMax r{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), false};
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isnan(v)) {
      r.has_nan = true;
      continue;
    }
    r.min = v < r.min ? v : r.min;
    r.max = v > r.max ? v : r.max;
  }
  return r;
}

}  // namespace ukernels
}  // namespace circle_quant
