// Memory for the CPU kernels' large outputs, kept for the next call instead of given back.
//
// A block the allocator hands out fresh faults in one page at a time when a kernel first writes
// it: a 38.5 MB conv output (MobileNetV2, batch 32) cost ~9,400 faults per forward, and glibc maps
// every allocation above 32 MB afresh and returns smaller freed ones to the system when they end
// its heap. Here a freed output of at least kMinCachedBytes goes into a cache, and the next output
// of about its size (same 64 KiB-rounded size up to 1/8 larger) takes it with its pages mapped.
// The cache holds at most its limit (CIRCLE_QUANT_OUTPUT_CACHE_MB, default 512; 0 turns it off);
// blocks freed past the limit are given back. torch_circle.release_output_cache() empties it.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>

namespace torch_circle {

// An uninitialized output with `options`' dtype and device. CPU outputs of kMinCachedBytes or
// more come from the cache; others (and Meta tensors) from ATen's allocator as at::empty.
at::Tensor empty_output(c10::SymIntArrayRef sizes, const at::TensorOptions& options,
                        c10::optional<at::MemoryFormat> memory_format = c10::nullopt);
// The same with explicit strides (dense ones: the elementwise ops' outputs follow their input).
at::Tensor empty_output_strided(c10::SymIntArrayRef sizes, c10::SymIntArrayRef strides,
                                const at::TensorOptions& options);

constexpr size_t kMinCachedBytes = size_t{1} << 20;

struct OutputCacheStats {
  size_t cached_bytes = 0;  // held for reuse now
  size_t limit_bytes = 0;
  size_t reused = 0;     // outputs served from the cache
  size_t allocated = 0;  // outputs that needed a new block
};
OutputCacheStats output_cache_stats();
// Gives every cached block back to the system.
void release_output_cache();

}  // namespace torch_circle
