// Helpers shared by the x86 GEMM microkernels (plain C++: included by files of every x86 ISA).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace x86 {
// Internal linkage on purpose: each ISA's files are compiled with their own -m flags, and an
// inline function shared under one name could be linked to another ISA's copy.
namespace {

// The 4 bytes of a k group as one little-endian word (what vpbroadcastd replicates).
inline uint32_t load_group(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The last, partial k group (n = k % 4 in 1..3 bytes), zero padded: a full 4-byte load would
// read past the row. The padded weights are zero as well, so the missing bytes add nothing.
inline uint32_t load_group_tail(const uint8_t* p, size_t n) {
  uint32_t v = p[0];
  if (n > 1) v |= static_cast<uint32_t>(p[1]) << 8;
  if (n > 2) v |= static_cast<uint32_t>(p[2]) << 16;
  return v;
}

// A tile kernel with the row and block counts as template arguments (fully unrolled registers).
using TileFn = void (*)(size_t k, const uint8_t* a, size_t a_stride, const int8_t* b, size_t block_stride, int32_t* acc,
                        size_t acc_stride);

// Tile<mr, blocks>::runs, the implicit-GEMM form (GemmAccumulateTapsFn's arguments).
using TapTileFn = void (*)(size_t taps, const int64_t* tap_offsets, size_t tap_k, const uint8_t* a, size_t a_stride,
                           const int64_t* row_offsets, const int8_t* b, size_t block_stride, int32_t* acc,
                           size_t acc_stride);

// Table of Tile<mr, blocks> for mr in 1..MR, blocks in 1..NB, so that partial tiles (the last
// rows of M, the last blocks of N) keep their accumulators in registers too. Fn says which entry:
// TileFn for Tile::run, TapTileFn for Tile::runs.
template <size_t MR, size_t NB, template <size_t, size_t> class Tile, typename Fn = TileFn>
struct TileTable {
  Fn fn[MR][NB];
  constexpr TileTable() : fn() { fill(std::make_index_sequence<MR * NB>{}); }

 private:
  template <size_t M, size_t N>
  static constexpr Fn entry() {
    if constexpr (std::is_same_v<Fn, TapTileFn>) {
      return &Tile<M, N>::runs;
    } else {
      return &Tile<M, N>::run;
    }
  }
  template <size_t... I>
  constexpr void fill(std::index_sequence<I...>) {
    ((fn[I / NB][I % NB] = entry<I / NB + 1, I % NB + 1>()), ...);
  }
};

}  // namespace
}  // namespace x86
}  // namespace ukernels
}  // namespace circle_quant
