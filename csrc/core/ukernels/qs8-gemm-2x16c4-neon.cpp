// Baseline NEON (cores without the dot product, e.g. Cortex-A72): 2 rows × 16 channels per
// step. smull multiplies 8 int8 pairs into int16 (|product| ≤ 2^14, exact) and sadalp adds
// neighbouring products into int32 straight away: adding two products in int16 first would
// overflow for (-128)·(-128) + (-128)·(-128) = 32768.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "neon_common.h"

namespace circle_quant {
namespace ukernels {
namespace {

constexpr size_t kMr = 2;

// One c4 group of B (64 bytes, columns 4c..4c+3 in register c) against each row's 4 A bytes of
// that group, repeated in every lane (a[r]). acc[r][2c] holds the pair sums of columns 4c, 4c+1
// (two per column), acc[r][2c + 1] those of columns 4c+2, 4c+3.
template <size_t R>
inline void mul_group(int32x4_t (&acc)[R][8], const int8x16_t (&a)[R], const int8_t* b) {
  for (size_t c = 0; c < 4; ++c) {
    const int8x16_t vb = vld1q_s8(b + 16 * c);
    for (size_t r = 0; r < R; ++r) {
      acc[r][2 * c] = vpadalq_s16(acc[r][2 * c], vmull_s8(vget_low_s8(vb), vget_low_s8(a[r])));
      acc[r][2 * c + 1] = vpadalq_s16(acc[r][2 * c + 1], vmull_high_s8(vb, a[r]));
    }
  }
}

// The 4 bytes of a group, in every 32-bit lane.
inline int8x16_t broadcast_group(const int8_t* p) {
  int32_t g;
  std::memcpy(&g, p, sizeof g);
  return vreinterpretq_s8_s32(vdupq_n_s32(g));
}

// R rows (R ≥ mr). Rows past mr repeat the last real row: computed, never stored, nothing
// extra read. One c4 group per step: with 16 accumulators live, unrolling further spills.
template <size_t R>
void accumulate_rows(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                     size_t block_stride, int32_t* acc, size_t acc_stride) {
  const int8_t* rows[R];
  for (size_t r = 0; r < R; ++r) {
    rows[r] = reinterpret_cast<const int8_t*>(a + std::min(r, mr - 1) * a_stride);
  }
  const size_t k_main = k & ~size_t{3};
  const size_t rem = k - k_main;
  // The last k % 4 bytes of each row, zero padded (a whole group would read past k); the
  // padded weights are zero as well.
  int8_t tail[R][4] = {};
  if (rem != 0) {
    for (size_t r = 0; r < R; ++r) std::memcpy(tail[r], rows[r] + k_main, rem);
  }

  for (size_t nb = 0; nb < blocks; ++nb) {
    const int8_t* w = b + nb * block_stride;
    int32x4_t vacc[R][8];
    for (size_t r = 0; r < R; ++r) {
      for (size_t c = 0; c < 8; ++c) vacc[r][c] = vdupq_n_s32(0);
    }
    int8x16_t va[R];
    for (size_t kk = 0; kk < k_main; kk += 4) {
      for (size_t r = 0; r < R; ++r) va[r] = broadcast_group(rows[r] + kk);
      mul_group<R>(vacc, va, w);
      w += 64;
    }
    if (rem != 0) {
      for (size_t r = 0; r < R; ++r) va[r] = broadcast_group(tail[r]);
      mul_group<R>(vacc, va, w);
    }
    // Pairwise sums → one int32 per column: [4c, 4c+1, 4c+2, 4c+3].
    int32_t* out = acc + nb * kGemmNr;
    for (size_t r = 0; r < R; ++r) {
      if (r >= mr) break;
      for (size_t c = 0; c < 4; ++c) {
        vst1q_s32(out + r * acc_stride + 4 * c, vpaddq_s32(vacc[r][2 * c], vacc[r][2 * c + 1]));
      }
    }
  }
}

void accumulate_neon(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                     size_t block_stride, int32_t* acc, size_t acc_stride) {
  // A single row (GEMV, token-by-token decoding) would otherwise pay for two.
  if (mr == 1) {
    return accumulate_rows<1>(mr, blocks, k, a, a_stride, b, block_stride, acc, acc_stride);
  }
  accumulate_rows<kMr>(mr, blocks, k, a, a_stride, b, block_stride, acc, acc_stride);
}

}  // namespace

extern constexpr GemmMicrokernel qs8_gemm_2x16c4_neon = {
    "qs8-gemm-2x16c4-neon", &accumulate_neon, &qs32_requantize_neon, kMr, 1, true, &q8_vadd_neon};

}  // namespace ukernels
}  // namespace circle_quant
