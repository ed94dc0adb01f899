// The avxvnni GEMM tile (vpdpbusd on ymm), written once for two encodings of the instruction:
// VEX (AVX-VNNI, qu8-gemm-6x16c4-avxvnni.cpp) and EVEX (AVX512-VNNI + VL,
// qu8-gemm-6x16c4-evex-avx512vnni.cpp). The EVEX build exists for testing: it runs the same code
// on AVX-512 machines that lack AVX-VNNI (AMD Zen 4 has AVX512-VNNI only).
//
// One k group of one 16-channel block is two ymm of packed B (channels 0-7 and 8-15); each row's
// 4 A bytes are broadcast to 8 lanes. 6 rows × 1 block = 12 accumulators, 2 B registers and a
// broadcast fit AVX2's 16 ymm registers.
#pragma once

#include <immintrin.h>

#include "gemm_x86_common.h"
#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {  // internal linkage: compiled with different flags in each including file

constexpr size_t kAvxVnniMr = 6;
constexpr size_t kAvxVnniBlocks = 1;

// Dot::dpbusd(acc, a_u8, b_s8): acc + the 4 u8·s8 products of each lane (vpdpbusd).
#define CQ_UNROLL _Pragma("GCC unroll 32")

// Dot::dpbusd(acc, a_u8, b_s8): acc + the 4 u8·s8 products of each lane (vpdpbusd).
template <class Dot>
struct AvxVnniKernel {
  // vpdpbusd's latency is 4 cycles at 2 per cycle: tiles with fewer than 8 accumulators give each
  // of kSets sets every kSets-th k group.
  static constexpr size_t sets(size_t accumulators) { return accumulators >= 8 ? 1 : accumulators >= 4 ? 2 : 4; }

  // The k groups after the main loop (fewer than kSets, the last one possibly partial) on the
  // stored tile, out of the main loop so that its accumulators stay in registers.
  template <size_t MR, size_t NB>
  static void accumulate_tail(size_t bytes, const uint8_t* a, size_t a_stride, const int8_t* b, size_t block_stride,
                              int32_t* acc, size_t acc_stride) {
    for (size_t kk = 0; kk < bytes; kk += kGemmKr) {
      const size_t n = bytes - kk;
      CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
        const uint8_t* p = a + r * a_stride + kk;
        const __m256i va =
            _mm256_set1_epi32(static_cast<int32_t>(n >= kGemmKr ? x86::load_group(p) : x86::load_group_tail(p, n)));
        CQ_UNROLL for (size_t h = 0; h < NB * 2; ++h) {
          int32_t* out = acc + r * acc_stride + h * 8;
          const int8_t* w = b + (h / 2) * block_stride + kk * kGemmNr + (h % 2) * 32;
          const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
          __m256i* out_v = reinterpret_cast<__m256i*>(out);
          _mm256_storeu_si256(out_v, Dot::dpbusd(_mm256_loadu_si256(out_v), va, vb));
        }
      }
    }
  }

  // Accumulators [set][row][half block]: half h covers channels 8h..8h+7 of the tile.
  template <size_t MR, size_t NB>
  struct Tile {
    static void run(size_t k, const uint8_t* a, size_t a_stride, const int8_t* b, size_t block_stride, int32_t* acc,
                    size_t acc_stride) {
      constexpr size_t kHalves = NB * 2;
      constexpr size_t kSets = sets(MR * kHalves);
      // Plain loops over local arrays in one function: GCC keeps the accumulators in registers.
      __m256i vacc[kSets][MR][kHalves];
      CQ_UNROLL for (size_t s = 0; s < kSets; ++s) {
        CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
          CQ_UNROLL for (size_t h = 0; h < kHalves; ++h) vacc[s][r][h] = _mm256_setzero_si256();
        }
      }
      const size_t main_groups = k / (kGemmKr * kSets) * kSets;
      for (size_t g = 0; g < main_groups; g += kSets) {
        CQ_UNROLL for (size_t s = 0; s < kSets; ++s) {
          __m256i vb[kHalves];
          CQ_UNROLL for (size_t h = 0; h < kHalves; ++h) {
            const int8_t* w = b + (h / 2) * block_stride + (g + s) * kGemmNr * kGemmKr + (h % 2) * 32;
            vb[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
            __asm__("" : "+x"(vb[h]));  // one load per k group, not one per row
          }
          CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
            const __m256i va =
                _mm256_set1_epi32(static_cast<int32_t>(x86::load_group(a + r * a_stride + (g + s) * kGemmKr)));
            CQ_UNROLL for (size_t h = 0; h < kHalves; ++h) { vacc[s][r][h] = Dot::dpbusd(vacc[s][r][h], va, vb[h]); }
          }
        }
      }
      CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
        CQ_UNROLL for (size_t h = 0; h < kHalves; ++h) {
          __m256i sum = vacc[0][r][h];
          CQ_UNROLL for (size_t s = 1; s < kSets; ++s) sum = _mm256_add_epi32(sum, vacc[s][r][h]);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * acc_stride + h * 8), sum);
        }
      }
      const size_t done = main_groups * kGemmKr;
      if (k > done) {
        accumulate_tail<MR, NB>(k - done, a + done, a_stride, b + main_groups * kGemmNr * kGemmKr, block_stride, acc,
                                acc_stride);
      }
    }
  };

  static constexpr x86::TileTable<kAvxVnniMr, kAvxVnniBlocks, Tile> kTiles{};

  static void accumulate(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                         size_t block_stride, int32_t* acc, size_t acc_stride) {
    kTiles.fn[mr - 1][blocks - 1](k, a, a_stride, b, block_stride, acc, acc_stride);
  }
};

#undef CQ_UNROLL

}  // namespace
}  // namespace ukernels
}  // namespace circle_quant
