// AVX2: exact u8×s8 dot products, 5 rows × 16 channels per tile: vpmaddubsw where it cannot
// saturate, vpmaddwd on int16 where it could.
//
// vpmaddubsw adds two u8·s8 products into int16 with saturation. For a in [0, 255] and a weight
// pair (w0, w1) (k 2j, 2j + 1 of one channel) the pair sum a0·w0 + a1·w1 can only leave int16
// when w0 and w1 have one sign and |w0| + |w1| > 128; otherwise it lies in [-255·128, 255·128] =
// [-32640, 32640]. Which pairs can is known from the weights alone, so the working copy of B,
// built once when the layer is prepacked (prepack_b, stored in its plan), sorts each 16-channel
// block's k groups (4 k × 16 channels, 64 bytes) into lists:
//   safe tiles (no pair past 128): the packed bytes, multiplied by
//     acc += vpmaddwd(vpmaddubsw(broadcast 4 bytes of A, 32 bytes of B), ones)
//     (3 instructions per 32 MACs, nothing unpacked: oneDNN's loop, without its wrong answers);
//   tiles safe once re-paired: which k of a group form the pairs is free as long as A's bytes
//     move the same way. A tile with an unsafe pair in the order (0, 1)(2, 3) is tried as
//     (0, 2)(1, 3), then (0, 3)(1, 2), every channel alike; if one is safe, its bytes are stored
//     in that order and the loop shuffles A's broadcast to match (one vpshufb per row: 4
//     instructions per 64 MACs more than a safe tile, against 8 on the int16 path);
//   pairs of tiles safe once each channel pairs its own k: two adjacent groups g, g + 1 whose 8 k
//     each channel matches into 4 pairs of its own choosing (say a weight of 127 with one of the
//     negative ones), where that lowers the block's cost (the pairs chosen over the whole chain
//     of groups, at odd groups too: mostly int16 tiles, from per-channel ranges over few weights,
//     where one pairing for 16 channels rarely exists, docs/kernels.md). A's 8 bytes are broadcast and one vpshufb per
//     row and 8 channels puts each channel's pairs in its lane (8 instructions per 64 MACs);
//   other tiles: int16 pairs, multiplied by 2 vpmaddwd + 2 vpaddd per 32 MACs on A's words
//     (a0, a2) and (a1, a3), which two vpshufb make from the same broadcast (exact for any
//     weight: |a·w| ≤ 255·128).
// The shuffles run beside the multiplies (port 5 on Intel), so A needs no widened copy: the
// kernel reads the caller's rows when K is whole groups. A k group's share of the sum does not
// depend on the order the groups are added in (exact int32 arithmetic), so each list is one
// branch-free loop. Most tiles of bell-shaped weights that fail the first order pass another
// (docs/kernels.md); uniform ones stay on the int16 path
// (then the kernel costs about 10% more than an int16-only one: the sorting and the larger
// working copies; benchmarks/README.md, "The AVX2 tier").
// (Splitting each unsafe pair into a vpmaddubsw-safe main part and a remainder instead costs 6
// instructions per 32 MACs on every tile with a remainder, against 4 here: slower on uniform weights.)
//
// Working A, per row (groups = ceil(K / 4)): the row's bytes, zero from K to 4·groups (qgemm()
// copies only when K is not whole groups).
// Working B, per 16-channel block (working_b_block_stride() apart); P paired entries each stand
// for two groups, so there are groups - P entries:
//   entries [0, end0): safe tiles at 64·e, 64 bytes (packed c4 layout); [end0, end1) and
//     [end1, safe): the same, each channel's 4 bytes in order (0, 2, 1, 3) / (0, 3, 1, 2);
//   entries [safe, paired), P = paired - safe: a pair of tiles at 128·(safe + 1) + 256·(e - safe),
//     256 bytes: the weights of dword d = 0, 1 of each channel (its pairs 2d and 2d + 1) for
//     channels 0-7 and 8-15 (4 x 32 bytes, d major), then the vpshufb controls that gather A's
//     bytes for them from a broadcast of the groups' 8 bytes (4 x 32 bytes, the same order);
//   entries e ≥ paired: a wide tile at 128·(e + 1 + P), 128 bytes: int16 pairs [even 0-7, odd 0-7,
//     even 8-15, odd 8-15] with even lane j = (b0[j], b2[j]), odd lane j = (b1[j], b3[j]);
//   at 128·(groups + 1): int32 A offset 4g of each entry's (first) group; then int32 end0, end1,
//     safe, paired; then int32 half: 1 when channels 8-15 have no non-zero weight (the padding of
//     N = 16j + 1..8, or channels that are all zero), and the tile multiplies channels 0-7 only.
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "gemm_x86_common.h"
#include "qgemm_ukernels.h"

#define CQ_UNROLL _Pragma("GCC unroll 32")

namespace circle_quant {
namespace ukernels {
namespace {

// 5 rows: 10 accumulators, 2 B vectors, the ones, A's broadcast and a product fill the 16 ymm
// registers (6 rows spill). Against 4 rows, the MobileNetV2 / ResNet-18 layers at 7x7 (49 rows:
// 10 tiles, not 12 and a 1-row one) gained a few per cent, the rest measured the same.
constexpr size_t kMr = 5;
constexpr size_t kBlocks = 1;
constexpr size_t kAGroupBytes = kGemmKr;                                         // A as it is, K padded to whole groups
constexpr size_t kSafeTileBytes = kGemmNr * kGemmKr;                             // 64
constexpr size_t kWideTileBytes = 2 * kSafeTileBytes;                            // 128
constexpr size_t kPairedTileBytes = 2 * kWideTileBytes;                          // 256: two groups' worth
constexpr size_t kBGroupBytes = kWideTileBytes + sizeof(int32_t);                // worst case: every tile wide
constexpr size_t kCounts = 5;                                                    // end0, end1, safe, paired, half
constexpr size_t kBBlockTailBytes = kWideTileBytes + kCounts * sizeof(int32_t);  // a spare tile, the counts
// Below: qu8-gemm-3x16c4-avx2, which reads the packed bytes. With B prepacked, measured on the
// BERT-base shapes (one thread, Gaussian weights; docs/kernels.md): 1 row 0.70-1.29x the 3x16
// kernel's speed, 2 rows 0.90-1.27x (B past L2 loses: its working copy is larger), 3 rows
// 1.06-1.49x, 4 rows 1.31-1.65x.
constexpr size_t kMinRows = 3;
// The number plans store for the working B below (GemmMicrokernel::prepacked_layout).
constexpr int32_t kPrepackedLayout = 4;

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

// The byte orders of a group's 4 k that pair them (0, 1)(2, 3), (0, 2)(1, 3) and (0, 3)(1, 2), as
// vpshufb controls for one 32-bit group in every lane: a tile safe in one of them is stored in it,
// and the kernel shuffles A's broadcast group the same way.
constexpr uint32_t kPairings[3] = {0x03020100u, 0x03010200u, 0x02010300u};
constexpr size_t kOrders = 3;

inline __m256i pairing_control(size_t order) { return _mm256_set1_epi32(static_cast<int32_t>(kPairings[order])); }
// The same order for each channel's group of a tile: vpshufb indexes within 128-bit lanes, so
// dword j of a lane reads bytes 4j..4j+3.
inline __m256i weights_control(size_t order) {
  const __m256i dword_base =
      _mm256_setr_epi32(0, 0x04040404, 0x08080808, 0x0C0C0C0C, 0, 0x04040404, 0x08080808, 0x0C0C0C0C);
  return _mm256_add_epi8(pairing_control(order), dword_base);
}

// Instructions per row and 64 MACs of each kind of entry (the top of the file): what the sort
// weighs to pair two groups (kPairedCost for both) rather than keep them apart.
constexpr int kOrderCost[kOrders + 1] = {6, 7, 7, 10};
constexpr int kPairedCost = 16;
constexpr uint8_t kPaired = kOrders + 1;  // kind of both groups of a paired entry

// Each channel's pairing of its 8 weights in groups g and g + 1 (tiles t0, t1): pairs[8·ch + 2i]
// and pairs[8·ch + 2i + 1] are the k (0-7) of its pair i. The weights sorted, the smallest pairs
// with the largest, the second with the second largest, and so on: no pairing has a smaller
// largest pair sum nor a larger smallest one, so if any pairing keeps every sum in [-128, 128]
// (none can saturate), this one does. False if some channel has none.
bool match_channels(const int8_t* t0, const int8_t* t1, uint8_t* pairs) {
  for (size_t ch = 0; ch < kGemmNr; ++ch) {
    int w[8];
    for (size_t i = 0; i < 4; ++i) {
      w[i] = t0[ch * kGemmKr + i];
      w[4 + i] = t1[ch * kGemmKr + i];
    }
    uint8_t k[8];  // k sorted by weight (insertion sort: 8 elements)
    for (size_t i = 0; i < 8; ++i) {
      size_t j = i;
      for (; j > 0 && w[k[j - 1]] > w[i]; --j) k[j] = k[j - 1];
      k[j] = static_cast<uint8_t>(i);
    }
    for (size_t i = 0; i < 4; ++i) {
      if (std::abs(w[k[i]] + w[k[7 - i]]) > 128) return false;
      pairs[8 * ch + 2 * i] = k[i];
      pairs[8 * ch + 2 * i + 1] = k[7 - i];
    }
  }
  return true;
}

// A paired entry (the layout above) for tiles t0, t1 and the channels' pairs (match_channels):
// dword d of a channel holds its pairs 2d and 2d + 1.
void write_paired(const int8_t* t0, const int8_t* t1, const uint8_t* pairs, int8_t* out) {
  for (size_t d = 0; d < 2; ++d) {
    for (size_t v = 0; v < 2; ++v) {
      int8_t* weights = out + 64 * d + 32 * v;
      int8_t* control = out + kWideTileBytes + 64 * d + 32 * v;
      for (size_t c = 0; c < 8; ++c) {
        const size_t ch = 8 * v + c;
        for (size_t i = 0; i < 4; ++i) {
          const uint8_t kk = pairs[8 * ch + 4 * d + i];
          weights[4 * c + i] = kk < 4 ? t0[ch * kGemmKr + kk] : t1[ch * kGemmKr + kk - 4];
          control[4 * c + i] = static_cast<int8_t>(kk);  // A's 8 bytes sit at 0-7 of either 128-bit lane
        }
      }
    }
  }
}

void prepack_b(size_t blocks, size_t k, const int8_t* b, size_t block_stride, int8_t* out) {
  const size_t groups = groups_of(k);
  const size_t out_stride = working_b_block_stride(kBGroupBytes, kBBlockTailBytes, groups);
  std::vector<uint8_t> kind(groups);                 // order 0..2 it is safe in, kOrders (wide) or kPaired
  std::vector<uint8_t> pairs(groups * kGemmNr * 8);  // per pair of groups (by its first), each channel's pairs
  std::vector<int> cost(groups + 1);
  std::vector<uint8_t> ends_paired(groups + 1);
  for (size_t nb = 0; nb < blocks; ++nb) {
    const int8_t* src = b + nb * block_stride;
    int8_t* dst = out + nb * out_stride;
    int32_t* offsets = reinterpret_cast<int32_t*>(dst + (groups + 1) * kWideTileBytes);
    __m256i upper = _mm256_setzero_si256();  // OR of channels 8-15's bytes
    for (size_t g = 0; g < groups; ++g) {
      const int8_t* tile = src + g * kSafeTileBytes;
      upper = _mm256_or_si256(upper, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 32)));
      kind[g] = kOrders;
      for (size_t order = 0; order < kOrders && kind[g] == kOrders; ++order) {
        alignas(32) int8_t ordered[kSafeTileBytes];
        for (size_t h = 0; h < 2; ++h) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 32 * h));
          _mm256_store_si256(reinterpret_cast<__m256i*>(ordered + 32 * h),
                             _mm256_shuffle_epi8(v, weights_control(order)));
        }
        if (!has_unsafe_pair(ordered)) kind[g] = static_cast<uint8_t>(order);
      }
    }
    // Which adjacent groups g, g + 1 to pair (any g, not only even ones): the choice of least
    // cost over the whole block, by dynamic programming over its first i groups. cost[i]: the
    // least cost of groups [0, i); ends_paired[i]: that choice pairs groups i - 2 and i - 1.
    cost[0] = 0;
    for (size_t i = 1; i <= groups; ++i) {
      cost[i] = cost[i - 1] + kOrderCost[kind[i - 1]];
      ends_paired[i] = 0;
      if (i >= 2 && cost[i - 2] + kPairedCost < cost[i] &&
          match_channels(src + (i - 2) * kSafeTileBytes, src + (i - 1) * kSafeTileBytes,
                         pairs.data() + (i - 2) * kGemmNr * 8)) {
        cost[i] = cost[i - 2] + kPairedCost;
        ends_paired[i] = 1;
      }
    }
    for (size_t i = groups; i >= 2;) {
      if (ends_paired[i] != 0) {
        kind[i - 2] = kind[i - 1] = kPaired;
        i -= 2;
      } else {
        --i;
      }
    }
    // Entries: the tiles safe in order 0, then 1, then 2 (64 bytes each from the front, reordered),
    // then the paired ones (256 bytes each from 128·(safe + 1)), then the wide ones (128 bytes each).
    int32_t counts[kCounts];  // entries that end orders 0, 1 and 2 and the paired ones; half
    size_t e = 0;
    for (size_t order = 0; order < kOrders; ++order) {
      for (size_t g = 0; g < groups; ++g) {
        if (kind[g] != order) continue;
        const int8_t* tile = src + g * kSafeTileBytes;
        for (size_t h = 0; h < 2; ++h) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 32 * h));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + e * kSafeTileBytes + 32 * h),
                              _mm256_shuffle_epi8(v, weights_control(order)));
        }
        offsets[e++] = static_cast<int32_t>(g * kGemmKr);
      }
      counts[order] = static_cast<int32_t>(e);
    }
    const size_t safe = e;
    int8_t* const paired_tiles = dst + (safe + 1) * kWideTileBytes;
    for (size_t g = 0; g + 1 < groups; ++g) {
      if (kind[g] != kPaired) continue;  // else g is the first of a pair (pairs do not overlap)
      const int8_t* tile = src + g * kSafeTileBytes;
      write_paired(tile, tile + kSafeTileBytes, pairs.data() + g * kGemmNr * 8,
                   paired_tiles + (e - safe) * kPairedTileBytes);
      offsets[e++] = static_cast<int32_t>(g * kGemmKr);
      ++g;
    }
    counts[kOrders] = static_cast<int32_t>(e);
    const size_t pairs = e - safe;
    for (size_t g = 0; g < groups; ++g) {
      if (kind[g] != kOrders) continue;
      widen_tile(src + g * kSafeTileBytes, dst + (e + 1 + pairs) * kWideTileBytes);
      offsets[e++] = static_cast<int32_t>(g * kGemmKr);
    }
    counts[kOrders + 1] = _mm256_testz_si256(upper, upper);
    std::memcpy(offsets + groups, counts, sizeof counts);
  }
}

// Whether `blocks` working blocks (working_b_block_stride() apart) hold what prepack_b writes
// where the kernel reads addresses from: the entry counts rising (the paired entries, two groups
// each, leave room for the rest), every A offset a multiple of 4 whose bytes (8 for a paired
// entry) lie below 4·groups, a half flag of 0 or 1 (a plan's bytes may have been changed after
// prepacking).
bool check_prepacked_b(size_t blocks, size_t k, const int8_t* working) {
  const size_t groups = groups_of(k);
  const size_t stride = working_b_block_stride(kBGroupBytes, kBBlockTailBytes, groups);
  const size_t end = groups * kGemmKr;
  for (size_t nb = 0; nb < blocks; ++nb) {
    const int8_t* tail = working + nb * stride + (groups + 1) * kWideTileBytes;
    int32_t counts[kCounts];
    std::memcpy(counts, tail + groups * sizeof(int32_t), sizeof counts);
    if (counts[0] < 0 || counts[0] > counts[1] || counts[1] > counts[2] || counts[2] > counts[3] ||
        static_cast<size_t>(counts[3]) > groups || counts[4] < 0 || counts[4] > 1) {
      return false;
    }
    const size_t safe = static_cast<size_t>(counts[2]), paired = static_cast<size_t>(counts[3]);
    if (safe + 2 * (paired - safe) > groups) return false;
    uint32_t bad = 0;
    for (size_t e = 0; e < groups - (paired - safe); ++e) {
      int32_t offset = 0;
      std::memcpy(&offset, tail + e * sizeof(int32_t), sizeof offset);
      const size_t reads = e >= safe && e < paired ? 2 * kGemmKr : kGemmKr;
      bad |= (offset < 0 || static_cast<size_t>(offset) + reads > end ? 1u : 0u) | (offset % kGemmKr != 0 ? 1u : 0u);
    }
    if (bad != 0) return false;
  }
  return true;
}

inline __m256i broadcast_word(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// Safe tiles [e0, e1) stored in pairing `order`: A's broadcast group is reordered to match (no
// shuffle for order 0).
template <size_t MR, size_t V, size_t kOrder>
inline void multiply_safe(size_t e0, size_t e1, const int32_t* offsets, const uint8_t* a, size_t a_stride,
                          const int8_t* b, __m256i (&vacc)[MR][2]) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i control = pairing_control(kOrder);
  const int8_t* tile = b + e0 * kSafeTileBytes;
  for (size_t e = e0; e < e1; ++e, tile += kSafeTileBytes) {
    const uint8_t* a_group = a + offsets[e];
    __m256i w[V];
    CQ_UNROLL for (size_t v = 0; v < V; ++v) w[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile) + v);
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      __m256i va = broadcast_word(a_group + r * a_stride);
      if constexpr (kOrder != 0) va = _mm256_shuffle_epi8(va, control);
      // No pair of this tile leaves int16 (see the top), so the pair sums are exact.
      CQ_UNROLL for (size_t v = 0; v < V; ++v) {
        vacc[r][v] = _mm256_add_epi32(vacc[r][v], _mm256_madd_epi16(_mm256_maddubs_epi16(va, w[v]), ones));
      }
    }
  }
}

// Paired entries [e0, e1), from `tiles`: A's 8 bytes broadcast, and each channel's pairs gathered
// into its lane by the entry's controls, one vpshufb per row, dword and 8 channels.
template <size_t MR, size_t V>
inline void multiply_paired(size_t e0, size_t e1, const int32_t* offsets, const uint8_t* a, size_t a_stride,
                            const int8_t* tiles, __m256i (&vacc)[MR][2]) {
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* tile = tiles;
  for (size_t e = e0; e < e1; ++e, tile += kPairedTileBytes) {
    const uint8_t* a_groups = a + offsets[e];
    const __m256i* w = reinterpret_cast<const __m256i*>(tile);
    const __m256i* control = reinterpret_cast<const __m256i*>(tile + kWideTileBytes);
    CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
      int64_t bytes;
      std::memcpy(&bytes, a_groups + r * a_stride, sizeof bytes);
      const __m256i va = _mm256_set1_epi64x(bytes);
      CQ_UNROLL for (size_t d = 0; d < 2; ++d) {
        CQ_UNROLL for (size_t v = 0; v < V; ++v) {
          // Each channel's pairs are ones it chose so that neither leaves int16: exact.
          const __m256i x = _mm256_shuffle_epi8(va, _mm256_loadu_si256(control + 2 * d + v));
          const __m256i products = _mm256_maddubs_epi16(x, _mm256_loadu_si256(w + 2 * d + v));
          vacc[r][v] = _mm256_add_epi32(vacc[r][v], _mm256_madd_epi16(products, ones));
        }
      }
    }
  }
}

// One tile's products: channels 0-7 (V = 1) or 0-15 (V = 2) of the block.
template <size_t MR, size_t V>
inline void multiply(size_t groups, const int32_t* offsets, const int32_t* counts, const uint8_t* a, size_t a_stride,
                     const int8_t* b, __m256i (&vacc)[MR][2]) {
  const size_t end0 = static_cast<size_t>(counts[0]), end1 = static_cast<size_t>(counts[1]);
  const size_t safe = static_cast<size_t>(counts[2]), paired = static_cast<size_t>(counts[3]);
  const size_t pairs = paired - safe;
  multiply_safe<MR, V, 0>(0, end0, offsets, a, a_stride, b, vacc);
  multiply_safe<MR, V, 1>(end0, end1, offsets, a, a_stride, b, vacc);
  multiply_safe<MR, V, 2>(end1, safe, offsets, a, a_stride, b, vacc);
  multiply_paired<MR, V>(safe, paired, offsets, a, a_stride, b + (safe + 1) * kWideTileBytes, vacc);
  // The int16 lanes (a0, a2) and (a1, a3) of a broadcast group, by byte shuffles (port 5 on
  // Intel, not the multiply ports the products use).
  const __m256i even_bytes = _mm256_set1_epi32(static_cast<int32_t>(0x80028000u));
  const __m256i odd_bytes = _mm256_set1_epi32(static_cast<int32_t>(0x80038001u));
  const int8_t* tile = b + (paired + 1 + pairs) * kWideTileBytes;
  for (size_t e = paired; e < groups - pairs; ++e, tile += kWideTileBytes) {
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

// One tile of MR rows: its products, stored to acc.
template <size_t MR, size_t V>
__attribute__((always_inline)) inline void tile(size_t groups, const int32_t* offsets, const int32_t* counts,
                                                const uint8_t* a, size_t a_stride, const int8_t* b, int32_t* acc,
                                                size_t acc_stride) {
  __m256i vacc[MR][2];
  CQ_UNROLL for (size_t r = 0; r < MR; ++r) vacc[r][0] = vacc[r][1] = _mm256_setzero_si256();
  multiply<MR, V>(groups, offsets, counts, a, a_stride, b, vacc);
  CQ_UNROLL for (size_t r = 0; r < MR; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * acc_stride), vacc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * acc_stride + 8), vacc[r][1]);
  }
}

// Any number of rows of one block, kMr at a time: the block's lists are read once per call, not
// once per tile (at K = 16-32 a tile's products are a few dozen instructions, and a call's set-up
// and the driver's loop cost as much again; docs/kernels.md).
template <size_t V>
void rows_of_block(size_t rows, size_t groups, const int32_t* offsets, const int32_t* counts, const uint8_t* a,
                   size_t a_stride, const int8_t* b, int32_t* acc, size_t acc_stride) {
  size_t r = 0;
  for (; r + kMr <= rows; r += kMr) {
    tile<kMr, V>(groups, offsets, counts, a + r * a_stride, a_stride, b, acc + r * acc_stride, acc_stride);
  }
  static_assert(kMr == 5, "the remainder below is 1-4 rows");
  switch (rows - r) {
    case 1: tile<1, V>(groups, offsets, counts, a + r * a_stride, a_stride, b, acc + r * acc_stride, acc_stride); break;
    case 2: tile<2, V>(groups, offsets, counts, a + r * a_stride, a_stride, b, acc + r * acc_stride, acc_stride); break;
    case 3: tile<3, V>(groups, offsets, counts, a + r * a_stride, a_stride, b, acc + r * acc_stride, acc_stride); break;
    case 4: tile<4, V>(groups, offsets, counts, a + r * a_stride, a_stride, b, acc + r * acc_stride, acc_stride); break;
    default: break;
  }
}

// a: working A (row stride a_stride bytes), b: working B of one block; rows: any count
// (GemmMicrokernel::any_rows).
void accumulate_avx2_split(size_t rows, size_t /*blocks*/, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                           size_t /*block_stride*/, int32_t* acc, size_t acc_stride) {
  const size_t groups = groups_of(k);
  const int32_t* offsets = reinterpret_cast<const int32_t*>(b + (groups + 1) * kWideTileBytes);
  int32_t counts[kCounts];  // entries ending orders 0, 1, 2 and the paired ones; half
  std::memcpy(counts, offsets + groups, sizeof counts);
  if (counts[kOrders + 1] != 0) {
    rows_of_block<1>(rows, groups, offsets, counts, a, a_stride, b, acc, acc_stride);
  } else {
    rows_of_block<2>(rows, groups, offsets, counts, a, a_stride, b, acc, acc_stride);
  }
}

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_5x16c4split_avx2 = {"qu8-gemm-5x16c4split-avx2",
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
                                                              &check_prepacked_b,
                                                              nullptr,  // finish
                                                              nullptr,  // accumulate_taps
                                                              false,    // balance_row_tiles
                                                              kTapAlign,
                                                              true};  // any_rows

}  // namespace ukernels
}  // namespace circle_quant
