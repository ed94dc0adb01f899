// Statistics that observers collect: min/max and the running histogram of HistogramObserver,
// plus the histogram's L2 range search (torch-free core).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace circle_quant {

struct MinMax {
  float min;     // +inf when no value was seen
  float max;     // -inf when no value was seen
  bool has_nan;  // NaNs are left out of min/max; callers report them
};

// Min and max of x (Inf included, NaN left out and flagged). Vectorised.
MinMax minmax(const float* x, size_t n);

// Min and max of the finite values of x only (for inputs known to hold Inf). Scalar.
MinMax finite_minmax(const float* x, size_t n);

// Adds 1 to counts[b] for every x[i] inside [lo, hi], b chosen as torch.histc does
// (docs/numerics.md). Values outside the range, Inf and NaN are not counted.
// Returns the number of NaNs seen. Vectorised.
size_t histogram_count(const float* x, size_t n, float lo, float hi, int64_t bins, uint32_t* counts);

// The range torch.histc bins over for data in [min, max]: a single value is widened by one on
// each side.
void histogram_edges(float min, float max, float* lo, float* hi);

// Merges a batch into HistogramObserver's running state. The batch was counted with
// histogram_count() over histogram_edges(new_min, new_max), where [new_min, new_max] is the
// union of the old range and the batch's range. The old histogram (over [old_min, old_max],
// empty when old_min > old_max) is re-binned onto the new range by splitting each bin into
// `upsample_rate` equal parts, as torchao's HistogramObserver does. Writes `bins` values to out.
void histogram_merge(const float* old_hist, float old_min, float old_max, const uint64_t* batch_counts, float new_min,
                     float new_max, int64_t bins, int64_t upsample_rate, float* out);

// HistogramObserver's non-linear parameter search: shrinks [min, max] bin by bin from the side
// holding less mass while the L2 quantization error (with dst_bins quantization levels) falls.
// Throws std::invalid_argument for an empty histogram.
void histogram_search_range(const float* hist, int64_t bins, float min, float max, double dst_bins, float* new_min,
                            float* new_max);

// Per-column min and max of a row-major [rows, cols] buffer (the channel axis innermost), folded
// into mn/mx (which the caller initialises). NaNs are left out; returns true if any was seen.
bool minmax_columns(const float* x, size_t rows, size_t cols, size_t row_stride, float* mn, float* mx);

}  // namespace circle_quant
