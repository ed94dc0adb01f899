// Winograd F(2x2, 3x3) microkernels for 3x3, stride-1 convolutions: the contract every ISA
// implements. Files are named q8-winograd-f2x3-<isa>.cpp; the scalar one is the reference, and
// every kernel produces its exact integers.
//
// A 2x2 block of output pixels (a "tile") is computed from the 4x4 input patch under it with
// integer transforms (Lavin and Gray's F(2x2, 3x3), with the weight transform scaled by 2 on each
// side so that it has no halves):
//   V = Bᵀ d B           d: the patch minus the input zero point, |d| ≤ 255 → |V| ≤ 1020
//   U = G' g G'ᵀ         g: the 3x3 weights minus their zero point, |g| ≤ 255 → |U| ≤ 2295
//   Y = Aᵀ (Σ_c U ⊙ V) A = 4 · (the tile's exact conv sums)
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G' = [2 0 0; 1 1 1; 1 -1 1; 0 0 2],
//   Aᵀ = [1 1 1 0; 0 1 -1 -1].
// Per output channel that is 16 products per tile instead of 36, each an int16 · int16 product
// (vpmaddwd), while the direct GEMM needs two multiply instructions per 32 byte products on AVX2
// (vpmaddubsw + vpmaddwd): the multiplies per output fall by 2.25x and stay exact. Sums are int32
// modulo 2^32; Y is exact when 4 · 9 · C · 255 · 255 < 2^31 (kWinogradMaxChannels), and Y / 4 is
// then the same int32 the direct kernels compute, so the output stage gives the same bits.
//
// Layouts (int16, channel pairs; P = 16 transform positions p = 4·i + j):
//   V (transformed input) of T tiles: tile t, position p at v + (t · 16 + p) · v_channels, one
//     int16 per input channel (v_channels ≥ C, a multiple of kWinogradChannelStep).
//   U (transformed weights, winograd_weight_bytes() in qconv.h): for 16-channel output block b,
//     position p and channel pair q (channels 2q, 2q + 1; pairs = ceil(C / 2)), 32 int16 at
//     u + ((b · 16 + p) · pairs + q) · 32: for output channel 16b + j, U(2q) at 2j and U(2q + 1)
//     at 2j + 1 (zero for padding channels). One int32 of V (two channels) times one int16 pair
//     per output channel is what one vpmaddwd lane multiplies.
#pragma once

#include <cstddef>
#include <cstdint>

namespace circle_quant {
namespace ukernels {

constexpr size_t kWinogradPositions = 16;
constexpr size_t kWinogradChannelStep = 16;  // input transform: channels per step
constexpr size_t kWinogradMaxRows = 6;       // GEMM: tiles per call
constexpr int64_t kWinogradMaxChannels = 917;

// V of `tiles` tiles along one row of tiles: tile t's patch starts at x + 2·t·pixel_stride,
// patch row i at + i·row_stride, column j at + j·pixel_stride; `channels` (a multiple of
// kWinogradChannelStep) bytes per pixel are read, as uint8 or int8 (is_signed), minus za.
using WinogradInputFn = void (*)(size_t tiles, size_t channels, const uint8_t* x, size_t row_stride,
                                 size_t pixel_stride, bool is_signed, int32_t za, int16_t* v);

// m[p · m_stride + r · 16 + j] = Σ_{q < pairs} V(r, p, 2q..2q+1) · U(p, q, j) for r < rows ≤
// kWinogradMaxRows, p < 16, j < 16: V in the input transform's layout (v_channels per position),
// u one output block of U. Reads channels < 2 · pairs of V only.
using WinogradGemmFn = void (*)(size_t rows, size_t pairs, const int16_t* v, size_t v_channels, const int16_t* u,
                                int32_t* m, size_t m_stride);

// Y / 4 of `rows` tiles from m (WinogradGemmFn's layout): the exact sums of tile r's output pixel
// (dy, dx), 16 channels, at y + dy · y_row_stride + (2 · r + dx) · 16.
using WinogradOutputFn = void (*)(size_t rows, const int32_t* m, size_t m_stride, int32_t* y, size_t y_row_stride);

struct WinogradMicrokernel {
  const char* name;
  WinogradInputFn input;
  WinogradGemmFn gemm;
  WinogradOutputFn output;
};

}  // namespace ukernels
}  // namespace circle_quant
