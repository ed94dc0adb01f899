// The AVX-512 VNNI GEMM tile (vpdpbusd on zmm) for any rows × blocks, shared by the kernels that
// differ only in their tile shape (qu8-gemm-8x48c4-avx512vnni, qu8-gemm-6x64c4-avx512vnni).
//
// One k group (4 consecutive k) of one 16-channel block is exactly one zmm of packed B
// ([k/4][16][4], qgemm.h); a row's 4 A bytes are broadcast to all 16 lanes, and vpdpbusd adds
// the 4 u8×s8 products of each lane to its int32 accumulator: exact, no intermediate saturation
// (unlike vpdpbusds or vpmaddubsw).
#pragma once

#include <immintrin.h>

#include <utility>

#include "gemm_x86_common.h"
#include "qgemm_ukernels.h"

#define CQ_UNROLL _Pragma("GCC unroll 32")

namespace circle_quant {
namespace ukernels {
namespace {  // internal linkage: each including file compiles it with its own flags

constexpr size_t kGroupBytes = kGemmNr * kGemmKr;  // one k group of one block: 64 bytes

// vpdpbusd has a latency of 4 cycles and issues twice per cycle, so 8 independent chains keep
// it busy. Small tiles (M = 1, the last rows) give each of kSets sets every kSets-th k group and
// add the sets at the end.
constexpr size_t accumulator_sets(size_t accumulators) { return accumulators >= 8 ? 1 : accumulators >= 4 ? 2 : 4; }

// The k groups after the main loop (fewer than kSets, the last one possibly partial) on the
// stored tile: a short read-modify-write of acc, kept out of the main loop so the compiler
// keeps its accumulators in registers.
template <size_t MR, size_t NB>
void accumulate_tail(size_t bytes, const uint8_t* a, size_t a_stride, const int8_t* b, size_t block_stride,
                     int32_t* acc, size_t acc_stride) {
  for (size_t kk = 0; kk < bytes; kk += kGemmKr) {
    const size_t n = bytes - kk;
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      const uint8_t* p = a + r * a_stride + kk;
      const __m512i va =
          _mm512_set1_epi32(static_cast<int32_t>(n >= kGemmKr ? x86::load_group(p) : x86::load_group_tail(p, n)));
      CQ_UNROLL for (size_t nb = 0; nb < NB; ++nb) {
        int32_t* out = acc + r * acc_stride + nb * kGemmNr;
        const __m512i vb = _mm512_loadu_si512(b + nb * block_stride + kk * kGemmNr);
        _mm512_storeu_si512(out, _mm512_dpbusd_epi32(_mm512_loadu_si512(out), va, vb));
      }
    }
  }
}

template <size_t MR, size_t NB>
struct Tile {
  // Row r's bytes as `runs` runs of run_k at row_r + offsets[t] (row_r = a + r · a_stride, or
  // a + row_offsets[r]), B the packed weights in that order; run_k is whole steps of every
  // accumulator set. Stores the sums. The implicit GEMM calls it with one run per tap
  // (GemmAccumulateTapsFn), run() with one run.
  static void runs(size_t runs, const int64_t* offsets, size_t run_k, const uint8_t* a, size_t a_stride,
                   const int64_t* row_offsets, const int8_t* b, size_t block_stride, int32_t* acc, size_t acc_stride) {
    if (row_offsets != nullptr) {
      sum_runs<true>(runs, offsets, run_k, a, a_stride, row_offsets, b, block_stride, acc, acc_stride);
    } else {
      sum_runs<false>(runs, offsets, run_k, a, a_stride, nullptr, b, block_stride, acc, acc_stride);
    }
  }

  // runs() for one form of rows. Two copies because GCC addresses rows at one stride as one
  // pointer plus multiples of the stride, but steps six free row pointers one by one (six more
  // adds per k group, a few percent on a 64-channel 3x3 conv).
  template <bool kByOffset>
  static void sum_runs(size_t runs, const int64_t* offsets, size_t run_k, const uint8_t* a, size_t a_stride,
                       const int64_t* row_offsets, const int8_t* b, size_t block_stride, int32_t* acc,
                       size_t acc_stride) {
    const uint8_t* row[MR];
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) row[r] = a + (kByOffset ? row_offsets[r] : 0);
    constexpr size_t kSets = accumulator_sets(MR * NB);
    // Written as plain loops over local arrays in one function: GCC then keeps every
    // accumulator in a register (passing the arrays to helpers made it spill them).
    __m512i vacc[kSets][MR][NB];
    CQ_UNROLL for (size_t s = 0; s < kSets; ++s) {
      CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
        CQ_UNROLL for (size_t nb = 0; nb < NB; ++nb) vacc[s][r][nb] = _mm512_setzero_si512();
      }
    }
    const size_t run_groups = run_k / kGemmKr;
    for (size_t t = 0; t < runs; ++t) {
      const uint8_t* at = a + offsets[t];
      const int8_t* bt = b + t * run_groups * kGroupBytes;
      for (size_t g = 0; g < run_groups; g += kSets) {
        CQ_UNROLL for (size_t s = 0; s < kSets; ++s) {
          __m512i vb[NB];
          CQ_UNROLL for (size_t nb = 0; nb < NB; ++nb) {
            vb[nb] = _mm512_loadu_si512(bt + nb * block_stride + (g + s) * kGroupBytes);
            // Keeps B in a register: otherwise GCC folds the load into every vpdpbusd that uses
            // it, MR loads instead of one.
            __asm__("" : "+v"(vb[nb]));
          }
          CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
            const uint8_t* p = kByOffset ? row[r] + offsets[t] : at + r * a_stride;
            const __m512i va = _mm512_set1_epi32(static_cast<int32_t>(x86::load_group(p + (g + s) * kGemmKr)));
            CQ_UNROLL for (size_t nb = 0; nb < NB; ++nb) {
              vacc[s][r][nb] = _mm512_dpbusd_epi32(vacc[s][r][nb], va, vb[nb]);
            }
          }
        }
      }
    }
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      CQ_UNROLL for (size_t nb = 0; nb < NB; ++nb) {
        __m512i sum = vacc[0][r][nb];
        CQ_UNROLL for (size_t s = 1; s < kSets; ++s) sum = _mm512_add_epi32(sum, vacc[s][r][nb]);
        _mm512_storeu_si512(acc + r * acc_stride + nb * kGemmNr, sum);
      }
    }
  }

  static void run(size_t k, const uint8_t* a, size_t a_stride, const int8_t* b, size_t block_stride, int32_t* acc,
                  size_t acc_stride) {
    constexpr size_t kSets = accumulator_sets(MR * NB);
    const size_t main_groups = k / (kGemmKr * kSets) * kSets;
    constexpr int64_t kWhole = 0;
    runs(1, &kWhole, main_groups * kGemmKr, a, a_stride, nullptr, b, block_stride, acc, acc_stride);
    const size_t done = main_groups * kGemmKr;
    if (k > done) {
      accumulate_tail<MR, NB>(k - done, a + done, a_stride, b + main_groups * kGroupBytes, block_stride, acc,
                              acc_stride);
    }
  }
};

// The implicit-GEMM form (GemmAccumulateTapsFn): tap_k a multiple of kVnniTapAlign, so every tap
// is whole steps of every accumulator set and Tile::runs needs no tail.
constexpr size_t kVnniTapAlign = 16;
static_assert(kVnniTapAlign % (kGemmKr * accumulator_sets(1)) == 0, "a tap must be whole steps of every set");

// The descriptor of a VNNI kernel of this tile: everything but its name, shape and entry points
// is shared (packed B as it is, the AVX-512 output stage and add, taps of kVnniTapAlign bytes).
constexpr GemmMicrokernel vnni_microkernel(const char* name, GemmAccumulateFn accumulate,
                                           GemmAccumulateTapsFn accumulate_taps, size_t mr, size_t blocks) {
  GemmMicrokernel k{name, accumulate, &qs32_requantize_avx512, mr, blocks, false, &q8_vadd_avx512};
  k.accumulate_taps = accumulate_taps;
  k.tap_align = kVnniTapAlign;
  k.reads_row_offsets = true;
  return k;
}

}  // namespace
}  // namespace ukernels
}  // namespace circle_quant
