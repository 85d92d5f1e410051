//===- ModuleFiles.h - The header and layer table of a module ---*- C++ -*-===//
//
// This file declares the two files a module plan turns into besides its
// kernels: the C header that declares the kernels and the layer table
// (ModuleHeader.cpp), and the object file that holds the layer table and the
// constructor that registers it with normrt (LayerTable.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_MODULEFILES_H
#define NORMC_COMPILER_MODULEFILES_H

#include "compiler/ModulePlan.h"

#include "llvm/Support/Error.h"

#include <string>

namespace normc {

/// The text of <module>.h; `specFilename` is named in its banner.
std::string moduleHeaderText(const ModulePlan &plan,
                             const std::string &moduleName,
                             const std::string &specFilename);

/// Writes the layer table of runtime/include/normrt/module.h, and a
/// constructor that registers it, as an object file at `path`.
llvm::Error writeLayerTableObject(const ModulePlan &plan,
                                  const std::string &moduleName,
                                  const std::string &path);

} // namespace normc

#endif // NORMC_COMPILER_MODULEFILES_H
