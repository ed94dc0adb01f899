// Reusable scratch memory for the kernels' drivers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace circle_quant {

// `bytes` of `storage` starting on a cache line (64 bytes), the storage grown as needed. Buffers
// that kernels read row by row start there: vector stores that split lines made A's widening
// twice as slow, and AMX tile loads of 64-byte rows that each split two lines ran at 0.56-0.87x
// the speed of aligned ones on the implicit GEMM's padded image (measured). std::vector's own
// storage is only 16-byte aligned.
inline uint8_t* cache_aligned(std::vector<uint8_t>& storage, size_t bytes) {
  constexpr size_t kLine = 64;
  storage.resize(bytes + kLine);
  const size_t misalign = reinterpret_cast<uintptr_t>(storage.data()) % kLine;
  return storage.data() + (misalign == 0 ? 0 : kLine - misalign);
}

}  // namespace circle_quant
