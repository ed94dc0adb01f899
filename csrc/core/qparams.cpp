#include "qparams.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace circle_quant {
namespace {

// A scale of 0 (range [0, 0] with eps = 0) or Inf (a finite range wider than float32 can
// divide, e.g. ±3e38) cannot quantize anything, and 0 would divide by zero below.
void check_scale(float scale, float min, float max, const QParamsConfig& c) {
  if (scale > 0 && std::isfinite(scale)) return;
  throw std::invalid_argument(
      fmt::format("choose_qparams: the observed range [{}, {}] with eps = {} gives scale {}; a scale must be "
                  "finite and > 0 (use eps > 0 for an all-zero range; a range this wide does not fit "
                  "float32's quantization arithmetic)",
                  min, max, c.eps, scale));
}

}  // namespace

QParams choose_qparams(float min, float max, const QParamsConfig& c) {
  if (std::isinf(min) && min > 0 && std::isinf(max) && max < 0) {
    throw std::invalid_argument(
        "choose_qparams: no data was observed (min_val = +inf, max_val = -inf); run calibration "
        "data through the model before computing quantization parameters");
  }
  if (std::isnan(min) || std::isnan(max)) {
    throw std::invalid_argument(fmt::format("choose_qparams: the observed range [{}, {}] contains NaN", min, max));
  }
  if (std::isinf(min) || std::isinf(max)) {
    throw std::invalid_argument(
        fmt::format("choose_qparams: the observed range [{}, {}] is infinite: the calibration data held "
                    "Inf values, which no finite scale can represent",
                    min, max));
  }
  if (min > max) {
    throw std::invalid_argument(fmt::format("choose_qparams: min_val {} is greater than max_val {}", min, max));
  }
  // Every step below is a float32 operation in the order torchao's _calculate_qparams uses.
  const float min_neg = std::fmin(min, 0.0f);
  float max_pos = std::fmax(max, 0.0f);
  QParams q;
  if (c.symmetric) {
    max_pos = std::fmax(-min_neg, max_pos);
    const float half_range = static_cast<float>(static_cast<double>(c.quant_max - c.quant_min) / 2);
    q.scale = std::fmax(max_pos / half_range, c.eps);
    check_scale(q.scale, min, max, c);
    q.zero_point = c.symmetric_zero_point;
  } else {
    const float range = static_cast<float>(c.quant_max - c.quant_min);
    q.scale = std::fmax((max_pos - min_neg) / range, c.eps);
    check_scale(q.scale, min, max, c);  // before min_neg / scale
    // |min_neg / scale| <= quant_max - quant_min < 2^32, so int64 holds it; torchao's int32
    // conversion would overflow for wide int32 ranges.
    const int64_t zp = c.quant_min - static_cast<int64_t>(std::nearbyint(min_neg / q.scale));
    q.zero_point = zp < c.quant_min ? c.quant_min : (zp > c.quant_max ? c.quant_max : zp);
  }
  return q;
}

}  // namespace circle_quant
