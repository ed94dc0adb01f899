#include "observe.h"

#include <cmath>
#include <limits>
#include <stdexcept>

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

// Spreads `hist` (bins over [old_min, old_max], old_min < old_max) onto `bins` bins over
// [new_min, new_max]: each old bin is split into `rate` parts whose midpoints pick the new bin.
void upscale_into(const float* hist, float old_min, float old_max, float new_min, float new_max,
                  int64_t bins, int64_t rate, double* out) {
  const int64_t fine = bins * rate;
  // torch.linspace computes the first half from the start and the second half from the end.
  const float old_step = (old_max - old_min) / static_cast<float>(fine);
  const float new_step = (new_max - new_min) / static_cast<float>(bins);
  const float half_fine_bin = 0.5f * ((old_max - old_min) / static_cast<float>(fine));
  auto linspace = [](float start, float end, float step, int64_t steps, int64_t i) {
    return i < steps / 2 ? start + step * static_cast<float>(i)
                         : end - step * static_cast<float>(steps - 1 - i);
  };
  // Midpoints increase with i, so the last edge <= mid only moves forward: one linear walk
  // instead of a bisection per midpoint. `edge` counts the edges <= mid (bucketize, right=True).
  int64_t edge = 0;
  auto advance = [&](float mid) {
    while (edge <= bins && linspace(new_min, new_max, new_step, bins + 1, edge) <= mid) ++edge;
    return edge == 0 ? int64_t{0} : (edge - 1 >= bins ? bins - 1 : edge - 1);
  };
  auto midpoint = [&](int64_t i) {
    return linspace(old_min, old_max, old_step, fine + 1, i) + half_fine_bin;
  };
  for (int64_t ob = 0; ob < bins; ++ob) {
    if (hist[ob] == 0.0f) continue;  // nothing to move; the walk catches up at the next bin
    const double part = static_cast<double>(hist[ob]) / static_cast<double>(rate);
    const int64_t first = ob * rate, last = first + rate - 1;
    // The new range contains the old one, so new bins are at least as wide as old ones and the
    // parts of one old bin usually share a new bin: test the two ends before walking every part.
    const int64_t edge_before = edge;
    const int64_t b_first = advance(midpoint(first));
    const int64_t b_last = advance(midpoint(last));
    if (b_first == b_last) {
      for (int64_t i = first; i <= last; ++i) out[b_first] += part;  // same sums as the walk
      continue;
    }
    edge = edge_before;
    for (int64_t i = first; i <= last; ++i) out[advance(midpoint(i))] += part;
  }
}

}  // namespace

void histogram_merge(const float* old_hist, float old_min, float old_max,
                     const uint64_t* batch_counts, float new_min, float new_max, int64_t bins,
                     int64_t upsample_rate, float* out) {
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
double quantization_error(const float* hist, int64_t bins, double bin_width, int64_t start,
                          int64_t end, double dst_bins) {
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

void histogram_search_range(const float* hist, int64_t bins, float min, float max,
                            double dst_bins, float* new_min, float* new_max) {
  std::vector<float> csum(static_cast<size_t>(bins));
  double running = 0;
  for (int64_t b = 0; b < bins; ++b) {
    running += hist[b];
    csum[b] = static_cast<float>(running);
  }
  const float total = static_cast<float>(running);
  if (!(total > 0)) {
    throw std::invalid_argument(
        "histogram_search_range: the histogram is empty (the observer saw no finite data)");
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

bool minmax_columns(const float* x, size_t rows, size_t cols, size_t row_stride, float* mn,
                    float* mx) {
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
