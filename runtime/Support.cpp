//===- Support.cpp - Errors, dtypes and shapes for normrt -----------------===//

#include "Support.h"
#include "Geometry.h"

#include <cstdarg>
#include <cstdio>

namespace {
thread_local std::string lastError;
thread_local std::string halideMessage;

} // namespace

int normrt::support::fail(const char *format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  lastError = buffer;
  return 1;
}

void normrt::support::succeed() { lastError.clear(); }

const char *normrt::support::lastErrorText() { return lastError.c_str(); }

/// Halide's default handler prints and aborts; ours keeps the message for
/// normrt_last_error() and lets the kernel return its error code.
void normrt::support::onHalideError(void *, const char *message) {
  halideMessage = message ? message : "";
  while (!halideMessage.empty() && halideMessage.back() == '\n')
    halideMessage.pop_back();
}

size_t normrt::support::dtypeSize(int32_t dtype) {
  switch (dtype) {
  case NORMRT_FLOAT32:
    return 4;
  case NORMRT_FLOAT64:
  case NORMRT_INT64:
    return 8;
  case NORMRT_FLOAT16:
  case NORMRT_BFLOAT16:
    return 2;
  }
  return 0;
}

const char *normrt::support::dtypeName(int32_t dtype) {
  switch (dtype) {
  case NORMRT_FLOAT32:
    return "float32";
  case NORMRT_FLOAT64:
    return "float64";
  case NORMRT_FLOAT16:
    return "float16";
  case NORMRT_BFLOAT16:
    return "bfloat16";
  case NORMRT_INT64:
    return "int64";
  }
  return "unknown";
}

halide_type_t normrt::support::halideType(int32_t dtype) {
  switch (dtype) {
  case NORMRT_FLOAT64:
    return halide_type_t(halide_type_float, 64);
  case NORMRT_FLOAT16:
    return halide_type_t(halide_type_float, 16);
  case NORMRT_BFLOAT16:
    return halide_type_t(halide_type_bfloat, 16);
  case NORMRT_INT64:
    return halide_type_t(halide_type_int, 64);
  default:
    return halide_type_t(halide_type_float, 32);
  }
}

std::string normrt::support::shapeString(const std::vector<int64_t> &shape) {
  return normrt::shapeString(shape.data(), int(shape.size()));
}

std::string normrt::support::shapeString(const normrt_tensor *t) {
  return normrt::shapeString(t->shape, t->ndim);
}


const char *normrt::support::halideText() {
  return halideMessage.empty() ? "no message" : halideMessage.c_str();
}

void normrt::support::clearHalideMessage() { halideMessage.clear(); }

extern "C" const char *normrt_last_error(void) {
  return normrt::support::lastErrorText();
}
