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
//   other tiles: int16 pairs, multiplied by 2 vpmaddwd + 2 vpaddd per 32 MACs on A's words
//     (a0, a2) and (a1, a3), which two vpshufb make from the same broadcast (exact for any
//     weight: |a·w| ≤ 255·128). The shuffles run beside the multiplies (port 5 on Intel), so A
//     needs no widened copy: the kernel reads the caller's rows when K is whole groups.
// A k group's share of the sum does not depend on the order the groups are added in (exact int32
// arithmetic), so each list is one branch-free loop. Real (bell-shaped) weights have few unsafe
// pairs: Gaussian weights quantized per channel leave about a quarter of the tiles on the int16
// path, uniform ones all (then the kernel costs about 10% more than an int16-only one: the
// sorting and the larger working copies; benchmarks/README.md, "The AVX2 tier").
// (Splitting each unsafe pair into a vpmaddubsw-safe main part and a remainder instead costs 6
// instructions per 32 MACs on every tile with a remainder, against 4 here: slower on uniform weights.)
//
// Working A, per row (groups = ceil(K / 4)): the row's bytes, zero from K to 4·groups (qgemm()
// copies only when K is not whole groups).
// Working B, per 16-channel block (working_b_block_stride() apart), entries e < groups:
//   entry e < safe: a safe tile at 64·e, 64 bytes (packed c4 layout);
//   entry e ≥ safe: a wide tile at 128·(e + 1), 128 bytes: int16 pairs [even 0-7, odd 0-7,
//     even 8-15, odd 8-15] with even lane j = (b0[j], b2[j]), odd lane j = (b1[j], b3[j]);
//   at 128·(groups + 1): int32 A offset 4g of each entry's group; then int32 safe; then int32
//     half: 1 when channels 8-15 have no non-zero weight (the padding of N = 16j + 1..8, or
//     channels that are all zero), and the tile multiplies channels 0-7 only.
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
constexpr size_t kAGroupBytes = kGemmKr;                                   // A as it is, K padded to whole groups
constexpr size_t kSafeTileBytes = kGemmNr * kGemmKr;                       // 64
constexpr size_t kWideTileBytes = 2 * kSafeTileBytes;                      // 128
constexpr size_t kBGroupBytes = kWideTileBytes + sizeof(int32_t);          // worst case: every tile wide
constexpr size_t kBBlockTailBytes = kWideTileBytes + 2 * sizeof(int32_t);  // a spare tile, safe, half
// Below: qu8-gemm-3x16c4-avx2, which reads the packed bytes. With B prepacked, measured on the
// BERT-base shapes (one thread, Gaussian weights; docs/kernels.md): 1 row 0.70-1.29x the 3x16
// kernel's speed, 2 rows 0.90-1.27x (B past L2 loses: its working copy is larger), 3 rows
// 1.06-1.49x, 4 rows 1.31-1.65x.
constexpr size_t kMinRows = 3;
// The number plans store for the working B below (GemmMicrokernel::prepacked_layout).
constexpr int32_t kPrepackedLayout = 2;

size_t groups_of(size_t k) { return (k + kGemmKr - 1) / kGemmKr; }

void widen_a(size_t rows, size_t k, const uint8_t* a, size_t a_stride, uint8_t* out) {
  const size_t padded = groups_of(k) * kGemmKr;
  for (size_t i = 0; i < rows; ++i) {
    std::memcpy(out + i * padded, a + i * a_stride, k);
    std::memset(out + i * padded + k, 0, padded - k);
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
    __m256i upper = _mm256_setzero_si256();  // OR of channels 8-15's bytes
    for (size_t g = 0; g < groups; ++g) {
      const int8_t* tile = src + g * kSafeTileBytes;
      upper = _mm256_or_si256(upper, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 32)));
      const bool unsafe = has_unsafe_pair(tile);
      std::memcpy(dst + safe * kSafeTileBytes, tile, kSafeTileBytes);
      widen_tile(tile, dst + (groups - wide) * kWideTileBytes);
      offsets[unsafe ? groups - 1 - wide : safe] = static_cast<int32_t>(g * kGemmKr);
      safe += unsafe ? 0 : 1;
      wide += unsafe ? 1 : 0;
    }
    const int32_t tail[2] = {static_cast<int32_t>(safe), _mm256_testz_si256(upper, upper)};
    std::memcpy(offsets + groups, tail, sizeof tail);
  }
}

// Whether `blocks` working blocks (working_b_block_stride() apart) hold what prepack_b writes
// where the kernel reads addresses from: a safe count ≤ groups, every A offset a multiple of 4
// below 4·groups, a half flag of 0 or 1 (a plan's bytes may have been changed after prepacking).
bool check_prepacked_b(size_t blocks, size_t k, const int8_t* working) {
  const size_t groups = groups_of(k);
  const size_t stride = working_b_block_stride(kBGroupBytes, kBBlockTailBytes, groups);
  const uint32_t end = static_cast<uint32_t>(groups * kGemmKr);
  for (size_t nb = 0; nb < blocks; ++nb) {
    const int8_t* tail = working + nb * stride + (groups + 1) * kWideTileBytes;
    uint32_t bad = 0, offset = 0, safe = 0, half = 0;
    for (size_t e = 0; e < groups; ++e) {
      std::memcpy(&offset, tail + e * sizeof(int32_t), sizeof offset);
      bad |= (offset >= end ? 1u : 0u) | (offset % kGemmKr);
    }
    std::memcpy(&safe, tail + groups * sizeof(int32_t), sizeof safe);
    std::memcpy(&half, tail + (groups + 1) * sizeof(int32_t), sizeof half);
    if (bad != 0 || safe > groups || half > 1) return false;
  }
  return true;
}

inline __m256i broadcast_word(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// One tile's products: channels 0-7 (V = 1) or 0-15 (V = 2) of the block.
template <size_t MR, size_t V>
inline void multiply(size_t groups, const int32_t* offsets, size_t safe, const uint8_t* a, size_t a_stride,
                     const int8_t* b, __m256i (&vacc)[MR][2]) {
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* tile = b;  // safe tiles, then (below) the wide ones
  for (size_t e = 0; e < safe; ++e, tile += kSafeTileBytes) {
    const uint8_t* a_group = a + offsets[e];
    __m256i w[V];
    CQ_UNROLL for (size_t v = 0; v < V; ++v) w[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile) + v);
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      const __m256i va = broadcast_word(a_group + r * a_stride);
      // No pair of this tile leaves int16 (see the top), so the pair sums are exact.
      CQ_UNROLL for (size_t v = 0; v < V; ++v) {
        vacc[r][v] = _mm256_add_epi32(vacc[r][v], _mm256_madd_epi16(_mm256_maddubs_epi16(va, w[v]), ones));
      }
    }
  }
  tile = b + (safe + 1) * kWideTileBytes;
  // The int16 lanes (a0, a2) and (a1, a3) of a broadcast group, by byte shuffles (port 5 on
  // Intel, not the multiply ports the products use).
  const __m256i even_bytes = _mm256_set1_epi32(static_cast<int32_t>(0x80028000u));
  const __m256i odd_bytes = _mm256_set1_epi32(static_cast<int32_t>(0x80038001u));
  for (size_t e = safe; e < groups; ++e, tile += kWideTileBytes) {
    const uint8_t* a_group = a + offsets[e];
    const __m256i* w = reinterpret_cast<const __m256i*>(tile);
    __m256i even[V], odd[V];
    CQ_UNROLL for (size_t v = 0; v < V; ++v) {
      even[v] = _mm256_loadu_si256(w + 2 * v);
      odd[v] = _mm256_loadu_si256(w + 2 * v + 1);
    }
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      const __m256i va = broadcast_word(a_group + r * a_stride);
      const __m256i ae = _mm256_shuffle_epi8(va, even_bytes);
      const __m256i ao = _mm256_shuffle_epi8(va, odd_bytes);
      CQ_UNROLL for (size_t v = 0; v < V; ++v) {
        vacc[r][v] = _mm256_add_epi32(vacc[r][v], _mm256_madd_epi16(ae, even[v]));
        vacc[r][v] = _mm256_add_epi32(vacc[r][v], _mm256_madd_epi16(ao, odd[v]));
      }
    }
  }
}

template <size_t MR, size_t NB>
struct Tile {
  static_assert(NB == 1, "one block per tile");
  // a: working A (row stride a_stride bytes), b: working B of one block.
  static void run(size_t k, const uint8_t* a, size_t a_stride, const int8_t* b, size_t /*block_stride*/, int32_t* acc,
                  size_t acc_stride) {
    const size_t groups = groups_of(k);
    const int32_t* offsets = reinterpret_cast<const int32_t*>(b + (groups + 1) * kWideTileBytes);
    int32_t tail[2];  // safe, half
    std::memcpy(tail, offsets + groups, sizeof tail);
    __m256i vacc[MR][2];
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) vacc[r][0] = vacc[r][1] = _mm256_setzero_si256();
    if (tail[1] != 0) {
      multiply<MR, 1>(groups, offsets, static_cast<size_t>(tail[0]), a, a_stride, b, vacc);
    } else {
      multiply<MR, 2>(groups, offsets, static_cast<size_t>(tail[0]), a, a_stride, b, vacc);
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
