// Observer statistics: the min/max and histogram microkernels of every ISA against the scalar
// reference, the scalar reference against naive loops, and the histogram bookkeeping
// (edges, merge, range search) against properties derived by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core/observe.h"
#include "core/ukernels/ukernels.h"
#include "test_util.h"

namespace {

using namespace circle_quant;
using namespace circle_quant_test;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct ObserveKernels {
  MinMax (*minmax)(const float*, size_t);
  size_t (*histogram)(const float*, size_t, float, float, int64_t, uint32_t*);
};

// The microkernels of one ISA (its rows in the kernel registry), called directly.
ObserveKernels observe_kernels(Isa isa) {
  return {own_row(ukernels::minmax_kernels(), isa).kernel, own_row(ukernels::histogram_kernels(), isa).kernel};
}

// --- inputs ----------------------------------------------------------------------------------------

enum class Mix { kFinite, kWithInf, kWithNaN, kAllNaN };
constexpr Mix kMixes[] = {Mix::kFinite, Mix::kWithInf, Mix::kWithNaN, Mix::kAllNaN};

// n values mostly in [lo, hi] with some outside; infinities and NaNs as `mix` says; the data
// past the end is NaN, so reading it would show.
Buffer<float> make_data(std::mt19937& rng, size_t n, size_t offset, float lo, float hi, Mix mix) {
  Buffer<float> x(n, offset, kNaN);
  const float w = hi - lo;
  for (size_t i = 0; i < n; ++i) {
    switch (uniform_int(rng, 0, 15)) {
      case 0: x[i] = lo; break;
      case 1: x[i] = hi; break;
      case 2: x[i] = pick(rng, {std::nextafter(lo, kInf), std::nextafter(hi, -kInf)}); break;
      case 3: x[i] = uniform(rng, lo - 0.5 * w, hi + 0.5 * w); break;
      case 4: x[i] = pick(rng, {0.0f, -0.0f}); break;
      case 5: x[i] = mix == Mix::kWithInf ? pick(rng, {kInf, -kInf}) : uniform(rng, lo, hi); break;
      case 6: x[i] = mix == Mix::kWithNaN ? pick(rng, {kNaN, -kNaN}) : uniform(rng, lo, hi); break;
      default: x[i] = uniform(rng, lo, hi);
    }
    if (mix == Mix::kAllNaN) x[i] = kNaN;
  }
  return x;
}

// --- oracles ---------------------------------------------------------------------------------------

MinMax naive_minmax(const float* x, size_t n, bool finite_only) {
  MinMax r{kInf, -kInf, false};
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) {
      r.has_nan = true;
    } else if (!finite_only || std::isfinite(x[i])) {
      r.min = std::min(r.min, x[i]);
      r.max = std::max(r.max, x[i]);
    }
  }
  return r;
}

// torch.histc's binning over [lo, hi] in float: floor((x - lo) * bins / (hi - lo)), hi itself in
// the last bin; values outside, infinities and NaN are not counted.
std::vector<uint32_t> naive_histogram(const float* x, size_t n, float lo, float hi, int64_t bins) {
  std::vector<uint32_t> counts(bins, 0);
  for (size_t i = 0; i < n; ++i) {
    if (!(x[i] >= lo && x[i] <= hi)) continue;
    const float pos = std::floor((x[i] - lo) * static_cast<float>(bins) / (hi - lo));
    ++counts[std::min<int64_t>(static_cast<int64_t>(pos), bins - 1)];
  }
  return counts;
}

::testing::AssertionResult same_minmax(const MinMax& got, const MinMax& want) {
  // Compared as values: +0 and -0 are the same minimum.
  if (got.min == want.min && got.max == want.max && got.has_nan == want.has_nan) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "got {" << describe(got.min) << ", " << describe(got.max) << ", nan "
                                       << got.has_nan << "}, want {" << describe(want.min) << ", " << describe(want.max)
                                       << ", nan " << want.has_nan << "}";
}

// Random [lo, hi] with lo < hi, from narrow to wide and away from zero.
std::pair<float, float> random_range(std::mt19937& rng) {
  const float lo = uniform(rng, -100, 100);
  return {lo, lo + log_uniform(rng, 1e-3, 1e3)};
}

// --- per-ISA kernel tests ------------------------------------------------------------------------

class ObserveKernelsTest : public IsaTest {};
INSTANTIATE_FOR_EACH_ISA(ObserveKernelsTest);

TEST_P(ObserveKernelsTest, MinMaxMatchesScalar) {
  const ObserveKernels k = observe_kernels(GetParam());
  std::mt19937 rng(17);
  for (size_t n : test_sizes(rng)) {
    for (size_t offset : kOffsets) {
      for (Mix mix : kMixes) {
        const auto [lo, hi] = random_range(rng);
        auto x = make_data(rng, n, offset, lo, hi, mix);
        SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << offset << " mix=" << static_cast<int>(mix));
        ASSERT_TRUE(same_minmax(k.minmax(x.data(), n), ukernels::f32_minmax_scalar(x.data(), n)));
        // The extremes and a NaN at the first, a middle and the last (tail) position.
        for (size_t pos : special_positions(n)) {
          for (float v : {-1e30f, 1e30f, -kInf, kInf, kNaN}) {
            const float saved = x[pos];
            x[pos] = v;
            ASSERT_TRUE(same_minmax(k.minmax(x.data(), n), ukernels::f32_minmax_scalar(x.data(), n)))
                << describe(v) << " at " << pos;
            x[pos] = saved;
          }
        }
      }
    }
  }
}

TEST_P(ObserveKernelsTest, HistogramMatchesScalar) {
  const ObserveKernels k = observe_kernels(GetParam());
  std::mt19937 rng(23);
  for (int64_t bins : {1, 7, 100, 2048}) {
    for (size_t n : test_sizes(rng)) {
      for (size_t offset : kOffsets) {
        for (Mix mix : kMixes) {
          const auto [lo, hi] = random_range(rng);
          const auto x = make_data(rng, n, offset, lo, hi, mix);
          SCOPED_TRACE(::testing::Message() << "bins=" << bins << " n=" << n << " offset=" << offset << " range=[" << lo
                                            << ", " << hi << "]");
          // Kernels add to the counts they are given.
          std::vector<uint32_t> want(bins), got;
          for (auto& c : want) c = uniform_int<uint32_t>(rng, 0, 1000);
          got = want;
          const size_t want_nans = ukernels::f32_histogram_scalar(x.data(), n, lo, hi, bins, want.data());
          ASSERT_EQ(k.histogram(x.data(), n, lo, hi, bins, got.data()), want_nans);
          ASSERT_TRUE(same_bits(got.data(), want.data(), bins));
        }
      }
    }
  }
}

// --- scalar references against naive loops --------------------------------------------------------

TEST(ObserveReference, ScalarMinMaxMatchesNaiveLoop) {
  std::mt19937 rng(31);
  for (size_t n : test_sizes(rng)) {
    for (Mix mix : kMixes) {
      const auto [lo, hi] = random_range(rng);
      const auto x = make_data(rng, n, 0, lo, hi, mix);
      EXPECT_TRUE(same_minmax(ukernels::f32_minmax_scalar(x.data(), n), naive_minmax(x.data(), n, false)));
      EXPECT_TRUE(same_minmax(finite_minmax(x.data(), n), naive_minmax(x.data(), n, true)));
    }
  }
}

TEST(ObserveReference, MinMaxOfNothingIsInfiniteAndInfIsIncluded) {
  const float none[1] = {kNaN};
  EXPECT_TRUE(same_minmax(ukernels::f32_minmax_scalar(none, 0), {kInf, -kInf, false}));
  EXPECT_TRUE(same_minmax(ukernels::f32_minmax_scalar(none, 1), {kInf, -kInf, true}));
  const float x[] = {1.0f, -kInf, kNaN, 2.0f, kInf};
  EXPECT_TRUE(same_minmax(ukernels::f32_minmax_scalar(x, 5), {-kInf, kInf, true}));
  EXPECT_TRUE(same_minmax(finite_minmax(x, 5), {1.0f, 2.0f, true}));
  const float infs[] = {kInf, -kInf};
  EXPECT_TRUE(same_minmax(finite_minmax(infs, 2), {kInf, -kInf, false}));
}

TEST(ObserveReference, ScalarHistogramMatchesHistcBinning) {
  std::mt19937 rng(37);
  for (int64_t bins : {1, 7, 2048}) {
    for (size_t n : test_sizes(rng)) {
      for (Mix mix : kMixes) {
        const auto [lo, hi] = random_range(rng);
        const auto x = make_data(rng, n, 0, lo, hi, mix);
        std::vector<uint32_t> counts(bins, 0);
        const size_t nans = ukernels::f32_histogram_scalar(x.data(), n, lo, hi, bins, counts.data());
        EXPECT_EQ(counts, naive_histogram(x.data(), n, lo, hi, bins));
        EXPECT_EQ(nans, static_cast<size_t>(std::count_if(x.data(), x.data() + n, [](float v) { return v != v; })));
      }
    }
  }
}

TEST(ObserveReference, HistogramEndpointsGoToFirstAndLastBin) {
  const float lo = -3.0f, hi = 5.0f;
  const float x[] = {lo, hi, hi, std::nextafter(lo, -kInf), std::nextafter(hi, kInf)};
  for (int64_t bins : {1, 7, 2048}) {
    std::vector<uint32_t> counts(bins, 0);
    ukernels::f32_histogram_scalar(x, 5, lo, hi, bins, counts.data());
    EXPECT_EQ(counts.front(), bins == 1 ? 3u : 1u) << bins << " bins";
    EXPECT_EQ(counts.back(), bins == 1 ? 3u : 2u) << bins << " bins";
    EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), 0u), 3u) << bins << " bins";
  }
}

// --- histogram bookkeeping -------------------------------------------------------------------------

TEST(HistogramEdges, WidensASingleValueByOneEachSide) {
  float lo, hi;
  histogram_edges(-2.5f, 4.0f, &lo, &hi);
  EXPECT_EQ(lo, -2.5f);
  EXPECT_EQ(hi, 4.0f);
  histogram_edges(5.0f, 5.0f, &lo, &hi);
  EXPECT_EQ(lo, 4.0f);
  EXPECT_EQ(hi, 6.0f);
  histogram_edges(-0.25f, -0.25f, &lo, &hi);
  EXPECT_EQ(lo, -1.25f);
  EXPECT_EQ(hi, 0.75f);
}

// Beyond 2^24 a float cannot move by one, yet the range must not collapse: the binning divides by
// hi - lo (torch.histc bins torch.full((10,), 1e8) into its middle bin).
TEST(HistogramEdges, LargeSingleValueStillGivesANonEmptyRange) {
  for (float v : {3e7f, -3e7f, 1e8f, 1e20f}) {
    float lo, hi;
    histogram_edges(v, v, &lo, &hi);
    EXPECT_LT(lo, hi) << "histogram_edges(" << v << ", " << v << ") = [" << lo << ", " << hi
                      << "]: histogram_count then divides by zero and indexes counts[(int)NaN]";
  }
}

TEST(MinMaxColumns, MatchesNaiveLoop) {
  std::mt19937 rng(41);
  for (size_t rows : {0, 1, 3, 17, 64}) {
    for (size_t cols : {1, 2, 7, 16, 33}) {
      for (bool with_nan : {false, true}) {
        const size_t stride = cols + uniform_int<size_t>(rng, 0, 5);
        std::vector<float> x(rows * stride + cols);
        for (auto& v : x) v = uniform(rng, -50, 50);
        if (with_nan && rows > 0) x[uniform_int<size_t>(rng, 0, (rows - 1) * stride)] = kNaN;
        // mn / mx start from earlier state, which the call folds into.
        std::vector<float> mn(cols), mx(cols);
        for (size_t c = 0; c < cols; ++c) {
          mn[c] = c % 2 ? kInf : uniform(rng, -60, 10);
          mx[c] = c % 2 ? -kInf : uniform(rng, -10, 60);
        }
        std::vector<float> want_mn = mn, want_mx = mx;
        bool want_nan = false;
        for (size_t r = 0; r < rows; ++r) {
          for (size_t c = 0; c < cols; ++c) {
            const float v = x[r * stride + c];
            if (std::isnan(v)) {
              want_nan = true;
              continue;
            }
            want_mn[c] = std::min(want_mn[c], v);
            want_mx[c] = std::max(want_mx[c], v);
          }
        }
        SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " stride " << stride);
        EXPECT_EQ(minmax_columns(x.data(), rows, cols, stride, mn.data(), mx.data()), want_nan);
        EXPECT_EQ(mn, want_mn);
        EXPECT_EQ(mx, want_mx);
      }
    }
  }
}

std::vector<float> random_hist(std::mt19937& rng, int64_t bins) {
  std::vector<float> h(bins);
  for (auto& v : h) v = static_cast<float>(uniform_int(rng, 0, 500));
  return h;
}

std::vector<uint64_t> random_counts(std::mt19937& rng, int64_t bins) {
  std::vector<uint64_t> c(bins);
  for (auto& v : c) v = uniform_int<uint64_t>(rng, 0, 500);
  return c;
}

// out - batch: the part of a merge's output that came from the old histogram.
std::vector<double> old_part(const std::vector<float>& out, const std::vector<uint64_t>& batch) {
  std::vector<double> part(out.size());
  for (size_t b = 0; b < out.size(); ++b) part[b] = double{out[b]} - static_cast<double>(batch[b]);
  return part;
}

double sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }
template <typename T>
double sum(const std::vector<T>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0, [](double a, T b) { return a + b; });
}

TEST(HistogramMerge, EmptyOldStateGivesTheBatch) {
  std::mt19937 rng(43);
  const int64_t bins = 64;
  const std::vector<float> garbage(bins, 1e6f);  // must be ignored
  const auto batch = random_counts(rng, bins);
  std::vector<float> out(bins, -1);
  histogram_merge(garbage.data(), kInf, -kInf, batch.data(), -2.0f, 3.0f, bins, 16, out.data());
  for (int64_t b = 0; b < bins; ++b) EXPECT_EQ(out[b], static_cast<float>(batch[b])) << b;
}

TEST(HistogramMerge, SameRangeAddsBinByBin) {
  std::mt19937 rng(47);
  const int64_t bins = 100;
  const auto old = random_hist(rng, bins);
  const auto batch = random_counts(rng, bins);
  std::vector<float> out(bins);
  histogram_merge(old.data(), -1.5f, 2.5f, batch.data(), -1.5f, 2.5f, bins, 16, out.data());
  for (int64_t b = 0; b < bins; ++b) EXPECT_EQ(out[b], old[b] + static_cast<float>(batch[b])) << b;
}

// [0, 1] widened to [-1, 1]: each new bin covers exactly two old ones, in the upper half.
TEST(HistogramMerge, WidenedRangeMovesEachOldBinToItsNewBin) {
  std::mt19937 rng(53);
  const int64_t bins = 64;
  const auto old = random_hist(rng, bins);
  const auto batch = random_counts(rng, bins);
  std::vector<float> out(bins);
  histogram_merge(old.data(), 0.0f, 1.0f, batch.data(), -1.0f, 1.0f, bins, 16, out.data());
  const auto part = old_part(out, batch);
  for (int64_t b = 0; b < bins / 2; ++b) EXPECT_EQ(part[b], 0.0) << "bin " << b << " is below 0";
  for (int64_t j = 0; j < bins / 2; ++j) {
    EXPECT_NEAR(part[bins / 2 + j], old[2 * j] + old[2 * j + 1], 1e-3) << "new bin " << bins / 2 + j;
  }
}

// An arbitrary widening: mass is conserved, nothing lands in bins outside the old range, and the
// old mass's centre moves by less than one new bin.
TEST(HistogramMerge, WidenedRangePreservesMassAndLocation) {
  std::mt19937 rng(59);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t bins = pick(rng, {7, 100, 2048});
    const int64_t rate = pick(rng, {1, 4, 16});
    const float old_min = uniform(rng, -10, 10), old_max = old_min + log_uniform(rng, 0.01, 20);
    const float new_min = old_min - (trial % 2 ? log_uniform(rng, 0.01, 30) : 0.0f);
    const float new_max = old_max + (trial % 3 ? log_uniform(rng, 0.01, 30) : 0.0f);
    if (new_min == old_min && new_max == old_max) continue;
    const auto old = random_hist(rng, bins);
    const auto batch = random_counts(rng, bins);
    std::vector<float> out(bins);
    histogram_merge(old.data(), old_min, old_max, batch.data(), new_min, new_max, bins, rate, out.data());
    SCOPED_TRACE(::testing::Message() << "old [" << old_min << ", " << old_max << "] new [" << new_min << ", "
                                      << new_max << "] bins " << bins);
    const auto part = old_part(out, batch);
    const double total = sum(old) + sum(batch);
    EXPECT_NEAR(sum(out), total, 1e-3 * total);

    const double old_w = (double{old_max} - old_min) / bins;
    const double new_w = (double{new_max} - new_min) / bins;
    // Slack for the float rounding of bin edges and midpoints.
    const double slack = 1e-5 * std::max(std::fabs(new_min), std::fabs(new_max)) + 1e-6;
    double old_moment = 0, new_moment = 0;
    for (int64_t b = 0; b < bins; ++b) {
      old_moment += old[b] * (old_min + (b + 0.5) * old_w);
      new_moment += part[b] * (new_min + (b + 0.5) * new_w);
      const double lo = new_min + b * new_w, hi = lo + new_w;
      if (hi < old_min - slack || lo > old_max + slack) {
        EXPECT_NEAR(part[b], 0.0, 1e-3) << "bin " << b << " [" << lo << ", " << hi << "]";
      }
    }
    EXPECT_NEAR(new_moment / sum(part), old_moment / sum(old), 0.5 * new_w + slack);
  }
}

TEST(HistogramMerge, SingleValueOldStateMovesAllMassToThatValuesBin) {
  std::mt19937 rng(61);
  const int64_t bins = 10;
  // The old state saw only one value; histc put it in the middle of [v - 1, v + 1].
  for (const auto& [value, want_bin] :
       std::vector<std::pair<float, int64_t>>{{3.5f, 3}, {0.0f, 0}, {9.99f, 9}, {10.0f, 9}}) {
    std::vector<float> old(bins, 0.0f);
    old[bins / 2] = 40.0f;
    const auto batch = random_counts(rng, bins);
    std::vector<float> out(bins);
    histogram_merge(old.data(), value, value, batch.data(), 0.0f, 10.0f, bins, 16, out.data());
    const auto part = old_part(out, batch);
    for (int64_t b = 0; b < bins; ++b) {
      EXPECT_EQ(part[b], b == want_bin ? 40.0 : 0.0) << "value " << value << " bin " << b;
    }
  }
}

// --- HistogramObserver's range search ---------------------------------------------------------------

// The expected histogram of n_bulk standard normal samples over [min, max] of the outliers, plus
// one count per outlier.
std::vector<float> gaussian_with_outliers(double n_bulk, const std::vector<float>& outliers, float min, float max,
                                          int64_t bins) {
  const double width = (double{max} - min) / bins;
  auto cdf = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  std::vector<float> hist(bins);
  for (int64_t b = 0; b < bins; ++b) {
    hist[b] = static_cast<float>(n_bulk * (cdf(min + (b + 1) * width) - cdf(min + b * width)));
  }
  for (float v : outliers) {
    hist[std::min<int64_t>(static_cast<int64_t>((v - min) / width), bins - 1)] += 1.0f;
  }
  return hist;
}

// With a million samples in the bulk, clipping five far outliers costs less L2 error than the
// coarser grid they force on everything else (torchao's HistogramObserver picks about +-4.4 here).
TEST(HistogramSearchRange, ClipsFarOutliersButKeepsTheBulk) {
  const int64_t bins = 2048;
  const float min = -45.0f, max = 50.0f;
  const auto hist = gaussian_with_outliers(1e6, {min, -40.0f, 38.0f, max, max}, min, max, bins);
  float new_min, new_max;
  histogram_search_range(hist.data(), bins, min, max, 256, &new_min, &new_max);
  EXPECT_GT(new_min, min);
  EXPECT_LT(new_max, max);
  EXPECT_LT(new_max - new_min, 0.2f * (max - min)) << "[" << new_min << ", " << new_max << "]";
  // The central 99% of a standard normal: +-2.5758.
  EXPECT_LE(new_min, -2.5758f);
  EXPECT_GE(new_max, 2.5758f);
}

TEST(HistogramSearchRange, UniformDataKeepsNearlyTheFullRange) {
  const int64_t bins = 2048;
  const std::vector<float> hist(bins, 100.0f);
  float new_min, new_max;
  histogram_search_range(hist.data(), bins, -1.0f, 3.0f, 256, &new_min, &new_max);
  EXPECT_GE(new_min, -1.0f);
  EXPECT_LE(new_max, 3.0f);
  EXPECT_GT(new_max - new_min, 0.95f * 4.0f) << "[" << new_min << ", " << new_max << "]";
}

TEST(HistogramSearchRange, EmptyHistogramThrows) {
  const std::vector<float> hist(64, 0.0f);
  float new_min, new_max;
  EXPECT_THROW(histogram_search_range(hist.data(), 64, 0.0f, 1.0f, 256, &new_min, &new_max), std::invalid_argument);
}

}  // namespace
