#include "output_cache.h"

#include <ATen/EmptyTensor.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace torch_circle {
namespace {

constexpr size_t kRounding = size_t{64} << 10;  // block sizes are multiples of 64 KiB
constexpr size_t kHugePage = size_t{2} << 20;

size_t limit_from_environment() {
  const char* env = std::getenv("CIRCLE_QUANT_OUTPUT_CACHE_MB");
  if (env == nullptr || *env == '\0') return size_t{512} << 20;
  const std::string text(env);
  TORCH_CHECK_VALUE(text.size() <= 9 && text.find_first_not_of("0123456789") == std::string::npos,
                    "CIRCLE_QUANT_OUTPUT_CACHE_MB must be a whole number of MiB (0 turns the output cache off), got \"",
                    text, "\"");
  return static_cast<size_t>(std::stoull(text)) << 20;
}

struct Block {
  void* data;
  size_t bytes;
};

// The c10::Allocator behind empty_output(): DataPtrs whose deleter puts the block back.
class OutputCache final : public c10::Allocator {
 public:
  OutputCache() : limit_(limit_from_environment()) {}

  c10::DataPtr allocate(size_t n) override {
    const size_t bytes = (n + kRounding - 1) / kRounding * kRounding;
    Block* block = take(bytes);
    if (block == nullptr) block = new Block{allocate_block(bytes), bytes};
    return {block->data, block, &give_back, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  bool enabled() const { return limit_ > 0; }

  OutputCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_bytes_, limit_, reused_, allocated_};
  }

  void release() {
    std::multimap<size_t, Block*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      cached_bytes_ = 0;
    }
    for (auto& [bytes, block] : blocks) destroy(block);
  }

 private:
  // A cached block of `bytes` to at most 1/8 more, or nullptr.
  Block* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.lower_bound(bytes);
    if (it == free_.end() || it->first > bytes + bytes / 8) {
      ++allocated_;
      return nullptr;
    }
    Block* block = it->second;
    free_.erase(it);
    cached_bytes_ -= block->bytes;
    ++reused_;
    return block;
  }

  static void* allocate_block(size_t bytes) {
    // Huge-page aligned, and marked for transparent huge pages where the system leaves that to
    // the program ("madvise" mode): a new block then faults in 2 MiB at a time.
    const size_t alignment = bytes >= kHugePage ? kHugePage : 64;
    void* data = std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
    if (data == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHugePage) madvise(data, bytes, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
    return data;
  }

  static void destroy(Block* block) {
    std::free(block->data);
    delete block;
  }

  static void give_back(void* context);

  const size_t limit_;
  std::mutex mutex_;
  std::multimap<size_t, Block*> free_;  // by size
  size_t cached_bytes_ = 0, reused_ = 0, allocated_ = 0;
};

// Never destroyed: outputs may be freed after static destructors ran (at interpreter exit).
OutputCache& cache() {
  static OutputCache* instance = new OutputCache();
  return *instance;
}

void OutputCache::give_back(void* context) {
  Block* block = static_cast<Block*>(context);
  OutputCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex_);
    if (c.cached_bytes_ + block->bytes <= c.limit_) {
      c.free_.emplace(block->bytes, block);
      c.cached_bytes_ += block->bytes;
      return;
    }
  }
  destroy(block);
}

size_t byte_size(c10::SymIntArrayRef sizes, const at::TensorOptions& options) {
  size_t elements = 1;
  for (const auto& s : sizes) elements *= static_cast<size_t>(s.expect_int());
  return elements * options.dtype().itemsize();
}

bool use_cache(c10::SymIntArrayRef sizes, const at::TensorOptions& options) {
  return options.device().is_cpu() && cache().enabled() && byte_size(sizes, options) >= kMinCachedBytes;
}

}  // namespace

at::Tensor empty_output(c10::SymIntArrayRef sizes, const at::TensorOptions& options,
                        c10::optional<at::MemoryFormat> memory_format) {
  if (!use_cache(sizes, options)) return at::empty_symint(sizes, options, memory_format);
  return at::detail::empty_generic(c10::asIntArrayRefUnchecked(sizes), &cache(),
                                   c10::DispatchKeySet(c10::DispatchKey::CPU), options.dtype().toScalarType(),
                                   memory_format);
}

at::Tensor empty_output_strided(c10::SymIntArrayRef sizes, c10::SymIntArrayRef strides,
                                const at::TensorOptions& options) {
  if (!use_cache(sizes, options)) return at::empty_strided_symint(sizes, strides, options);
  return at::detail::empty_strided_generic(c10::asIntArrayRefUnchecked(sizes), c10::asIntArrayRefUnchecked(strides),
                                           &cache(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                           options.dtype().toScalarType());
}

OutputCacheStats output_cache_stats() { return cache().stats(); }

void release_output_cache() { cache().release(); }

}  // namespace torch_circle
