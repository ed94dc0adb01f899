// AVX-512 VNNI: vpdpbusd on zmm, 6 rows × 4 blocks (64 channels) per tile (the tile code is in
// gemm_avx512vnni_tile.h).
//
// The same 24 accumulators as the 8x48 kernel, shaped for layers whose width 64 divides but 48
// does not (64, 128, 256, 512 channels: most CNN layers): there the 8x48 kernel would end each
// row of tiles with a 16-channel tile that issues one vpdpbusd per broadcast. Each k group issues
// 24 vpdpbusd for 4 loads of B and 6 broadcasts. qgemm() picks between the two per call
// (gemm_microkernel_for in registry.cpp).
#include "gemm_avx512vnni_tile.h"

namespace circle_quant {
namespace ukernels {
namespace {

constexpr size_t kMr = 6;
constexpr size_t kBlocks = 4;
constexpr x86::TileTable<kMr, kBlocks, Tile> kTiles;
constexpr x86::TileTable<kMr, kBlocks, Tile, x86::TapTileFn> kTapTiles;

void accumulate_avx512vnni_6x64(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                                size_t block_stride, int32_t* acc, size_t acc_stride) {
  kTiles.fn[mr - 1][blocks - 1](k, a, a_stride, b, block_stride, acc, acc_stride);
}

void accumulate_avx512vnni_6x64_taps(size_t mr, size_t blocks, size_t taps, const int64_t* tap_offsets, size_t tap_k,
                                     const uint8_t* a, size_t a_stride, const int64_t* row_offsets, const int8_t* b,
                                     size_t block_stride, int32_t* acc, size_t acc_stride) {
  kTapTiles.fn[mr - 1][blocks - 1](taps, tap_offsets, tap_k, a, a_stride, row_offsets, b, block_stride, acc,
                                   acc_stride);
}

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_6x64c4_avx512vnni = vnni_microkernel(
    "qu8-gemm-6x64c4-avx512vnni", &accumulate_avx512vnni_6x64, &accumulate_avx512vnni_6x64_taps, kMr, kBlocks);

}  // namespace ukernels
}  // namespace circle_quant
