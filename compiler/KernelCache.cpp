//===- KernelCache.cpp - Compiled kernels kept between runs ---------------===//
//
// This file implements the kernel cache (KernelCache.h). An entry's file name
// is the MD5 of normc's build id and the kernel's key; its content is the
// object file as Halide wrote it.
//
//===----------------------------------------------------------------------===//

#include "compiler/KernelCache.h"

#include "llvm/Config/llvm-config.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MD5.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

using namespace normc;

const std::string &normc::normcBuildId() {
  static const std::string id = [] {
    llvm::MD5 hash;
    std::string exe = llvm::sys::fs::getMainExecutable(
        nullptr, reinterpret_cast<void *>(&normcBuildId));
    if (auto contents = llvm::MemoryBuffer::getFile(exe))
      hash.update((*contents)->getBuffer());
    else
      hash.update(exe); // unreadable: a cache that never matches a rebuild
    hash.update("normc " NORMC_VERSION " halide " NORMC_HALIDE_VERSION);
    hash.update("llvm " LLVM_VERSION_STRING);
    llvm::MD5::MD5Result result;
    hash.final(result);
    return result.digest().str().str();
  }();
  return id;
}

std::string normc::defaultKernelCacheDir() {
  if (auto dir = llvm::sys::Process::GetEnv("NORMC_CACHE_DIR"))
    return *dir;
  llvm::SmallString<256> path;
  if (auto xdg = llvm::sys::Process::GetEnv("XDG_CACHE_HOME")) {
    path = *xdg;
  } else if (llvm::sys::path::home_directory(path)) {
    llvm::sys::path::append(path, ".cache");
  } else {
    return "";
  }
  llvm::sys::path::append(path, "normc");
  return path.str().str();
}

llvm::Expected<KernelCache> KernelCache::open(llvm::StringRef dir) {
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return llvm::createStringError(ec, "cannot create the kernel cache '%s': %s",
                                   dir.str().c_str(), ec.message().c_str());
  return KernelCache(dir.str());
}

std::string KernelCache::entryPath(llvm::StringRef key) const {
  llvm::MD5 hash;
  hash.update(normcBuildId());
  hash.update(key);
  llvm::MD5::MD5Result result;
  hash.final(result);
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, result.digest().str() + ".o");
  return path.str().str();
}

std::string KernelCache::lookup(llvm::StringRef key) const {
  std::string path = entryPath(key);
  return llvm::sys::fs::exists(path) ? path : "";
}

llvm::Error KernelCache::store(llvm::StringRef key,
                               llvm::StringRef object) const {
  std::string path = entryPath(key);
  llvm::SmallString<256> temp;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueFile(path + ".%%%%%%.tmp", temp))
    return llvm::errorCodeToError(ec);
  if (std::error_code ec = llvm::sys::fs::copy_file(object, temp)) {
    llvm::sys::fs::remove(temp);
    return llvm::errorCodeToError(ec);
  }
  if (std::error_code ec = llvm::sys::fs::rename(temp, path)) {
    llvm::sys::fs::remove(temp);
    return llvm::errorCodeToError(ec);
  }
  return llvm::Error::success();
}
