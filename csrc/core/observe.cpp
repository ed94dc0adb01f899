#include "observe.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "ukernels/scalar_common.h"

namespace circle_quant {

MinMax finite_minmax(const float* x, size_t n) {
  MinMax r{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), false};
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isnan(v)) {
      r.has_nan = true;
    } else if (std::isfinite(v)) {
      r.min = v < r.min ? v : r.min;
      r.max = v > r.max ? v : r.max;
    }
  }
  return r;
}

void histogram_edges(float min, float max, float* lo, float* hi) {
  if (min == max) {
    // histc widens in double, then its float bin edges round the result. Past 2^24, v +- 1
    // rounds back to v: widen by one ulp instead so the range never has zero width.
    *lo = static_cast<float>(static_cast<double>(min) - 1.0);
    *hi = static_cast<float>(static_cast<double>(max) + 1.0);
    if (*lo == min) *lo = std::nextafter(min, -std::numeric_limits<float>::infinity());
    if (*hi == max) *hi = std::nextafter(max, std::numeric_limits<float>::infinity());
  } else {
    *lo = min;
    *hi = max;
  }
}

namespace {

// Exponents of the lowest and the highest set bit of a finite double x > 0: x is an odd
// multiple of 2^lowest, and 2^highest <= x < 2^(highest + 1).
int lowest_bit_exponent(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  uint64_t mantissa = bits & ((uint64_t{1} << 52) - 1);
  if (biased != 0) mantissa |= uint64_t{1} << 52;  // normal: the implicit bit
  return (biased == 0 ? -1074 : biased - 1075) + __builtin_ctzll(mantissa);
}
int highest_bit_exponent(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  if (biased != 0) return biased - 1023;
  return -1011 - __builtin_clzll(bits);  // subnormal: 63 - clz is the bit, times 2^-1074
}

// *acc += part, `count` times in a row: what torchao's bincount does with the `count` equal
// parts of one old bin that land in one new bin. When no partial sum can round, the result is
// exactly *acc + count·part, one add instead of `count` dependent ones: the operands are
// multiples of 2^low, and every partial sum is one too and below 2^(low + 52), so representable.
inline void add_repeated(double* acc, double part, int64_t count) {
  if (part > 0.0) {
    int low = lowest_bit_exponent(part);
    if (*acc > 0.0) low = std::min(low, lowest_bit_exponent(*acc));
    const double largest = *acc + static_cast<double>(count) * part;  // within an ulp or two
    if (low > -1000 && highest_bit_exponent(largest) < low + 51) {
      *acc += static_cast<double>(count) * part;  // exact, as is count·part
      return;
    }
  }
  for (int64_t i = 0; i < count; ++i) *acc += part;
}

// Spreads `hist` (bins over [old_min, old_max], old_min < old_max) onto `bins` bins over
// [new_min, new_max]: each old bin is split into `rate` parts whose midpoints pick the new bin
// (torchao's repeat_interleave + bucketize(right=True) + bincount, in its order of additions).
void upscale_into(const float* hist, float old_min, float old_max, float new_min, float new_max, int64_t bins,
                  int64_t rate, double* out) {
  const int64_t fine = bins * rate;
  // torch.linspace computes the first half from the start and the second half from the end.
  const float old_step = (old_max - old_min) / static_cast<float>(fine);
  const float new_step = (new_max - new_min) / static_cast<float>(bins);
  const float half_fine_bin = 0.5f * ((old_max - old_min) / static_cast<float>(fine));
  auto linspace = [](float start, float end, float step, int64_t steps, int64_t i) {
    return i < steps / 2 ? start + step * static_cast<float>(i) : end - step * static_cast<float>(steps - 1 - i);
  };
  auto midpoint = [&](int64_t i) { return linspace(old_min, old_max, old_step, fine + 1, i) + half_fine_bin; };
  // first_part[j]: the first part whose midpoint reaches edge j (edge_j <= mid), found from an
  // estimate and corrected with the exact float midpoints. Midpoints increase with the part
  // index, so part i lands in bin (number of edges with first_part <= i) - 1, clamped.
  thread_local std::vector<int64_t> first_part;
  first_part.resize(static_cast<size_t>(bins) + 1);
  const double parts_per_unit = static_cast<double>(fine) / (static_cast<double>(old_max) - old_min);
  for (int64_t j = 0; j <= bins; ++j) {
    const float edge = linspace(new_min, new_max, new_step, bins + 1, j);
    const double estimate = (static_cast<double>(edge) - old_min) * parts_per_unit - 0.5;
    int64_t i = estimate <= 0                           ? 0
                : estimate >= static_cast<double>(fine) ? fine
                                                        : static_cast<int64_t>(std::ceil(estimate));
    while (i < fine && midpoint(i) < edge) ++i;
    while (i > 0 && midpoint(i - 1) >= edge) --i;
    first_part[j] = i;
  }
  // Dividing by a power of two is multiplying by its exact reciprocal (and 4x cheaper).
  const bool rate_is_power_of_two = (rate & (rate - 1)) == 0;
  const double inv_rate = 1.0 / static_cast<double>(rate);
  int64_t edges_reached = 0;  // edges j with first_part[j] <= the current part
  for (int64_t ob = 0; ob < bins; ++ob) {
    if (hist[ob] == 0.0f) continue;
    const double part = rate_is_power_of_two ? static_cast<double>(hist[ob]) * inv_rate
                                             : static_cast<double>(hist[ob]) / static_cast<double>(rate);
    const int64_t end = (ob + 1) * rate;
    for (int64_t i = ob * rate; i < end;) {
      while (edges_reached <= bins && first_part[edges_reached] <= i) ++edges_reached;
      const int64_t target = std::clamp<int64_t>(edges_reached - 1, 0, bins - 1);
      const int64_t next = edges_reached <= bins ? std::min(first_part[edges_reached], end) : end;
      add_repeated(&out[target], part, next - i);  // the parts i .. next - 1 share the bin
      i = next;
    }
  }
}

}  // namespace

void histogram_merge(const float* old_hist, float old_min, float old_max, const uint64_t* batch_counts, float new_min,
                     float new_max, int64_t bins, int64_t upsample_rate, float* out) {
  std::vector<double> acc(static_cast<size_t>(bins));
  for (int64_t b = 0; b < bins; ++b) acc[b] = static_cast<double>(batch_counts[b]);
  const bool old_empty = !(old_min <= old_max);
  if (!old_empty) {
    if (old_min == new_min && old_max == new_max) {
      for (int64_t b = 0; b < bins; ++b) acc[b] += old_hist[b];
    } else if (old_min == old_max) {
      // All old mass sits at one value: move it to that value's bin in the new range.
      double mass = 0;
      for (int64_t b = 0; b < bins; ++b) mass += old_hist[b];
      float lo, hi;
      histogram_edges(new_min, new_max, &lo, &hi);
      acc[ukernels::histogram_bin(old_min, lo, hi, bins)] += mass;
    } else {
      upscale_into(old_hist, old_min, old_max, new_min, new_max, bins, upsample_rate, acc.data());
    }
  }
  for (int64_t b = 0; b < bins; ++b) out[b] = static_cast<float>(acc[b]);
}

namespace {

// Integral of x^2 over [begin, end] times a constant density.
inline double l2_norm(double begin, double end, double density) {
  return density * (end * end * end - begin * begin * begin) / 3.0;
}

// L2 error of quantizing the histogram's mass with dst_bins levels over bins [start, end].
double quantization_error(const float* hist, int64_t bins, double bin_width, int64_t start, int64_t end,
                          double dst_bins) {
  const double dst_width = bin_width * static_cast<double>(end - start + 1) / dst_bins;
  if (dst_width == 0.0) return 0.0;
  const double last = dst_bins - 1;
  double norm = 0.0;
  for (int64_t i = 0; i < bins; ++i) {
    const double src_begin = static_cast<double>(i - start) * bin_width;
    const double src_end = src_begin + bin_width;
    const double dst_begin = std::fmin(std::fmax(std::floor(src_begin / dst_width), 0.0), last);
    const double dst_end = std::fmin(std::fmax(std::floor(src_end / dst_width), 0.0), last);
    const double density = hist[i] / bin_width;
    const double begin_center = (dst_begin + 0.5) * dst_width;
    const double end_center = dst_end * dst_width + dst_width / 2;
    norm += l2_norm(src_begin - begin_center, dst_width / 2, density);
    norm += (dst_end - dst_begin - 1) * l2_norm(-dst_width / 2, dst_width / 2, density);
    norm += l2_norm(-dst_width / 2, src_end - end_center, density);
  }
  return norm;
}

}  // namespace

void histogram_search_range(const float* hist, int64_t bins, float min, float max, double dst_bins, float* new_min,
                            float* new_max) {
  std::vector<float> csum(static_cast<size_t>(bins));
  double running = 0;
  for (int64_t b = 0; b < bins; ++b) {
    // Counts are a state tensor the caller may have edited: a NaN or negative count would
    // otherwise read as "empty" or steer the search anywhere.
    if (!(hist[b] >= 0) || std::isinf(hist[b])) {
      throw std::invalid_argument(
          fmt::format("histogram_search_range: histogram[{}] = {}; bin counts must be finite and >= 0", b, hist[b]));
    }
    running += hist[b];
    csum[b] = static_cast<float>(running);
  }
  const float total = static_cast<float>(running);
  if (!(total > 0)) {
    throw std::invalid_argument("histogram_search_range: the histogram is empty (the observer saw no finite data)");
  }
  const double bin_width = (static_cast<double>(max) - static_cast<double>(min)) / bins;
  const double stepsize = 1e-5;
  double alpha = 0.0, beta = 1.0;
  int64_t start = 0, end = bins - 1;
  double norm_min = std::numeric_limits<double>::infinity();
  while (alpha < beta) {
    const double next_alpha = alpha + stepsize;
    const double next_beta = beta - stepsize;
    int64_t l = start, r = end;
    while (l < end && csum[l] < static_cast<float>(next_alpha * total)) ++l;
    while (r > start && csum[r] > static_cast<float>(next_beta * total)) --r;
    int64_t next_start = start, next_end = end;
    if ((l - start) > (end - r)) {
      next_start = l;
      alpha = next_alpha;
    } else {
      next_end = r;
      beta = next_beta;
    }
    if (next_start == start && next_end == end) continue;
    const double norm = quantization_error(hist, bins, bin_width, next_start, next_end, dst_bins);
    if (norm > norm_min) break;
    norm_min = norm;
    start = next_start;
    end = next_end;
  }
  const float width = (max - min) / static_cast<float>(bins);
  *new_min = min + width * static_cast<float>(start);
  *new_max = min + width * static_cast<float>(end + 1);
}

bool minmax_columns(const float* x, size_t rows, size_t cols, size_t row_stride, float* mn, float* mx) {
  bool has_nan = false;
  for (size_t r = 0; r < rows; ++r) {
    const float* row = x + r * row_stride;
    // Branch-free so the compiler vectorises it; a NaN compares false and leaves mn/mx alone.
    for (size_t c = 0; c < cols; ++c) {
      const float v = row[c];
      has_nan |= v != v;
      mn[c] = v < mn[c] ? v : mn[c];
      mx[c] = v > mx[c] ? v : mx[c];
    }
  }
  return has_nan;
}

}  // namespace circle_quant
