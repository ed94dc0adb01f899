// AVX-512 VNNI: vpdpbusd on zmm, 8 rows × 3 blocks (48 channels) per tile (the tile code is in
// gemm_avx512vnni_tile.h).
//
// Tile: 24 accumulators + 3 B registers + a broadcast of the 32 zmm registers. Each k group
// issues 24 vpdpbusd for 3 loads of B and 8 broadcasts, and reads 8 bytes of B per vpdpbusd (B
// streams from L2 while the 8 rows of A stay in L1). 8 rows suit the usual M (1, 8, 32, 128, ...)
// and 48 channels divide BERT's 768 and 3072; widths that 64 divides better take the 6x64 kernel.
#include "gemm_avx512vnni_tile.h"

namespace circle_quant {
namespace ukernels {
namespace {

constexpr size_t kMr = 8;
constexpr size_t kBlocks = 3;
constexpr x86::TileTable<kMr, kBlocks, Tile> kTiles;
constexpr x86::TileTable<kMr, kBlocks, Tile, x86::TapTileFn> kTapTiles;

void accumulate_avx512vnni(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                           size_t block_stride, int32_t* acc, size_t acc_stride) {
  kTiles.fn[mr - 1][blocks - 1](k, a, a_stride, b, block_stride, acc, acc_stride);
}

void accumulate_avx512vnni_taps(size_t mr, size_t blocks, size_t taps, const int64_t* tap_offsets, size_t tap_k,
                                const uint8_t* a, size_t a_stride, const int64_t* row_offsets, const int8_t* b,
                                size_t block_stride, int32_t* acc, size_t acc_stride) {
  kTapTiles.fn[mr - 1][blocks - 1](taps, tap_offsets, tap_k, a, a_stride, row_offsets, b, block_stride, acc,
                                   acc_stride);
}

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_8x48c4_avx512vnni =
    vnni_microkernel("qu8-gemm-8x48c4-avx512vnni", &accumulate_avx512vnni, &accumulate_avx512vnni_taps, kMr, kBlocks);

}  // namespace ukernels
}  // namespace circle_quant
