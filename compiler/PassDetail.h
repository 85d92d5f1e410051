//===- PassDetail.h - Generated pass base classes ---------------*- C++ -*-===//
//
// Private to compiler/: pulls in the pass base classes that TableGen makes
// from Passes.td, for the pass files to derive from.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_PASSDETAIL_H
#define NORMC_COMPILER_PASSDETAIL_H

#include "compiler/NormDialect.h"
#include "compiler/Passes.h"

namespace normc {
#define GEN_PASS_CLASSES
#include "compiler/Passes.h.inc"
} // namespace normc

#endif // NORMC_COMPILER_PASSDETAIL_H
