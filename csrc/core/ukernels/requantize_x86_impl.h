// The x86 output stage (RequantizeFn in qgemm_ukernels.h), written once over a lane-traits type V
// and bit-exact with qs32_requantize_scalar (docs/numerics.md, "Integer GEMM").
// qs32-requantize-avx2.cpp (8 lanes, conditions in vector registers) and qs32-requantize-avx512.cpp
// (16 lanes, conditions in mask registers) each define V and instantiate RequantizeStage<V>.
// Included only by those two files, each compiled with its own ISA flags; everything here is in an
// anonymous namespace, so each file keeps its own copy and the linker cannot pick one ISA's code
// for the other.
//
// V provides, with I an int32 vector, F a float vector and Mask a per-lane condition:
//   kLanes; tail(n): the lanes < n; loadu(const int32_t*): a whole vector; load(mask,
//     const int32_t*), loadf(mask, const float*): masked loads (lanes outside the mask are zero
//     and not read);
//   set1, set1f, zero; add, sub, mullo, min, max, and_, xor_; sllv, srav (per-lane counts);
//     srai<bits> (these and cvtf, mulf, minf, maxf: CIRCLE_REQUANTIZE_LANE_OPS below);
//   eq, gt -> Mask; both(Mask, Mask); select(c, a, b): a where c, else b;
//     increment_where(c, v): v + 1 where c;
//   rounding_high_mul(x, m): per lane, bits 31..62 of the 64-bit x·m + 2^30 (how the 64-bit
//     products are laid out is the ISA's business);
//   cvtf (int32 to float), mulf, minf, maxf (the operands' order as the ISA's min/max
//     instructions); round(F) -> I: to nearest, ties to even, for values inside int32;
//   store<Q>(Q*, I, mask, n): the first n lanes (= the mask), each already inside Q's range;
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
  static I add(I a, I b) { return P##_add_epi32(a, b); }                                    \
  static I sub(I a, I b) { return P##_sub_epi32(a, b); }                                    \
  static I mullo(I a, I b) { return P##_mullo_epi32(a, b); }                                \
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

// Everything of one channel vector that does not depend on the row.
template <typename V>
struct Channels {
  typename V::I term, zb;  // channel_term, weight zero points (when row sums are used)
  typename V::Mask mask;   // lanes < the remaining columns (all lanes in the body)
  size_t n;                // lanes to store
};

template <typename V>
inline Channels<V> channels(size_t cols, size_t j, const int32_t* channel_term, const int32_t* zb,
                            const int32_t* row_sum) {
  Channels<V> c;
  c.n = cols - j >= V::kLanes ? V::kLanes : cols - j;
  c.mask = V::tail(c.n);
  c.term = V::load(c.mask, channel_term + j);
  c.zb = row_sum != nullptr ? V::load(c.mask, zb + j) : V::zero();
  return c;
}

template <typename V>
inline typename V::I total(const int32_t* acc, const Channels<V>& c, const int32_t* row_sum, size_t i) {
  // A whole vector by a plain load: the kernel has just stored acc, and a masked load cannot take
  // its value from the store buffer (it waits for the store to reach the cache).
  typename V::I t = V::add(c.n == V::kLanes ? V::loadu(acc) : V::load(c.mask, acc), c.term);
  if (row_sum != nullptr) t = V::sub(t, V::mullo(c.zb, V::set1(row_sum[i])));
  return t;
}

// The vector code RequantizeDispatch (requantize_dispatch.h) runs per output type and mode.
template <typename V>
struct RequantizeStage {
  using I = typename V::I;
  using F = typename V::F;

  template <typename Q, RequantMode kMode>
  static void quantized(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                        const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, Q* out,
                        size_t out_stride) {
    const I zp = V::set1(stage.zero_point);
    for (size_t j = 0; j < cols; j += V::kLanes) {
      const Channels<V> c = channels<V>(cols, j, channel_term, zb, row_sum);
      if constexpr (kMode == RequantMode::kFloat) {
        // clamp(nearbyint(x) + zp, qmin, qmax) == nearbyint(clamp(x, qmin - zp, qmax - zp)) + zp:
        // the bounds are integers (exact in float) and rounding is monotonic and keeps integers.
        // Clamping first also keeps the conversion in range.
        const F m = V::loadf(c.mask, stage.multiplier + n0 + j);
        const F lo = V::set1f(static_cast<float>(stage.qmin - stage.zero_point));
        const F hi = V::set1f(static_cast<float>(stage.qmax - stage.zero_point));
        for (size_t i = 0; i < rows; ++i) {
          const F x = V::mulf(V::cvtf(total(acc + i * acc_stride + j, c, row_sum, i)), m);
          V::store(out + i * out_stride + j, V::add(V::round(V::minf(V::maxf(x, lo), hi)), zp), c.mask, c.n);
        }
      } else {
        const I m0 = V::load(c.mask, stage.fixed_multiplier + n0 + j);
        const I shift = V::load(c.mask, stage.fixed_shift + n0 + j);
        // clamp(v + zp, qmin, qmax) as clamp(v, qmin - zp, qmax - zp) + zp: no int32 overflow.
        const I lo = V::set1(stage.qmin - stage.zero_point);
        const I hi = V::set1(stage.qmax - stage.zero_point);
        for (size_t i = 0; i < rows; ++i) {
          const I t = total(acc + i * acc_stride + j, c, row_sum, i);
          const I v = V::min(V::max(fixed_point_multiply<V>(t, m0, shift), lo), hi);
          V::store(out + i * out_stride + j, V::add(v, zp), c.mask, c.n);
        }
      }
    }
  }

  static void to_float(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                       const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, float* out,
                       size_t out_stride) {
    const F lo = V::set1f(stage.fmin), hi = V::set1f(stage.fmax);
    for (size_t j = 0; j < cols; j += V::kLanes) {
      const Channels<V> c = channels<V>(cols, j, channel_term, zb, row_sum);
      const F m = V::loadf(c.mask, stage.multiplier + n0 + j);
      for (size_t i = 0; i < rows; ++i) {
        const F y = V::mulf(V::cvtf(total(acc + i * acc_stride + j, c, row_sum, i)), m);
        // Operand order as in the scalar reference's comparisons (maxps returns its second
        // operand on equality): -0 results compare the same way.
        V::storef(out + i * out_stride + j, c.mask, V::minf(V::maxf(y, lo), hi));
      }
    }
  }
};

}  // namespace
}  // namespace ukernels
}  // namespace circle_quant
