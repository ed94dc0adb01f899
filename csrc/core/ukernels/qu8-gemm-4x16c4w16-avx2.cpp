// AVX2: exact u8×s8 dot products with vpmaddwd on operands widened to int16 before the loop,
// 4 rows × 16 channels per tile.
//
// The same arithmetic as qu8-gemm-3x16c4-avx2 (no vpmaddubsw, whose int16 pair sums saturate:
// 255·127·2 > 32767), without its in-loop unpacking: the driver widens A once per call and each
// column chunk of B once per call (widen_a / widen_b below), and every tile then reads int16
// pairs ready for vpmaddwd. The inner loop is 2 vpmaddwd + 2 vpaddd per 32 MACs and broadcast
// loads; nothing else. Calls of few rows use the 3x16 kernel (widening B would cost as much as
// their GEMM).
//
// Working layouts (k group g = k values 4g..4g+3; bytes past k are zero):
//   A, per row: groups int32 words (a0 | a2 << 16) — the "even" bytes — then groups int32 words
//      (a1 | a3 << 16), the "odd" ones: row stride groups · 8 bytes.
//   B, per 16-channel block and group: 4 vectors of 8 int16 pairs, [even 0-7, odd 0-7, even 8-15,
//      odd 8-15]; even lane j = (b0[j], b2[j]), odd lane j = (b1[j], b3[j]): 128 bytes per group.
// vpmaddwd(even A, even B) + vpmaddwd(odd A, odd B) = Σ of the group's 4 products per channel,
// exact in int32 (|a·b| ≤ 255·128).
#include <immintrin.h>

#include <cstring>

#include "gemm_x86_common.h"
#include "qgemm_ukernels.h"

#define CQ_UNROLL _Pragma("GCC unroll 32")

namespace circle_quant {
namespace ukernels {
namespace {

constexpr size_t kMr = 4;
constexpr size_t kBlocks = 1;
constexpr size_t kAGroupBytes = 8;    // even word + odd word per row
constexpr size_t kBGroupBytes = 128;  // 4 int16 vectors per block
// Below: qu8-gemm-3x16c4-avx2, which unpacks B in registers. Measured (768 -> 3072, one thread): at
// 4 rows widening B costs more than unpacking it for 2 row tiles; from 8 rows on it pays.
constexpr size_t kMinRows = 8;

size_t groups_of(size_t k) { return (k + kGemmKr - 1) / kGemmKr; }

void widen_a(size_t rows, size_t k, const uint8_t* a, size_t a_stride, uint8_t* out) {
  const size_t groups = groups_of(k);
  const __m256i low_bytes = _mm256_set1_epi16(0x00FF);
  for (size_t i = 0; i < rows; ++i) {
    const uint8_t* src = a + i * a_stride;
    uint8_t* even = out + i * groups * kAGroupBytes;
    uint8_t* odd = even + groups * 4;
    size_t g = 0;
    for (; (g + 8) * kGemmKr <= k; g += 8) {  // 8 groups from one 32-byte load
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + g * kGemmKr));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(even + g * 4), _mm256_and_si256(v, low_bytes));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(odd + g * 4), _mm256_srli_epi16(v, 8));
    }
    for (; g < groups; ++g) {  // the rest, and a partial last group zero padded
      uint8_t b[4] = {0, 0, 0, 0};
      for (size_t j = 0; j < kGemmKr && g * kGemmKr + j < k; ++j) b[j] = src[g * kGemmKr + j];
      const uint8_t e[4] = {b[0], 0, b[2], 0}, o[4] = {b[1], 0, b[3], 0};
      std::memcpy(even + g * 4, e, 4);
      std::memcpy(odd + g * 4, o, 4);
    }
  }
}

void widen_b(size_t blocks, size_t k, const int8_t* b, size_t block_stride, int8_t* out) {
  const size_t groups = groups_of(k);
  for (size_t nb = 0; nb < blocks; ++nb) {
    const int8_t* src = b + nb * block_stride;
    int8_t* dst = out + nb * groups * kBGroupBytes;
    for (size_t g = 0; g < groups; ++g) {
      for (size_t h = 0; h < 2; ++h) {  // channels 8h..8h+7: 32 packed bytes
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + g * kGemmNr * kGemmKr + h * 32));
        const __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8);  // b0, b2 sign-extended
        const __m256i odd = _mm256_srai_epi16(v, 8);                         // b1, b3
        int8_t* d = dst + g * kBGroupBytes + h * 64;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), even);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 32), odd);
      }
    }
  }
}

inline __m256i broadcast_word(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

template <size_t MR, size_t NB>
struct Tile {
  static_assert(NB == 1, "one block per tile");
  // a: working A (row stride a_stride bytes), b: working B of one block.
  static void run(size_t k, const uint8_t* a, size_t a_stride, const int8_t* b, size_t /*block_stride*/, int32_t* acc,
                  size_t acc_stride) {
    const size_t groups = groups_of(k);
    __m256i vacc[MR][2];
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      vacc[r][0] = _mm256_setzero_si256();
      vacc[r][1] = _mm256_setzero_si256();
    }
    for (size_t g = 0; g < groups; ++g) {
      const __m256i* w = reinterpret_cast<const __m256i*>(b + g * kBGroupBytes);
      const __m256i even0 = _mm256_loadu_si256(w), odd0 = _mm256_loadu_si256(w + 1);
      const __m256i even1 = _mm256_loadu_si256(w + 2), odd1 = _mm256_loadu_si256(w + 3);
      CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
        const uint8_t* row = a + r * a_stride;
        const __m256i ae = broadcast_word(row + g * 4);
        const __m256i ao = broadcast_word(row + groups * 4 + g * 4);
        vacc[r][0] = _mm256_add_epi32(vacc[r][0], _mm256_madd_epi16(ae, even0));
        vacc[r][1] = _mm256_add_epi32(vacc[r][1], _mm256_madd_epi16(ae, even1));
        vacc[r][0] = _mm256_add_epi32(vacc[r][0], _mm256_madd_epi16(ao, odd0));
        vacc[r][1] = _mm256_add_epi32(vacc[r][1], _mm256_madd_epi16(ao, odd1));
      }
    }
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * acc_stride), vacc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * acc_stride + 8), vacc[r][1]);
    }
  }
};

constexpr x86::TileTable<kMr, kBlocks, Tile> kTiles;

void accumulate_avx2_w16(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                         size_t block_stride, int32_t* acc, size_t acc_stride) {
  kTiles.fn[mr - 1][blocks - 1](k, a, a_stride, b, block_stride, acc, acc_stride);
}

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_4x16c4w16_avx2 = {"qu8-gemm-4x16c4w16-avx2",
                                                            &accumulate_avx2_w16,
                                                            &qs32_requantize_avx2,
                                                            kMr,
                                                            kBlocks,
                                                            false,
                                                            &q8_vadd_avx2,
                                                            &widen_a,
                                                            &widen_b,
                                                            kAGroupBytes,
                                                            kBGroupBytes,
                                                            kMinRows};

}  // namespace ukernels
}  // namespace circle_quant
