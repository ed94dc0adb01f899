// How a fused linear / conv call's output is cut into tasks for the intra-op threads: row_parts
// ranges of rows (output pixels for a conv) times col_parts ranges of 16-channel blocks.
//
// Channels first: threads that take different channels of the same rows read the same rows of A
// at about the same time, so a large A passes through the shared L3 once per weight chunk, not
// once per thread, and each thread reads only its share of the weights, which at batch 1 come
// from memory (each layer's are used once per forward). Rows are split only for the threads the
// channels cannot occupy (kMinSplitBlocks each). On 2 threads this took the BERT encoder at batch
// 32 from 0.73x to 0.83x the x86 int8 path at the AVX2 tier and from 1.17x to 1.23x at AVX-512
// VNNI (benchmarks/README.md, the end-to-end "Latest runs"). col_parts divides `tasks`, so every
// thread gets one task. With fewer row tiles than the rows would need (M = 1 decoding, small
// batches), the channels alone are split, as finely as `tasks` allows.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "core/qgemm.h"

namespace torch_circle {

constexpr int64_t kNr = static_cast<int64_t>(circle_quant::kGemmNr);  // channels per block

// A thread's share of the channels when they are split: at least this many 16-channel blocks, so
// its calls still run whole wide tiles and spread their set-up over enough columns.
constexpr int64_t kMinSplitBlocks = 8;

struct OutputSplit {
  int64_t row_parts = 1, col_parts = 1;
};

// `tasks` tasks over `blocks` channel blocks and `row_tiles` tiles of rows.
inline OutputSplit split_output(int64_t tasks, int64_t blocks, int64_t row_tiles) {
  OutputSplit split;
  for (int64_t c = std::min(tasks, blocks / kMinSplitBlocks); c > 1; --c) {
    if (tasks % c == 0) {
      split.col_parts = c;
      break;
    }
  }
  split.row_parts = tasks / split.col_parts;
  if (split.row_parts > row_tiles) split = OutputSplit{1, std::min(tasks, blocks)};
  return split;
}

// Runs part(u0, u1, b0, b1) on the intra-op threads, once per task of `split`: row units [u0, u1)
// of `units` (the caller's row tiles) and channel blocks [b0, b1) of `blocks`.
template <typename Part>
void parallel_over_split(const OutputSplit& split, int64_t units, int64_t blocks, const Part& part) {
  const int64_t unit_step = (units + split.row_parts - 1) / split.row_parts;
  const int64_t block_step = (blocks + split.col_parts - 1) / split.col_parts;
  at::parallel_for(0, split.row_parts * split.col_parts, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t u0 = t / split.col_parts * unit_step, b0 = t % split.col_parts * block_step;
      if (u0 < units && b0 < blocks) part(u0, std::min(units, u0 + unit_step), b0, std::min(blocks, b0 + block_step));
    }
  });
}

}  // namespace torch_circle
