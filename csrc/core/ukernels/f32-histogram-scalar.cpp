// Scalar reference: histc-compatible binning of a float32 buffer into integer counts.
#include <cmath>

#include "scalar_common.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

size_t f32_histogram_scalar(const float* x, size_t n, float lo, float hi, int64_t bins, uint32_t* counts) {
  size_t nans = 0;
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (v >= lo && v <= hi) {
      ++counts[histogram_bin(v, lo, hi, bins)];
    } else if (std::isnan(v)) {
      ++nans;
    }
  }
  return nans;
}

}  // namespace ukernels
}  // namespace circle_quant
