// NEON with the dot product extension (Armv8.2-A DotProd): 4 rows × 16 channels per step, sdot
// on the packed c4 weights. A and B are both int8; each sdot lane adds 4 exact products to an
// int32 lane, so there is no intermediate rounding or saturation.
// Compiled with -march=armv8.2-a+dotprod; called only where the CPU reports asimddp.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "neon_common.h"

namespace circle_quant {
namespace ukernels {
namespace {

constexpr size_t kMr = 4;

// Group L (k offset 4·L) of each row's 16 A bytes against the 16 columns of one c4 group of B
// (64 bytes: columns 4c..4c+3 in register c).
template <int L, size_t R>
inline void dot_group(int32x4_t (&acc)[R][4], const int8x16_t (&a)[R], const int8_t* b) {
  const int8x16_t b0 = vld1q_s8(b);
  const int8x16_t b1 = vld1q_s8(b + 16);
  const int8x16_t b2 = vld1q_s8(b + 32);
  const int8x16_t b3 = vld1q_s8(b + 48);
  for (size_t r = 0; r < R; ++r) {
    acc[r][0] = vdotq_laneq_s32(acc[r][0], b0, a[r], L);
    acc[r][1] = vdotq_laneq_s32(acc[r][1], b1, a[r], L);
    acc[r][2] = vdotq_laneq_s32(acc[r][2], b2, a[r], L);
    acc[r][3] = vdotq_laneq_s32(acc[r][3], b3, a[r], L);
  }
}

// R rows (R ≥ mr). Rows past mr repeat the last real row: they are computed but never stored,
// and nothing beyond the caller's rows is read.
template <size_t R>
void accumulate_rows(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                     size_t block_stride, int32_t* acc, size_t acc_stride) {
  const int8_t* rows[R];
  for (size_t r = 0; r < R; ++r) {
    rows[r] = reinterpret_cast<const int8_t*>(a + std::min(r, mr - 1) * a_stride);
  }
  const size_t k_main = k & ~size_t{15};
  const size_t rem = k - k_main;
  // The last k % 16 bytes of each row, zero padded: loading them whole would read past k. The
  // padded weights are zero too, so the extra lanes add nothing.
  alignas(16) int8_t tail[R][16] = {};
  if (rem != 0) {
    for (size_t r = 0; r < R; ++r) std::memcpy(tail[r], rows[r] + k_main, rem);
  }

  for (size_t nb = 0; nb < blocks; ++nb) {
    const int8_t* w = b + nb * block_stride;
    int32x4_t vacc[R][4];
    for (size_t r = 0; r < R; ++r) {
      for (size_t c = 0; c < 4; ++c) vacc[r][c] = vdupq_n_s32(0);
    }
    int8x16_t va[R];
    for (size_t kk = 0; kk < k_main; kk += 16) {
      for (size_t r = 0; r < R; ++r) va[r] = vld1q_s8(rows[r] + kk);
      dot_group<0, R>(vacc, va, w);
      dot_group<1, R>(vacc, va, w + 64);
      dot_group<2, R>(vacc, va, w + 128);
      dot_group<3, R>(vacc, va, w + 192);
      w += 256;
    }
    if (rem != 0) {
      // Only the c4 groups that exist: the block ends at k rounded up to 4.
      for (size_t r = 0; r < R; ++r) va[r] = vld1q_s8(tail[r]);
      dot_group<0, R>(vacc, va, w);
      if (rem > 4) dot_group<1, R>(vacc, va, w + 64);
      if (rem > 8) dot_group<2, R>(vacc, va, w + 128);
      if (rem > 12) dot_group<3, R>(vacc, va, w + 192);
    }
    // A fixed trip count keeps vacc in registers; rows past mr are not stored.
    int32_t* out = acc + nb * kGemmNr;
    for (size_t r = 0; r < R; ++r) {
      if (r >= mr) break;
      for (size_t c = 0; c < 4; ++c) vst1q_s32(out + r * acc_stride + 4 * c, vacc[r][c]);
    }
  }
}

void accumulate_neondot(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                        size_t block_stride, int32_t* acc, size_t acc_stride) {
  // A single row (GEMV, token-by-token decoding) would otherwise pay for four.
  switch (mr) {
    case 1: return accumulate_rows<1>(mr, blocks, k, a, a_stride, b, block_stride, acc, acc_stride);
    case 2: return accumulate_rows<2>(mr, blocks, k, a, a_stride, b, block_stride, acc, acc_stride);
    default: return accumulate_rows<kMr>(mr, blocks, k, a, a_stride, b, block_stride, acc, acc_stride);
  }
}

}  // namespace

extern constexpr GemmMicrokernel qs8_gemm_4x16c4_neondot = {
    "qs8-gemm-4x16c4-neondot", &accumulate_neondot, &qs32_requantize_neon, kMr, 1, true, &q8_vadd_neon};

}  // namespace ukernels
}  // namespace circle_quant
