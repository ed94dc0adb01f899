// The x86 output stage (RequantizeFn in qgemm_ukernels.h), written once over a lane-traits type V
// and bit-exact with qs32_requantize_scalar (docs/numerics.md, "Integer GEMM").
// qs32-requantize-avx2.cpp (8 lanes, conditions in vector registers) and qs32-requantize-avx512.cpp
// (16 lanes, conditions in mask registers) each define V and instantiate RequantizeStage<V>.
// Included only by those two files, each compiled with its own ISA flags; everything here is in an
// anonymous namespace, so each file keeps its own copy and the linker cannot pick one ISA's code
// for the other.
//
// V provides, with I an int32 vector, F a float vector and Mask a per-lane condition:
//   kLanes; tail(n): the lanes < n; loadu(const int32_t*), storeu(int32_t*, I): a whole vector;
//     load(mask, const int32_t*), loadf(mask, const float*): masked loads (lanes outside the mask
//     are zero and not read);
//   set1, set1f, zero; add, sub, min, max, and_, xor_; madd16 (vpmaddwd: int16 pairs multiplied
//     and summed into int32 lanes); sllv, srav (per-lane counts); srai<bits>, slli<bits> (these
//     and cvtf, mulf, minf, maxf: CIRCLE_REQUANTIZE_LANE_OPS below);
//   eq, gt -> Mask; both(Mask, Mask); select(c, a, b): a where c, else b;
//     increment_where(c, v): v + 1 where c;
//   rounding_high_mul(x, m): per lane, bits 31..62 of the 64-bit x·m + 2^30 (how the 64-bit
//     products are laid out is the ISA's business);
//   cvtf (int32 to float), mulf, minf, maxf (the operands' order as the ISA's min/max
//     instructions); round(F) -> I: to nearest, ties to even, for values inside int32;
//   store<Q>(Q*, I, mask, n): the first n lanes (= the mask), each already inside Q's range;
//     store4<Q>(Q*, I, I, I, I): four whole vectors, in order, to 4·kLanes bytes (one-byte Q);
//     storef(float*, mask, F).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <limits>

#include "qgemm_ukernels.h"
#include "requantize_dispatch.h"

// The lane operations whose intrinsics differ between the two ISAs only in the prefix P (_mm256
// or _mm512) and, for the whole-register ones, the suffix W (si256 or si512): written once here,
// expanded inside each file's traits struct (which defines I and F first).
#define CIRCLE_REQUANTIZE_LANE_OPS(P, W)                                                    \
  static I set1(int32_t v) { return P##_set1_epi32(v); }                                    \
  static F set1f(float v) { return P##_set1_ps(v); }                                        \
  static I zero() { return P##_setzero_##W(); }                                             \
  static I loadu(const int32_t* p) { return P##_loadu_##W(reinterpret_cast<const I*>(p)); } \
  static void storeu(int32_t* p, I v) { P##_storeu_##W(reinterpret_cast<I*>(p), v); }       \
  static I add(I a, I b) { return P##_add_epi32(a, b); }                                    \
  static I sub(I a, I b) { return P##_sub_epi32(a, b); }                                    \
  static I min(I a, I b) { return P##_min_epi32(a, b); }                                    \
  static I max(I a, I b) { return P##_max_epi32(a, b); }                                    \
  static I and_(I a, I b) { return P##_and_##W(a, b); }                                     \
  static I xor_(I a, I b) { return P##_xor_##W(a, b); }                                     \
  static I sllv(I a, I count) { return P##_sllv_epi32(a, count); }                          \
  static I srav(I a, I count) { return P##_srav_epi32(a, count); }                          \
  template <int kBits>                                                                      \
  static I srai(I a) {                                                                      \
    return P##_srai_epi32(a, kBits);                                                        \
  }                                                                                         \
  template <int kBits>                                                                      \
  static I slli(I a) {                                                                      \
    return P##_slli_epi32(a, kBits);                                                        \
  }                                                                                         \
  static I madd16(I a, I b) { return P##_madd_epi16(a, b); }                                \
  static F cvtf(I a) { return P##_cvtepi32_ps(a); }                                         \
  static F mulf(F a, F b) { return P##_mul_ps(a, b); }                                      \
  static F minf(F a, F b) { return P##_min_ps(a, b); }                                      \
  static F maxf(F a, F b) { return P##_max_ps(a, b); }

namespace circle_quant {
namespace ukernels {
namespace {

constexpr int32_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();

// multiply_by_quantized_multiplier (qgemm.cpp) per lane, per-lane multiplier and shift (shift in
// [-31, 30], as quantize_multiplier produces).
template <typename V>
inline typename V::I fixed_point_multiply(typename V::I x, typename V::I m0, typename V::I shift) {
  using I = typename V::I;
  const I zero = V::zero();
  const I one = V::set1(1);
  const I left = V::max(shift, zero);
  const I right = V::max(V::sub(zero, shift), zero);

  // x · 2^left, saturated: a lane overflowed when shifting back does not restore it.
  const I shifted = V::sllv(x, left);
  const I saturated = V::xor_(V::template srai<31>(x), V::set1(kInt32Max));
  x = V::select(V::eq(V::srav(shifted, left), x), shifted, saturated);

  // SaturatingRoundingDoublingHighMul. The runtimes' "add a nudge of ±2^30, divide by 2^31
  // truncating" equals floor((x·m0 + 2^30) / 2^31) for either sign of the product, which is
  // rounding_high_mul. The one product that does not fit: INT32_MIN · INT32_MIN saturates to
  // INT32_MAX.
  const I min = V::set1(kInt32Min);
  const I high = V::select(V::both(V::eq(x, min), V::eq(m0, min)), V::set1(kInt32Max), V::rounding_high_mul(x, m0));

  // RoundingDivideByPOT: arithmetic shift, plus one where the remainder passes the threshold
  // (half, or just above half for negative values: ties away from zero).
  const I mask = V::sub(V::sllv(one, right), one);
  const I remainder = V::and_(high, mask);
  const I threshold = V::sub(V::template srai<1>(mask), V::template srai<31>(high));
  return V::increment_where(V::gt(remainder, threshold), V::srav(high, right));
}

// The row-sum term zb[j] · row_sum[i] as one vpmaddwd, not a 32-bit multiply (two uops on the
// multiply port): with row_sum = 256·h + l (l in [0, 255], h = row_sum >> 8, which fits int16 for
// |row_sum| < 2^23) and int16 lanes (zb, 256·zb) (zb in [-128, 127], so 256·zb fits int16),
// zb·l + 256·zb·h is the exact product. RequantizeFn's contract bounds both. The rows' split
// forms (l | h << 16) are made a vector at a time into a buffer, which the row loops read by a
// broadcast from memory.
constexpr size_t kSplitRows = 64;  // rows split at a time

template <typename V>
inline void split_row_sums(const int32_t* row_sum, size_t count, int32_t* split) {
  for (size_t i = 0; i < count; i += V::kLanes) {
    const size_t n = count - i < V::kLanes ? count - i : V::kLanes;
    const typename V::I r = V::load(V::tail(n), row_sum + i);
    V::storeu(split + i,
              V::xor_(V::and_(r, V::set1(0xFF)), V::template slli<16>(V::template srai<8>(r))));  // disjoint bits
  }
}

// One channel vector's constants, and the output stage of one row of it: `value` gives the
// clamped result plus the zero point as int32 lanes, ready to narrow.
template <typename V, RequantMode kMode>
struct ChannelVector {
  using I = typename V::I;
  using F = typename V::F;
  I term, zb_pairs;       // channel_term; int16 pairs (zb, 256·zb) when row sums are used
  typename V::Mask mask;  // lanes < the remaining columns (all lanes in the body)
  size_t n;               // lanes to store
  F m, flo, fhi;          // kFloat
  I m0, shift, lo, hi;    // kFixedPoint
  I zp;

  ChannelVector(size_t cols, size_t j, const int32_t* channel_term, const int32_t* zb, bool row_sums,
                const OutputStage& stage, size_t n0) {
    n = cols - j >= V::kLanes ? V::kLanes : cols - j;
    mask = V::tail(n);
    term = V::load(mask, channel_term + j);
    zb_pairs = V::zero();
    if (row_sums) {
      const I z = V::load(mask, zb + j);
      zb_pairs = V::xor_(V::and_(z, V::set1(0xFFFF)), V::template slli<24>(z));  // low half zb, high 256·zb
    }
    zp = V::set1(stage.zero_point);
    if constexpr (kMode == RequantMode::kFloat) {
      // clamp(nearbyint(x) + zp, qmin, qmax) == nearbyint(clamp(x, qmin - zp, qmax - zp)) + zp:
      // the bounds are integers (exact in float) and rounding is monotonic and keeps integers.
      // Clamping first also keeps the conversion in range.
      m = V::loadf(mask, stage.multiplier + n0 + j);
      flo = V::set1f(static_cast<float>(stage.qmin - stage.zero_point));
      fhi = V::set1f(static_cast<float>(stage.qmax - stage.zero_point));
    } else {
      m0 = V::load(mask, stage.fixed_multiplier + n0 + j);
      shift = V::load(mask, stage.fixed_shift + n0 + j);
      // clamp(v + zp, qmin, qmax) as clamp(v, qmin - zp, qmax - zp) + zp: no int32 overflow.
      lo = V::set1(stage.qmin - stage.zero_point);
      hi = V::set1(stage.qmax - stage.zero_point);
    }
  }

  // acc + term - zb · row_sum for this vector's channels of one row (split: the row's
  // split row sum (split_row_sums) in every lane, used when kRowSums). kWhole: the vector has kLanes columns.
  template <bool kWhole, bool kRowSums>
  I total(const int32_t* acc, I split) const {
    // A whole vector by a plain load: the kernel has just stored acc, and a masked load cannot take
    // its value from the store buffer (it waits for the store to reach the cache).
    I t = V::add(kWhole ? V::loadu(acc) : V::load(mask, acc), term);
    if constexpr (kRowSums) t = V::sub(t, V::madd16(zb_pairs, split));
    return t;
  }

  template <bool kWhole, bool kRowSums>
  I value(const int32_t* acc, I split) const {
    if constexpr (kMode == RequantMode::kFloat) {
      const F x = V::mulf(V::cvtf(total<kWhole, kRowSums>(acc, split)), m);
      return V::add(V::round(V::minf(V::maxf(x, flo), fhi)), zp);
    } else {
      const I t = total<kWhole, kRowSums>(acc, split);
      return V::add(V::min(V::max(fixed_point_multiply<V>(t, m0, shift), lo), hi), zp);
    }
  }
};

// The vector code RequantizeDispatch (requantize_dispatch.h) runs per output type and mode.
template <typename V>
struct RequantizeStage {
  using I = typename V::I;
  using F = typename V::F;

  template <typename Q, RequantMode kMode>
  static void quantized(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                        const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, Q* out,
                        size_t out_stride) {
    if (row_sum != nullptr) {
      quantized_rows<Q, kMode, true>(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out,
                                     out_stride);
    } else {
      quantized_rows<Q, kMode, false>(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out,
                                      out_stride);
    }
  }

  template <typename Q, RequantMode kMode, bool kRowSums>
  static void quantized_rows(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride,
                             const int32_t* channel_term, const int32_t* zb, const int32_t* row_sum,
                             const OutputStage& stage, size_t n0, Q* out, size_t out_stride) {
    using Vector = ChannelVector<V, kMode>;
    alignas(64) int32_t split[kSplitRows];  // whole vectors: kSplitRows is a multiple of kLanes
    for (size_t i0 = 0; i0 < rows; i0 += kSplitRows) {
      const size_t count = rows - i0 < kSplitRows ? rows - i0 : kSplitRows;
      if constexpr (kRowSums) split_row_sums<V>(row_sum + i0, count, split);
      const auto row_split = [&](size_t i) { return kRowSums ? V::set1(split[i]) : V::zero(); };
      const int32_t* acc_rows = acc + i0 * acc_stride;
      Q* out_rows = out + i0 * out_stride;
      size_t j = 0;
      if constexpr (sizeof(Q) == 1) {
        // Four vectors of a row narrow into one register of bytes and one store: two 32-to-16
        // and one 16-to-8 saturating packs and a lane permute, where a narrowing store per vector
        // took two shuffle-port uops each (the lanes are in range, so the packs only narrow).
        for (; j + 4 * V::kLanes <= cols; j += 4 * V::kLanes) {
          const Vector v0(cols, j, channel_term, zb, kRowSums, stage, n0);
          const Vector v1(cols, j + V::kLanes, channel_term, zb, kRowSums, stage, n0);
          const Vector v2(cols, j + 2 * V::kLanes, channel_term, zb, kRowSums, stage, n0);
          const Vector v3(cols, j + 3 * V::kLanes, channel_term, zb, kRowSums, stage, n0);
          for (size_t i = 0; i < count; ++i) {
            const int32_t* a = acc_rows + i * acc_stride + j;
            const I s = row_split(i);
            V::template store4<Q>(out_rows + i * out_stride + j, v0.template value<true, kRowSums>(a, s),
                                  v1.template value<true, kRowSums>(a + V::kLanes, s),
                                  v2.template value<true, kRowSums>(a + 2 * V::kLanes, s),
                                  v3.template value<true, kRowSums>(a + 3 * V::kLanes, s));
          }
        }
      }
      for (; j < cols; j += V::kLanes) {
        const Vector v(cols, j, channel_term, zb, kRowSums, stage, n0);
        for (size_t i = 0; i < count; ++i) {
          const int32_t* a = acc_rows + i * acc_stride + j;
          const I y = v.n == V::kLanes ? v.template value<true, kRowSums>(a, row_split(i))
                                       : v.template value<false, kRowSums>(a, row_split(i));
          V::store(out_rows + i * out_stride + j, y, v.mask, v.n);
        }
      }
    }
  }

  static void to_float(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                       const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, float* out,
                       size_t out_stride) {
    if (row_sum != nullptr) {
      to_float_rows<true>(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out, out_stride);
    } else {
      to_float_rows<false>(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0, out, out_stride);
    }
  }

  template <bool kRowSums>
  static void to_float_rows(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride,
                            const int32_t* channel_term, const int32_t* zb, const int32_t* row_sum,
                            const OutputStage& stage, size_t n0, float* out, size_t out_stride) {
    const F lo = V::set1f(stage.fmin), hi = V::set1f(stage.fmax);
    alignas(64) int32_t split[kSplitRows];  // whole vectors: kSplitRows is a multiple of kLanes
    for (size_t i0 = 0; i0 < rows; i0 += kSplitRows) {
      const size_t count = rows - i0 < kSplitRows ? rows - i0 : kSplitRows;
      if constexpr (kRowSums) split_row_sums<V>(row_sum + i0, count, split);
      for (size_t j = 0; j < cols; j += V::kLanes) {
        // The float multiplier; the quantized clamp and zero point are not used.
        const ChannelVector<V, RequantMode::kFloat> v(cols, j, channel_term, zb, kRowSums, stage, n0);
        for (size_t i = 0; i < count; ++i) {
          const int32_t* a = acc + (i0 + i) * acc_stride + j;
          const I s = kRowSums ? V::set1(split[i]) : V::zero();
          const I t =
              v.n == V::kLanes ? v.template total<true, kRowSums>(a, s) : v.template total<false, kRowSums>(a, s);
          const F y = V::mulf(V::cvtf(t), v.m);
          // Operand order as in the scalar reference's comparisons (maxps returns its second
          // operand on equality): -0 results compare the same way.
          V::storef(out + (i0 + i) * out_stride + j, v.mask, V::minf(V::maxf(y, lo), hi));
        }
      }
    }
  }
};

}  // namespace
}  // namespace ukernels
}  // namespace circle_quant
