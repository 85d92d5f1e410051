//===- Support.h - Errors, dtypes and shapes for normrt ----------*- C++ -*-===//
//
// What every part of normrt shares: the thread-local error of the last
// failing call (normrt_last_error), the message of the last Halide error on
// this thread, and dtype and shape helpers.
//
//===----------------------------------------------------------------------===//

#ifndef NORMRT_SUPPORT_H
#define NORMRT_SUPPORT_H

#include "normrt/normrt.h"

#include "HalideRuntime.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace normrt {
namespace support {

/// Sets the calling thread's error message (printf-style); returns 1.
int fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
/// Clears the calling thread's error message.
void succeed();
const char *lastErrorText();

/// normrt's Halide error handler: keeps the message for the failing call
/// (Halide's default prints and aborts).
void onHalideError(void *userContext, const char *message);
/// What Halide's error handler last said on this thread.
const char *halideText();
void clearHalideMessage();

size_t dtypeSize(int32_t dtype);
const char *dtypeName(int32_t dtype);
halide_type_t halideType(int32_t dtype);

std::string shapeString(const std::vector<int64_t> &shape);
std::string shapeString(const normrt_tensor *t);

} // namespace support
} // namespace normrt

#endif // NORMRT_SUPPORT_H
