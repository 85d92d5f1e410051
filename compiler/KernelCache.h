//===- KernelCache.h - Compiled kernels kept between runs -------*- C++ -*-===//
//
// This file declares the kernel cache: object files of compiled kernel
// variants, stored under a digest of everything that decides their code (the
// normc build, Halide's and LLVM's versions, the kernel's symbol, its
// configuration key and its full Halide target). A rebuild after editing one
// layer recompiles only the kernels whose key changed. Entries are written
// under a temporary name and renamed into place, so concurrent normc runs
// never see half an object.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_KERNELCACHE_H
#define NORMC_COMPILER_KERNELCACHE_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace normc {

class KernelCache {
public:
  /// A cache in `dir` (created when missing).
  static llvm::Expected<KernelCache> open(llvm::StringRef dir);

  /// The cached object for `key`, or "" when there is none.
  std::string lookup(llvm::StringRef key) const;

  /// Stores a copy of `object` as the entry for `key`. A failure to store is
  /// not an error of the compile; it is returned for the caller to ignore.
  llvm::Error store(llvm::StringRef key, llvm::StringRef object) const;

  const std::string &directory() const { return dir; }

private:
  explicit KernelCache(std::string dir) : dir(std::move(dir)) {}
  std::string entryPath(llvm::StringRef key) const;
  std::string dir;
};

/// The default cache directory: $NORMC_CACHE_DIR, else
/// $XDG_CACHE_HOME/normc, else ~/.cache/normc; "" when none can be found.
std::string defaultKernelCacheDir();

/// A digest that changes whenever the code normc generates may change: the
/// running normc executable's contents and the Halide and LLVM versions.
const std::string &normcBuildId();

} // namespace normc

#endif // NORMC_COMPILER_KERNELCACHE_H
