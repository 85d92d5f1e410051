//===- Registry.cpp - The modules linked into a program -------------------===//
//
// This file implements the registry of compiled modules: registration (each
// module's constructor calls normrt_register_module), the thread count every
// module's Halide runtime gets, the list of layers, and the lookup of a
// layer by name and target label.
//
//===----------------------------------------------------------------------===//

#include "Registry.h"
#include "CpuFeatures.h"
#include "Scratch.h"
#include "Support.h"
#include "normrt/normrt.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

using namespace normrt::support;

namespace {

struct Registry {
  std::mutex mutex;
  std::vector<const normrt_module *> modules;
  /// normrt_set_num_threads' setting, applied to modules registered later.
  int numThreads = 0;
};

Registry &registry() {
  static Registry instance; // constructed on first use, safe from ctors
  return instance;
}

} // namespace

const normrt_layer_desc *normrt::findLayer(const char *name,
                                           const char *target,
                                           const normrt_module **moduleOut) {
  // "module.layer" picks a layer of one module; a bare name must be unique.
  std::string moduleName, layerName = name;
  if (const char *dot = std::strchr(name, '.')) {
    moduleName.assign(name, dot);
    layerName = dot + 1;
  }
  const normrt_layer_desc *desc = nullptr;
  const normrt_layer_desc *sameName = nullptr;
  const char *descModule = nullptr;
  const normrt_module *module = nullptr;
  std::string ambiguous;
  {
    Registry &r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (const normrt_module *m : r.modules) {
      if (!moduleName.empty() && moduleName != m->name)
        continue;
      for (int32_t i = 0; i < m->num_layers; ++i) {
        const normrt_layer_desc &d = m->layers[i];
        // Forms after a layer's first are reached through the first.
        if (d.num_forms == 0 || layerName != d.name)
          continue;
        sameName = &d;
        if (std::strcmp(d.target, target) != 0)
          continue;
        if (desc)
          ambiguous = std::string(descModule) + "' and '" + m->name;
        else {
          desc = &d;
          descModule = m->name;
          module = m;
        }
      }
    }
  }
  if (!ambiguous.empty()) {
    fail("layer '%s' on target '%s' is defined by modules '%s'; name it as "
         "'module.%s'",
         name, target, ambiguous.c_str(), layerName.c_str());
    return nullptr;
  }
  if (!desc) {
    if (sameName)
      fail("layer '%s' was not compiled for target '%s' (it has target "
           "'%s', among others)",
           name, target, sameName->target);
    else
      fail("no layer named '%s' in the modules linked into this program "
           "(include a module's header or link it with --whole-archive)",
           name);
    return nullptr;
  }
  *moduleOut = module;
  return desc;
}

extern "C" {

int normrt_register_module(const normrt_module *module) {
  if (!module)
    return fail("normrt_register_module: module must not be NULL");
  if (module->abi_version != NORMRT_MODULE_ABI_VERSION)
    return fail("module '%s' was built for normrt module ABI %d, but this "
                "runtime speaks ABI %d; rebuild it with the matching normc",
                module->name ? module->name : "?", module->abi_version,
                NORMRT_MODULE_ABI_VERSION);
  if (!module->halide)
    return fail("module '%s' carries no Halide runtime entry points",
                module->name ? module->name : "?");
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (std::find(r.modules.begin(), r.modules.end(), module) == r.modules.end())
    r.modules.push_back(module);
  module->halide->set_error_handler(onHalideError);
  module->halide->set_custom_malloc(normrt::scratchMalloc);
  module->halide->set_custom_free(normrt::scratchFree);
  if (r.numThreads > 0)
    module->halide->set_num_threads(r.numThreads);
  succeed();
  return 0;
}

int32_t normrt_runnable_variant(const normrt_layer_desc *desc) {
  for (int32_t i = 0; desc && i < desc->num_variants; ++i)
    if (normrt::missingCpuFeatures(desc->variants[i].cpu_features).empty())
      return i;
  return -1;
}

size_t normrt_release_scratch(void) { return normrt::releaseScratch(); }

int normrt_set_num_threads(int threads) {
  // Every module's Halide runtime gets the setting (statically linked
  // modules share one; shared libraries each have their own).
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  int previous = r.numThreads;
  r.numThreads = threads;
  for (const normrt_module *m : r.modules)
    previous = m->halide->set_num_threads(threads);
  return previous;
}

const char *normrt_layer_name_at(int index, const char **target) {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const normrt_module *m : r.modules)
    for (int32_t i = 0; i < m->num_layers; ++i) {
      const normrt_layer_desc &d = m->layers[i];
      if (d.num_forms == 0) // a later form of the layer before it
        continue;
      if (index-- == 0) {
        if (target)
          *target = d.target;
        return d.name;
      }
    }
  return nullptr;
}

} // extern "C"

namespace {

/// Where a CPU reports no last-level cache: the L3 of one core complex of
/// the larger x86 server parts (32 MiB), so that tensors of 100 MB and more
/// stream and ResNet-sized activations do not.
constexpr int64_t kDefaultStreamingThresholdBytes = int64_t(32) << 20;

int64_t defaultStreamingThreshold() {
  if (const char *env = std::getenv("NORMRT_STREAMING_THRESHOLD")) {
    char *end = nullptr;
    long long value = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && value >= 0)
      return value;
  }
  int64_t cache = normrt::lastLevelCacheBytes();
  return cache > 0 ? cache : kDefaultStreamingThresholdBytes;
}

std::atomic<int64_t> &streamingThreshold() {
  static std::atomic<int64_t> threshold{defaultStreamingThreshold()};
  return threshold;
}

} // namespace

int64_t normrt_set_streaming_threshold(int64_t bytes) {
  return streamingThreshold().exchange(bytes < 0 ? defaultStreamingThreshold()
                                                 : bytes);
}

int64_t normrt_streaming_threshold(void) { return streamingThreshold(); }

namespace {

/// The cache line of the CPUs normc targets (x86-64, AArch64).
constexpr int64_t kCacheLineBytes = 64;

} // namespace

int normrt_streaming_applies(int64_t tensor_bytes, int64_t row_bytes) {
  int64_t threshold = normrt_streaming_threshold();
  if (threshold == 0)
    return 1;
  // A row that ends inside a line leaves the line to two stores: the row's
  // last (masked) one and the next row's first, which is unaligned and so
  // an ordinary store in the streaming variant. A line that sees both kinds
  // is flushed half written and read back: 32x1024x14x14 NCHW f32 (rows of
  // 784 bytes) ran eval in 2.5 ms streaming and 1.2 ms not on a Zen 4,
  // while 32x64x56x56 (12544 bytes) ran 0.74 and 1.1.
  return tensor_bytes > threshold && row_bytes % kCacheLineBytes == 0;
}
