//===- CpuFeatures.cpp - Which x86 features this CPU has ------------------===//
//
// This file implements the CPU checks of CpuFeatures.h with CPUID and XGETBV
// (the same reading LLVM's sys::getHostCPUFeatures does, which normc uses to
// resolve `host`; a unit test holds the two to agree). On other
// architectures no feature of the table is present, and modules built for
// them record none.
//
//===----------------------------------------------------------------------===//

#include "CpuFeatures.h"

#include "normrt/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define NORMRT_X86 1
#endif

namespace {

/// Feature name -> present, for every feature of cpu_features.h.
using Reading = std::map<std::string, bool>;

/// The items of a comma-separated list, empty ones left out.
std::vector<std::string> splitList(const std::string &list) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos)
      end = list.size();
    if (end > start)
      items.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

#ifdef NORMRT_X86
uint64_t readXcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

bool cpuidBit(unsigned leaf, unsigned subleaf, int reg, int bit) {
  unsigned maxLeaf = __get_cpuid_max(leaf & 0x80000000u, nullptr);
  if (maxLeaf < leaf)
    return false;
  unsigned r[4];
  __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
  return (r[reg] >> bit) & 1u;
}
#endif

Reading readCpu() {
  Reading reading;
#ifdef NORMRT_X86
  // XGETBV is usable only when the OS enabled XSAVE (OSXSAVE, leaf 1 ECX 27).
  uint64_t xcr0 = cpuidBit(1, 0, 2, 27) ? readXcr0() : 0;
#define NORMRT_READ_FEATURE(name, leaf, subleaf, reg, bit, state)              \
  reading[name] =                                                              \
      cpuidBit(leaf, subleaf, reg, bit) && (xcr0 & (state)) == (state);
  NORMRT_X86_FEATURES(NORMRT_READ_FEATURE)
#undef NORMRT_READ_FEATURE
#endif
  // Test hook: features masked off as if the CPU lacked them (never on).
  if (const char *mask = std::getenv("NORMRT_TEST_CPU_FEATURES"))
    for (const std::string &item : splitList(mask))
      if (item.size() > 1 && item[0] == '-')
        reading[item.substr(1)] = false;
  return reading;
}

const Reading &cpu() {
  static const Reading reading = readCpu();
  return reading;
}

} // namespace

bool normrt::cpuHasFeature(const std::string &name) {
  auto found = cpu().find(name);
  return found != cpu().end() && found->second;
}

std::string normrt::missingCpuFeatures(const char *list) {
  std::string missing;
  for (const std::string &name : splitList(list ? list : ""))
    if (!cpuHasFeature(name))
      missing += (missing.empty() ? "" : ",") + name;
  return missing;
}

int64_t normrt::lastLevelCacheBytes() {
  // index0..N describe CPU 0's caches; sizes read like "32768K".
  int bestLevel = 0;
  int64_t bestBytes = 0;
  for (int index = 0; index < 16; ++index) {
    std::string dir =
        "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream levelFile(dir + "level"), sizeFile(dir + "size");
    int level = 0;
    std::string size;
    if (!(levelFile >> level) || !(sizeFile >> size) || size.empty())
      continue;
    char *end = nullptr;
    long long value = std::strtoll(size.c_str(), &end, 10);
    int64_t bytes = value;
    if (*end == 'K')
      bytes = value << 10;
    else if (*end == 'M')
      bytes = value << 20;
    else if (*end == 'G')
      bytes = value << 30;
    if (level > bestLevel || (level == bestLevel && bytes > bestBytes)) {
      bestLevel = level;
      bestBytes = bytes;
    }
  }
  return bestBytes;
}
