//===- Scratch.h - The kernels' scratch memory ------------------*- C++ -*-===//
//
// This file declares the allocator normrt installs as each module's
// halide_malloc / halide_free (see Scratch.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef NORMRT_SCRATCH_H
#define NORMRT_SCRATCH_H

#include <cstddef>

namespace normrt {

/// halide_malloc: at least `size` bytes, 128-byte aligned, readable 8 bytes
/// either side; large blocks come from the cache of freed ones.
void *scratchMalloc(void *userContext, size_t size);
/// halide_free for scratchMalloc's blocks: large blocks go to the cache.
void scratchFree(void *userContext, void *ptr);
/// Frees every cached block; returns the bytes given back.
size_t releaseScratch();

} // namespace normrt

#endif // NORMRT_SCRATCH_H
