// AVX2: exact u8×s8 dot products, 4 rows × 16 channels per tile: vpmaddubsw where it cannot
// saturate, vpmaddwd on int16 where it could.
//
// vpmaddubsw adds two u8·s8 products into int16 with saturation. For a in [0, 255] and a weight
// pair (w0, w1) (k 2j, 2j + 1 of one channel) the pair sum a0·w0 + a1·w1 can only leave int16
// when w0 and w1 have one sign and |w0| + |w1| > 128; otherwise it lies in [-255·128, 255·128] =
// [-32640, 32640]. Which pairs can is known from the weights alone, so the working copy of B,
// built once when the layer is prepacked (prepack_b, stored in its plan), sorts each 16-channel
// block's k groups (4 k × 16 channels, 64 bytes) into two lists:
//   safe tiles (no pair past 128): the packed bytes as they are, multiplied by
//     acc += vpmaddwd(vpmaddubsw(broadcast 4 bytes of A, 32 bytes of B), ones)
//     (3 instructions per 32 MACs, nothing unpacked: oneDNN's loop, without its wrong answers);
//   other tiles: int16 pairs, multiplied by 2 vpmaddwd + 2 vpaddd per 32 MACs on widened A
//     (exact for any weight: |a·w| ≤ 255·128).
// A k group's share of the sum does not depend on the order the groups are added in (exact int32
// arithmetic), so each list is one branch-free loop. Real (bell-shaped) weights have few unsafe
// pairs: Gaussian weights quantized per channel leave about a quarter of the tiles on the int16
// path, uniform ones all (then the kernel costs about 10% more than an int16-only one: the
// sorting and the larger working copies; benchmarks/README.md, "The AVX2 tier").
// (Splitting each unsafe pair into a vpmaddubsw-safe main part and a remainder instead costs 6
// instructions per 32 MACs on every tile with a remainder, against 4 here: slower on uniform weights.)
//
// Working A, per row (groups = ceil(K / 4), bytes past K zero):
//   [0, 4·groups)           the bytes of group g at 4g (vpbroadcastd for safe tiles)
//   [4·groups, 8·groups)    words (a0 | a2 << 16) of group g at 4·groups + 4g ("even")
//   [8·groups, 12·groups)   words (a1 | a3 << 16) ("odd")
// Working B, per 16-channel block (working_b_block_stride() apart), entries e < groups:
//   entry e < safe: a safe tile at 64·e, 64 bytes (packed c4 layout);
//   entry e ≥ safe: a wide tile at 128·(e + 1), 128 bytes: int16 pairs [even 0-7, odd 0-7,
//     even 8-15, odd 8-15] with even lane j = (b0[j], b2[j]), odd lane j = (b1[j], b3[j]);
//   at 128·(groups + 1): int32 A offset 4g of each entry's group; then int32 safe.
// (Safe tiles fill from the front, wide ones from the back, so one branch-free pass writes both.)
#include <immintrin.h>

#include <cstring>

#include "gemm_x86_common.h"
#include "qgemm_ukernels.h"

#define CQ_UNROLL _Pragma("GCC unroll 32")

namespace circle_quant {
namespace ukernels {
namespace {

constexpr size_t kMr = 4;  // 6 rows measured no faster: its accumulators spill (16 ymm registers)
constexpr size_t kBlocks = 1;
constexpr size_t kAGroupBytes = 12;                                    // bytes, even word, odd word
constexpr size_t kSafeTileBytes = kGemmNr * kGemmKr;                   // 64
constexpr size_t kWideTileBytes = 2 * kSafeTileBytes;                  // 128
constexpr size_t kBGroupBytes = kWideTileBytes + sizeof(int32_t);      // worst case: every tile wide
constexpr size_t kBBlockTailBytes = kWideTileBytes + sizeof(int32_t);  // a spare tile, the safe tile count
// Below: qu8-gemm-3x16c4-avx2, which reads the packed bytes. With B prepacked, measured on the
// BERT-base shapes (one thread, Gaussian weights; docs/kernels.md): 1 row 0.70-1.29x the 3x16
// kernel's speed, 2 rows 0.90-1.27x (B past L2 loses: its working copy is larger), 3 rows
// 1.06-1.49x, 4 rows 1.31-1.65x.
constexpr size_t kMinRows = 3;
// The number plans store for the working B below (GemmMicrokernel::prepacked_layout).
constexpr int32_t kPrepackedLayout = 1;

size_t groups_of(size_t k) { return (k + kGemmKr - 1) / kGemmKr; }

void widen_a(size_t rows, size_t k, const uint8_t* a, size_t a_stride, uint8_t* out) {
  const size_t groups = groups_of(k);
  const __m256i low_bytes = _mm256_set1_epi16(0x00FF);
  for (size_t i = 0; i < rows; ++i) {
    const uint8_t* src = a + i * a_stride;
    uint8_t* bytes = out + i * groups * kAGroupBytes;
    uint8_t* even = bytes + groups * 4;
    uint8_t* odd = even + groups * 4;
    size_t g = 0;
    for (; (g + 8) * kGemmKr <= k; g += 8) {  // 8 groups from one 32-byte load
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + g * kGemmKr));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(bytes + g * 4), v);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(even + g * 4), _mm256_and_si256(v, low_bytes));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(odd + g * 4), _mm256_srli_epi16(v, 8));
    }
    for (; g < groups; ++g) {  // the rest, and a partial last group zero padded
      uint8_t b[4] = {0, 0, 0, 0};
      for (size_t j = 0; j < kGemmKr && g * kGemmKr + j < k; ++j) b[j] = src[g * kGemmKr + j];
      const uint8_t e[4] = {b[0], 0, b[2], 0}, o[4] = {b[1], 0, b[3], 0};
      std::memcpy(bytes + g * 4, b, 4);
      std::memcpy(even + g * 4, e, 4);
      std::memcpy(odd + g * 4, o, 4);
    }
  }
}

// Whether a 64-byte tile has a pair that could saturate vpmaddubsw. One sign and |w0| + |w1| > 128
// is the same as |w0 + w1| > 128 (with opposite signs |w0 + w1| ≤ 128 always), and w0 + w1 is
// vpmaddubsw with A = 1, exact in int16.
inline bool has_unsafe_pair(const int8_t* tile) {
  const __m256i ones = _mm256_set1_epi8(1);
  const __m256i sum0 = _mm256_maddubs_epi16(ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile)));
  const __m256i sum1 = _mm256_maddubs_epi16(ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 32)));
  const __m256i largest = _mm256_max_epu16(_mm256_abs_epi16(sum0), _mm256_abs_epi16(sum1));
  const __m256i unsafe = _mm256_cmpgt_epi16(largest, _mm256_set1_epi16(128));
  return !_mm256_testz_si256(unsafe, unsafe);
}

// One packed tile as int16 pairs (the wide layout above).
inline void widen_tile(const int8_t* tile, int8_t* out) {
  for (size_t h = 0; h < 2; ++h) {  // channels 8h..8h+7: 32 packed bytes
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + h * 32));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + h * 64), _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + h * 64 + 32), _mm256_srai_epi16(v, 8));
  }
}

void prepack_b(size_t blocks, size_t k, const int8_t* b, size_t block_stride, int8_t* out) {
  const size_t groups = groups_of(k);
  const size_t out_stride = working_b_block_stride(kBGroupBytes, kBBlockTailBytes, groups);
  for (size_t nb = 0; nb < blocks; ++nb) {
    const int8_t* src = b + nb * block_stride;
    int8_t* dst = out + nb * out_stride;
    int32_t* offsets = reinterpret_cast<int32_t*>(dst + (groups + 1) * kWideTileBytes);
    // One pass, no branch on the weights (a mispredicted branch per tile costs more than a copy):
    // each tile is written both as the next safe tile and as the next wide one. The copy of the
    // kind it is not lands where a later tile of that kind overwrites it, or in the gap between
    // the two kinds (64·(safe + 1) ≤ 128·(groups − wide) at every step).
    size_t safe = 0, wide = 0;
    for (size_t g = 0; g < groups; ++g) {
      const int8_t* tile = src + g * kSafeTileBytes;
      const bool unsafe = has_unsafe_pair(tile);
      std::memcpy(dst + safe * kSafeTileBytes, tile, kSafeTileBytes);
      widen_tile(tile, dst + (groups - wide) * kWideTileBytes);
      offsets[unsafe ? groups - 1 - wide : safe] = static_cast<int32_t>(g * kGemmKr);
      safe += unsafe ? 0 : 1;
      wide += unsafe ? 1 : 0;
    }
    const int32_t safe_count = static_cast<int32_t>(safe);
    std::memcpy(dst + (groups + 1) * kWideTileBytes + groups * sizeof(int32_t), &safe_count, sizeof safe_count);
  }
}

// Whether `blocks` working blocks (working_b_block_stride() apart) hold what prepack_b writes
// where the kernel reads addresses from: a safe count ≤ groups and every A offset a multiple of 4
// below 4·groups (a plan's bytes may have been changed after prepacking).
bool check_prepacked_b(size_t blocks, size_t k, const int8_t* working) {
  const size_t groups = groups_of(k);
  const size_t stride = working_b_block_stride(kBGroupBytes, kBBlockTailBytes, groups);
  const uint32_t end = static_cast<uint32_t>(groups * kGemmKr);
  for (size_t nb = 0; nb < blocks; ++nb) {
    const int8_t* tail = working + nb * stride + (groups + 1) * kWideTileBytes;
    uint32_t bad = 0, offset = 0, safe = 0;
    for (size_t e = 0; e < groups; ++e) {
      std::memcpy(&offset, tail + e * sizeof(int32_t), sizeof offset);
      bad |= (offset >= end ? 1u : 0u) | (offset % kGemmKr);
    }
    std::memcpy(&safe, tail + groups * sizeof(int32_t), sizeof safe);
    if (bad != 0 || safe > groups) return false;
  }
  return true;
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
    const int32_t* offsets = reinterpret_cast<const int32_t*>(b + (groups + 1) * kWideTileBytes);
    int32_t safe;
    std::memcpy(&safe, offsets + groups, sizeof safe);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i vacc[MR][2];
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) vacc[r][0] = vacc[r][1] = _mm256_setzero_si256();
    const int8_t* tile = b;  // safe tiles, then (below) the wide ones
    for (size_t e = 0; e < static_cast<size_t>(safe); ++e, tile += kSafeTileBytes) {
      const uint8_t* a_group = a + offsets[e];
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 32));
      CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
        const __m256i va = broadcast_word(a_group + r * a_stride);
        // No pair of this tile leaves int16 (see the top), so the pair sums are exact.
        vacc[r][0] = _mm256_add_epi32(vacc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(va, w0), ones));
        vacc[r][1] = _mm256_add_epi32(vacc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(va, w1), ones));
      }
    }
    tile = b + (static_cast<size_t>(safe) + 1) * kWideTileBytes;
    for (size_t e = static_cast<size_t>(safe); e < groups; ++e, tile += kWideTileBytes) {
      const uint8_t* a_even = a + groups * 4 + offsets[e];
      const __m256i* w = reinterpret_cast<const __m256i*>(tile);
      const __m256i even0 = _mm256_loadu_si256(w), odd0 = _mm256_loadu_si256(w + 1);
      const __m256i even1 = _mm256_loadu_si256(w + 2), odd1 = _mm256_loadu_si256(w + 3);
      CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
        const __m256i ae = broadcast_word(a_even + r * a_stride);
        const __m256i ao = broadcast_word(a_even + groups * 4 + r * a_stride);
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

void accumulate_avx2_split(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                           size_t block_stride, int32_t* acc, size_t acc_stride) {
  kTiles.fn[mr - 1][blocks - 1](k, a, a_stride, b, block_stride, acc, acc_stride);
}

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_4x16c4split_avx2 = {"qu8-gemm-4x16c4split-avx2",
                                                              &accumulate_avx2_split,
                                                              &qs32_requantize_avx2,
                                                              kMr,
                                                              kBlocks,
                                                              false,
                                                              &q8_vadd_avx2,
                                                              &widen_a,
                                                              &prepack_b,
                                                              kAGroupBytes,
                                                              kBGroupBytes,
                                                              kMinRows,
                                                              kBBlockTailBytes,
                                                              kPrepackedLayout,
                                                              &check_prepacked_b};

}  // namespace ukernels
}  // namespace circle_quant
