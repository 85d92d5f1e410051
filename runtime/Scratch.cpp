//===- Scratch.cpp - The kernels' scratch memory --------------------------===//
//
// This file implements the allocator normrt installs as every registered
// module's halide_malloc and halide_free. Kernels allocate their
// intermediates on each call: a channels-last reduction's per-task partial
// sums are tasks x C values of each sum (2 MB for 2048 channels in f64).
// From malloc, blocks that size come from fresh pages on every call (glibc
// maps them, or trims the heap when they are freed), and the kernel spent a
// third of its time in page faults on 8x2048x7x7 (perf). So blocks of at
// least kMinCachedBytes are kept when freed and handed out again, up to
// kMaxCachedBlocks blocks and kMaxCachedBytes bytes; smaller ones go to
// malloc, which serves them from its own free lists.
//
//===----------------------------------------------------------------------===//

#include "Scratch.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace {

/// Alignment of every block: a cache line pair, more than any vector.
constexpr uintptr_t kAlignment = 128;
/// Blocks smaller than this bypass the cache.
constexpr size_t kMinCachedBytes = 64 * 1024;
/// The most blocks, and bytes, the cache keeps; the oldest go first.
constexpr size_t kMaxCachedBlocks = 16;
constexpr size_t kMaxCachedBytes = size_t(256) << 20;

/// What precedes each block (in the bytes between malloc's pointer and the
/// aligned one).
struct Header {
  void *base;      ///< what malloc returned
  size_t capacity; ///< usable bytes from the aligned pointer on
};

struct Cache {
  std::mutex mutex;
  std::vector<void *> blocks; ///< aligned pointers, oldest first
  size_t bytes = 0;
};

Cache &cache() {
  static Cache *instance = new Cache; // never destroyed: kernels may run late
  return *instance;
}

Header *headerOf(void *ptr) { return static_cast<Header *>(ptr) - 1; }

/// malloc and alignment by hand, as Halide's own halide_malloc does:
/// posix_memalign cost the planar kernels, which allocate small partials
/// per channel task, up to 2.8x on 32x2048x7x7 train forward.
void *allocate(size_t capacity) {
  // kAlignment before the block for the header and the alignment, 64 bytes
  // after it (Halide may read 8 bytes past the end).
  void *base = std::malloc(kAlignment + capacity + 64);
  if (!base)
    return nullptr;
  uintptr_t aligned =
      (reinterpret_cast<uintptr_t>(base) + kAlignment) & ~(kAlignment - 1);
  void *ptr = reinterpret_cast<void *>(aligned);
  *headerOf(ptr) = {base, capacity};
  return ptr;
}

} // namespace

void *normrt::scratchMalloc(void *, size_t size) {
  if (size < kMinCachedBytes)
    return allocate(size);
  Cache &c = cache();
  {
    // The smallest cached block that holds `size` without wasting more
    // than the request itself.
    std::lock_guard<std::mutex> lock(c.mutex);
    size_t best = c.blocks.size();
    for (size_t i = 0; i < c.blocks.size(); ++i) {
      size_t capacity = headerOf(c.blocks[i])->capacity;
      if (capacity >= size && capacity / 2 <= size &&
          (best == c.blocks.size() ||
           capacity < headerOf(c.blocks[best])->capacity))
        best = i;
    }
    if (best != c.blocks.size()) {
      void *ptr = c.blocks[best];
      c.blocks.erase(c.blocks.begin() + std::ptrdiff_t(best));
      c.bytes -= headerOf(ptr)->capacity;
      return ptr;
    }
  }
  // Whole pages, so that sizes that differ a little share blocks.
  constexpr size_t page = 4096;
  return allocate((size + page - 1) / page * page);
}

void normrt::scratchFree(void *, void *ptr) {
  if (!ptr)
    return;
  Header h = *headerOf(ptr);
  if (h.capacity < kMinCachedBytes || h.capacity > kMaxCachedBytes) {
    std::free(h.base);
    return;
  }
  std::vector<void *> evicted;
  {
    Cache &c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.blocks.push_back(ptr);
    c.bytes += h.capacity;
    while (c.blocks.size() > kMaxCachedBlocks || c.bytes > kMaxCachedBytes) {
      void *oldest = c.blocks.front();
      evicted.push_back(headerOf(oldest)->base);
      c.bytes -= headerOf(oldest)->capacity;
      c.blocks.erase(c.blocks.begin());
    }
  }
  for (void *base : evicted)
    std::free(base);
}

size_t normrt::releaseScratch() {
  std::vector<void *> blocks;
  size_t bytes = 0;
  {
    Cache &c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    blocks.swap(c.blocks);
    bytes = c.bytes;
    c.bytes = 0;
  }
  for (void *ptr : blocks)
    std::free(headerOf(ptr)->base);
  return bytes;
}
