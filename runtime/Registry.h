//===- Registry.h - The modules linked into a program ------------*- C++ -*-===//
//
// normrt's registry of compiled modules (normrt_register_module) and the
// lookup of a layer by name and target label.
//
//===----------------------------------------------------------------------===//

#ifndef NORMRT_REGISTRY_H
#define NORMRT_REGISTRY_H

#include "normrt/module.h"

namespace normrt {

/// The layer `name` ("layer" or "module.layer") on target label `target`,
/// and its module; on failure null, with the reason as the thread's error.
const normrt_layer_desc *findLayer(const char *name, const char *target,
                                   const normrt_module **module);

} // namespace normrt

#endif // NORMRT_REGISTRY_H
