// AVX2: exact u8×s8 dot products through int16 and vpmaddwd, 3 rows × 16 channels per tile.
//
// vpmaddubsw would be twice as fast but adds two u8·s8 products into int16 with saturation
// (255·127·2 > 32767): a silent wrong answer. Here the bytes are split into int16 lanes and
// vpmaddwd adds pairs of exact products into int32. A k group of a channel is 4 bytes, i.e. two
// int16 lanes (b0 | b1 << 8) and (b2 | b3 << 8); the even bytes (b0, b2; sign-extended by
// shifting left then arithmetically right) and the odd bytes (b1, b3; arithmetic shift) each make
// one int16 vector, and likewise for the row's broadcast A bytes (and / logical shift: zero
// extension). vpmaddwd(a_even, b_even) + vpmaddwd(a_odd, b_odd) is then the group's 4-product
// dot, one int32 lane per channel and in channel order. Only shifts and ands, no shuffles.
// Registers: 3 rows × 2 accumulators per block, 3 × 2 A vectors, 2 B vectors of AVX2's 16.
#include <immintrin.h>

#include "gemm_x86_common.h"
#include "qgemm_ukernels.h"

#define CQ_UNROLL _Pragma("GCC unroll 32")

namespace circle_quant {
namespace ukernels {
namespace {

constexpr size_t kMr = 3;
constexpr size_t kBlocks = 1;

template <size_t MR, size_t NB>
struct Tile {
  static void run(size_t k, const uint8_t* a, size_t a_stride, const int8_t* b, size_t block_stride, int32_t* acc,
                  size_t acc_stride) {
    constexpr size_t kHalves = NB * 2;  // accumulator h: channels 8h..8h+7, one lane each
    const __m256i low_bytes = _mm256_set1_epi16(0x00FF);
    // Plain loops over local arrays in one function: GCC keeps the accumulators in registers.
    __m256i vacc[MR][kHalves];
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      CQ_UNROLL for (size_t h = 0; h < kHalves; ++h) vacc[r][h] = _mm256_setzero_si256();
    }
    const size_t groups = (k + kGemmKr - 1) / kGemmKr;
    const size_t full = k / kGemmKr;
    for (size_t g = 0; g < groups; ++g) {
      __m256i a_even[MR], a_odd[MR];
      CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
        const uint8_t* p = a + r * a_stride + g * kGemmKr;
        // The last group may be partial: never read past the row.
        const uint32_t group = g < full ? x86::load_group(p) : x86::load_group_tail(p, k % kGemmKr);
        const __m256i va = _mm256_set1_epi32(static_cast<int32_t>(group));
        a_even[r] = _mm256_and_si256(va, low_bytes);  // a0, a2 as int16
        a_odd[r] = _mm256_srli_epi16(va, 8);          // a1, a3
      }
      CQ_UNROLL for (size_t h = 0; h < kHalves; ++h) {
        const int8_t* w = b + (h / 2) * block_stride + g * kGemmNr * kGemmKr + (h % 2) * 32;
        const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
        const __m256i b_even = _mm256_srai_epi16(_mm256_slli_epi16(vb, 8), 8);  // b0, b2
        const __m256i b_odd = _mm256_srai_epi16(vb, 8);                         // b1, b3
        CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
          vacc[r][h] = _mm256_add_epi32(vacc[r][h], _mm256_madd_epi16(a_even[r], b_even));
          vacc[r][h] = _mm256_add_epi32(vacc[r][h], _mm256_madd_epi16(a_odd[r], b_odd));
        }
      }
    }
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      CQ_UNROLL for (size_t h = 0; h < kHalves; ++h) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * acc_stride + h * 8), vacc[r][h]);
      }
    }
  }
};

constexpr x86::TileTable<kMr, kBlocks, Tile> kTiles;

void accumulate_avx2(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                     size_t block_stride, int32_t* acc, size_t acc_stride) {
  kTiles.fn[mr - 1][blocks - 1](k, a, a_stride, b, block_stride, acc, acc_stride);
}

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_3x16c4_avx2 = {
    "qu8-gemm-3x16c4-avx2", &accumulate_avx2, &qs32_requantize_avx2, kMr, kBlocks, false, &q8_vadd_avx2};

}  // namespace ukernels
}  // namespace circle_quant
