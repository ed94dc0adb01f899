// Scalar building blocks shared by the reference kernels and the SIMD kernels' tails.
// They define the numerics (docs/numerics.md): every other path must agree with them bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

#include "../quantize.h"

namespace circle_quant {
namespace ukernels {

// Round half to even (the default FP environment), add the zero point, clamp, then convert.
// The value is integral and inside [qmin, qmax] before the conversion, so the cast is exact.
template <typename Q>
inline Q quantize_one(float x, float inv_scale, float zero_point, float qmin, float qmax) {
  float v = std::nearbyint(x * inv_scale) + zero_point;
  v = std::fmin(std::fmax(v, qmin), qmax);  // NaN never gets here: callers report it
  return static_cast<Q>(static_cast<int32_t>(v));
}

template <typename Q>
inline float dequantize_one(Q q, float scale, float zero_point) {
  return (static_cast<float>(q) - zero_point) * scale;
}

// Fake quantization of one value; *mask (if given) is 1 where the value before clamping lay inside
// [qmin, qmax] (the straight-through gradient passes there).
inline float fake_quantize_one(float x, float inv_scale, float zero_point, float qmin, float qmax, float scale,
                               uint8_t* mask) {
  const float v = std::nearbyint(x * inv_scale) + zero_point;
  if (mask != nullptr) *mask = (v >= qmin) & (v <= qmax);
  const float q = std::fmin(std::fmax(v, qmin), qmax);
  return (q - zero_point) * scale;
}

// histc's bin for a value known to lie in [lo, hi]: the last bin also takes hi. A position that
// is not a number below `bins` (hi itself, or an overflowing range) goes to the last bin, so the
// index is always valid; the SIMD kernels clamp the same way.
inline int64_t histogram_bin(float x, float lo, float hi, int64_t bins) {
  const float pos = (x - lo) * static_cast<float>(bins) / (hi - lo);
  return pos < static_cast<float>(bins) ? static_cast<int64_t>(pos) : bins - 1;
}

}  // namespace ukernels
}  // namespace circle_quant

#include <vector>

namespace circle_quant {
namespace ukernels {

// Histogram counts spread over kCopies interleaved copies: consecutive increments go to
// different copies, so runs of equal bins do not serialise on one memory location. Kernels take
// the copies' pointers into locals (copy(k)) so the compiler keeps them in registers, increment
// copy (i % kCopies) for the i-th value, and flush() adds the copies into the caller's counts.
// For short inputs the copies would cost more (zeroing and summing 4 x bins) than they save:
// every copy is then the caller's counts itself.
class InterleavedCounts {
 public:
  static constexpr int kCopies = 4;

  InterleavedCounts(int64_t bins, uint32_t* counts, size_t n) : bins_(bins), counts_(counts) {
    if (n >= static_cast<size_t>(bins) * kCopies) {
      copies_.assign(static_cast<size_t>(bins) * kCopies, 0);
    }
  }

  uint32_t* copy(int k) { return copies_.empty() ? counts_ : copies_.data() + static_cast<size_t>(k) * bins_; }

  void flush() const {
    if (copies_.empty()) return;
    for (int64_t b = 0; b < bins_; ++b) {
      uint32_t sum = 0;
      for (int k = 0; k < kCopies; ++k) sum += copies_[static_cast<size_t>(k) * bins_ + b];
      counts_[b] += sum;
    }
  }

 private:
  int64_t bins_;
  uint32_t* counts_;
  std::vector<uint32_t> copies_;
};

}  // namespace ukernels
}  // namespace circle_quant
