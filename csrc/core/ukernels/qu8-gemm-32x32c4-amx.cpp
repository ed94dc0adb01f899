// AMX-INT8: tdpbusd on tile registers, 32 rows × 2 blocks (32 channels) per tile.
//
// Eight tile registers, as in oneDNN's brgemm: four 16 × 16 int32 accumulators (C), two A tiles
// (16 rows × 64 bytes of K) and two B tiles (16 k groups × 16 channels × 4 bytes). The packed
// weights already are AMX's B layout: a block's k groups are 64-byte rows (qgemm.h), so a B tile
// is 16 consecutive groups, loaded with a 64-byte stride; A tiles are read in place with the
// row stride. One k step of 64 issues 4 tdpbusd (16 × 16 × 64 MACs each) for 4 tile loads.
//
// Exact: tdpbusd multiplies u8 by s8 and adds each group of four products into int32 (no 16-bit
// intermediate), so every sum equals the scalar kernel's modulo 2^32.
//
// Tile loads read exactly `rows` × `colsb` bytes: the configuration gives the call's row counts,
// so A rows past mr are never touched. K < 64 (a multiple of 4) is one step of narrower tiles
// read in place; otherwise the K tail (k % 64, possibly not a multiple of 4) is copied into
// zero-padded scratch, A and B both, and runs with the full-width configuration: no byte past
// a[i * a_stride + k - 1] or past a block's groups is read.
//
// Loading a tile configuration costs about 300 cycles here (as much as a whole call with K = 64),
// so a call reads the current one (sttilecfg, cheap) and loads its own only when it differs: other
// code in the thread (oneDNN's AMX kernels) may have loaded another. The tiles stay configured
// between calls; qgemm() releases them when it returns (GemmMicrokernel::finish), so a thread
// that stops calling holds no 8 KB of tile state for the OS to save on every context switch.
#include <immintrin.h>

#include <cstring>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

constexpr size_t kMr = 32;
constexpr size_t kBlocks = 2;
constexpr size_t kTileRows = 16;                // rows of A / C per tile, k groups of B per tile
constexpr size_t kTileBytes = 64;               // bytes per tile row
constexpr size_t kStepK = kTileRows * kGemmKr;  // 64 k per step

// The LDTILECFG operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

// Tile registers. GCC's intrinsics paste the tile number into the instruction's text, so the
// calls below spell them as digits: 0 = C00, 1 = C01, 2 = C10, 3 = C11 (C rows 0-15 / 16-31 ×
// blocks 0 / 1), 4 = A0, 5 = A1 (A rows 0-15 / 16-31), 6 = B0, 7 = B1 (blocks 0 / 1).
constexpr int kC00 = 0, kC01 = 1, kC10 = 2, kC11 = 3, kA0 = 4, kA1 = 5, kB0 = 6, kB1 = 7;

// One k step: A tiles at a (stride a_stride), B tiles at b0 / b1 (stride 64).
template <bool kTwoRowTiles, bool kTwoBlocks>
inline void step(const uint8_t* a, size_t a_stride, const int8_t* b0, const int8_t* b1) {
  _tile_loadd(6, b0, kTileBytes);
  _tile_loadd(4, a, a_stride);
  _tile_dpbusd(0, 4, 6);
  if constexpr (kTwoBlocks) {
    _tile_loadd(7, b1, kTileBytes);
    _tile_dpbusd(1, 4, 7);
  }
  if constexpr (kTwoRowTiles) {
    _tile_loadd(5, a + kTileRows * a_stride, a_stride);
    _tile_dpbusd(2, 5, 6);
    if constexpr (kTwoBlocks) _tile_dpbusd(3, 5, 7);
  }
}

// Loads the configuration for mr rows (a_bytes of A per row and b_rows k groups of B per step)
// unless it is already loaded, and zeroes the accumulators.
template <bool kTwoRowTiles, bool kTwoBlocks>
void begin_tiles(size_t mr, size_t a_bytes, size_t b_rows) {
  const size_t rows0 = kTwoRowTiles ? kTileRows : mr, rows1 = kTwoRowTiles ? mr - kTileRows : 0;
  TileConfig cfg;
  const auto set = [&cfg](int tile, size_t rows, size_t colsb) {
    cfg.rows[tile] = static_cast<uint8_t>(rows);
    cfg.colsb[tile] = static_cast<uint16_t>(colsb);
  };
  set(kC00, rows0, kTileBytes);
  set(kA0, rows0, a_bytes);
  set(kB0, b_rows, kTileBytes);
  if (kTwoBlocks) {
    set(kC01, rows0, kTileBytes);
    set(kB1, b_rows, kTileBytes);
  }
  if (kTwoRowTiles) {
    set(kC10, rows1, kTileBytes);
    set(kA1, rows1, a_bytes);
    if (kTwoBlocks) set(kC11, rows1, kTileBytes);
  }
  TileConfig current;
  _tile_storeconfig(&current);
  __asm__ volatile("" ::: "memory");  // see the tail below: the read-back must not be assumed
  if (std::memcmp(&current, &cfg, sizeof cfg) != 0) _tile_loadconfig(&cfg);
  _tile_zero(0);
  if constexpr (kTwoBlocks) _tile_zero(1);
  if constexpr (kTwoRowTiles) {
    _tile_zero(2);
    if constexpr (kTwoBlocks) _tile_zero(3);
  }
}

template <bool kTwoRowTiles, bool kTwoBlocks>
void store_tiles(int32_t* acc, size_t acc_stride) {
  const size_t c_stride = acc_stride * sizeof(int32_t);
  _tile_stored(0, acc, c_stride);
  if constexpr (kTwoBlocks) _tile_stored(1, acc + kGemmNr, c_stride);
  if constexpr (kTwoRowTiles) {
    _tile_stored(2, acc + kTileRows * acc_stride, c_stride);
    if constexpr (kTwoBlocks) _tile_stored(3, acc + kTileRows * acc_stride + kGemmNr, c_stride);
  }
}

template <bool kTwoRowTiles, bool kTwoBlocks>
void accumulate_tiles(size_t mr, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b, size_t block_stride,
                      int32_t* acc, size_t acc_stride) {
  // Short K in place: one step over k bytes of A and k / 4 groups of B.
  const bool short_k = k > 0 && k < kStepK && k % kGemmKr == 0;
  begin_tiles<kTwoRowTiles, kTwoBlocks>(mr, short_k ? k : kTileBytes, short_k ? k / kGemmKr : kTileRows);
  const int8_t* b1 = b + block_stride;
  if (short_k) {
    step<kTwoRowTiles, kTwoBlocks>(a, a_stride, b, b1);
  } else {
    const size_t steps = k / kStepK;
    for (size_t s = 0; s < steps; ++s) {
      step<kTwoRowTiles, kTwoBlocks>(a + s * kStepK, a_stride, b + s * kStepK * kGemmNr, b1 + s * kStepK * kGemmNr);
    }
    const size_t done = steps * kStepK;
    if (k > done) {
      // Zero-padded copies: A's last bytes need not reach a multiple of 4, and the block's groups
      // end at (k + 3) / 4; zeros in either make the padded products vanish. Masked loads: bytes
      // past the tail are neither read (no fault at a page end) nor kept.
      alignas(64) uint8_t a_tail[kMr * kTileBytes];
      alignas(64) int8_t b_tail[kBlocks][kTileRows * kTileBytes];
      const size_t tail = k - done, tail_groups = (tail + kGemmKr - 1) / kGemmKr;
      const __mmask64 tail_mask = (uint64_t{1} << tail) - 1;  // tail < 64
      for (size_t i = 0; i < mr; ++i) {
        _mm512_store_si512(a_tail + i * kTileBytes, _mm512_maskz_loadu_epi8(tail_mask, a + i * a_stride + done));
      }
      for (size_t nb = 0; nb < (kTwoBlocks ? 2 : 1); ++nb) {
        const int8_t* groups = b + nb * block_stride + done * kGemmNr;
        for (size_t g = 0; g < kTileRows; ++g) {
          const __m512i row = g < tail_groups ? _mm512_loadu_si512(groups + g * kTileBytes) : _mm512_setzero_si512();
          _mm512_store_si512(b_tail[nb] + g * kTileBytes, row);
        }
      }
      // GCC's tile intrinsics are asm statements without a memory operand: without this barrier
      // the stores above look dead and are dropped.
      __asm__ volatile("" ::: "memory");
      step<kTwoRowTiles, kTwoBlocks>(a_tail, kTileBytes, b_tail[0], b_tail[1]);
    }
  }
  store_tiles<kTwoRowTiles, kTwoBlocks>(acc, acc_stride);
}

// Implicit GEMM: tap t's 64-byte steps read A at its offset; B's groups run on in (tap, kk) order.
template <bool kTwoRowTiles, bool kTwoBlocks>
void accumulate_tap_tiles(size_t mr, size_t taps, const int64_t* tap_offsets, size_t tap_k, const uint8_t* a,
                          size_t a_stride, const int8_t* b, size_t block_stride, int32_t* acc, size_t acc_stride) {
  begin_tiles<kTwoRowTiles, kTwoBlocks>(mr, kTileBytes, kTileRows);
  const int8_t* b1 = b + block_stride;
  const size_t steps = tap_k / kStepK;
  size_t done = 0;  // k consumed so far: B's position
  for (size_t t = 0; t < taps; ++t) {
    const uint8_t* tap = a + tap_offsets[t];
    for (size_t s = 0; s < steps; ++s, done += kStepK) {
      step<kTwoRowTiles, kTwoBlocks>(tap + s * kStepK, a_stride, b + done * kGemmNr, b1 + done * kGemmNr);
    }
  }
  store_tiles<kTwoRowTiles, kTwoBlocks>(acc, acc_stride);
}

void accumulate_amx_32x32(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                          size_t block_stride, int32_t* acc, size_t acc_stride) {
  const bool two_row_tiles = mr > kTileRows, two_blocks = blocks > 1;
  const auto run = [&](auto fn) { fn(mr, k, a, a_stride, b, block_stride, acc, acc_stride); };
  if (two_row_tiles) {
    two_blocks ? run(accumulate_tiles<true, true>) : run(accumulate_tiles<true, false>);
  } else {
    two_blocks ? run(accumulate_tiles<false, true>) : run(accumulate_tiles<false, false>);
  }
}

// Rows at one stride only (tile loads take one stride): row_offsets is always null here, as the
// descriptor does not set reads_row_offsets.
void accumulate_taps_amx_32x32(size_t mr, size_t blocks, size_t taps, const int64_t* tap_offsets, size_t tap_k,
                               const uint8_t* a, size_t a_stride, const int64_t* /*row_offsets*/, const int8_t* b,
                               size_t block_stride, int32_t* acc, size_t acc_stride) {
  const bool two_row_tiles = mr > kTileRows, two_blocks = blocks > 1;
  const auto run = [&](auto fn) { fn(mr, taps, tap_offsets, tap_k, a, a_stride, b, block_stride, acc, acc_stride); };
  if (two_row_tiles) {
    two_blocks ? run(accumulate_tap_tiles<true, true>) : run(accumulate_tap_tiles<true, false>);
  } else {
    two_blocks ? run(accumulate_tap_tiles<false, true>) : run(accumulate_tap_tiles<false, false>);
  }
}

void release_tiles() { _tile_release(); }

}  // namespace

// Runs from 4 rows (min_rows): from there half-empty tiles already beat the avx512vnni kernels
// (measured, 1 thread: 4 rows 0.86-1.02x their time, 8 rows 0.64-0.95x, 16 rows 0.47-0.82x on
// 768x768, 3072x768 and 576x64 weights); the GEMV-like 1-3 rows stay on those.
extern constexpr GemmMicrokernel qu8_gemm_32x32c4_amx = {"qu8-gemm-32x32c4-amx",
                                                         &accumulate_amx_32x32,
                                                         &qs32_requantize_avx512,
                                                         kMr,
                                                         kBlocks,
                                                         false,
                                                         &q8_vadd_avx512,
                                                         nullptr,
                                                         nullptr,
                                                         kGemmKr,
                                                         kGemmKr* kGemmNr,
                                                         /*min_rows=*/4,
                                                         0,
                                                         0,
                                                         nullptr,
                                                         &release_tiles,
                                                         &accumulate_taps_amx_32x32,
                                                         /*balance_row_tiles=*/true};

}  // namespace ukernels
}  // namespace circle_quant
