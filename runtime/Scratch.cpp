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
constexpr size_t kAlignment = 128;
/// Blocks smaller than this bypass the cache.
constexpr size_t kMinCachedBytes = 64 * 1024;
/// The most blocks, and bytes, the cache keeps; the oldest go first.
constexpr size_t kMaxCachedBlocks = 16;
constexpr size_t kMaxCachedBytes = size_t(256) << 20;

/// What precedes each block (in the kAlignment bytes before it).
struct Header {
  void *base;      ///< what posix_memalign returned
  size_t capacity; ///< usable bytes after the header
};

struct Cache {
  std::mutex mutex;
  std::vector<Header> blocks; ///< oldest first
  size_t bytes = 0;
};

Cache &cache() {
  static Cache *instance = new Cache; // never destroyed: kernels may run late
  return *instance;
}

Header *headerOf(void *ptr) {
  return reinterpret_cast<Header *>(static_cast<char *>(ptr) - kAlignment);
}

void *allocate(size_t capacity) {
  void *base = nullptr;
  // kAlignment of slack after the block: Halide may read 8 bytes past it.
  if (posix_memalign(&base, kAlignment, kAlignment + capacity + kAlignment))
    return nullptr;
  void *ptr = static_cast<char *>(base) + kAlignment;
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
      size_t capacity = c.blocks[i].capacity;
      if (capacity >= size && capacity / 2 <= size &&
          (best == c.blocks.size() || capacity < c.blocks[best].capacity))
        best = i;
    }
    if (best != c.blocks.size()) {
      Header h = c.blocks[best];
      c.blocks.erase(c.blocks.begin() + std::ptrdiff_t(best));
      c.bytes -= h.capacity;
      return static_cast<char *>(h.base) + kAlignment;
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
    c.blocks.push_back(h);
    c.bytes += h.capacity;
    while (c.blocks.size() > kMaxCachedBlocks || c.bytes > kMaxCachedBytes) {
      evicted.push_back(c.blocks.front().base);
      c.bytes -= c.blocks.front().capacity;
      c.blocks.erase(c.blocks.begin());
    }
  }
  for (void *base : evicted)
    std::free(base);
}

size_t normrt::releaseScratch() {
  std::vector<Header> blocks;
  size_t bytes = 0;
  {
    Cache &c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    blocks.swap(c.blocks);
    bytes = c.bytes;
    c.bytes = 0;
  }
  for (const Header &h : blocks)
    std::free(h.base);
  return bytes;
}

size_t normrt::cachedScratchBytes() {
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.bytes;
}
