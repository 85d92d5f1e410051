#!/usr/bin/env bash
# tools/check-sanitizers.sh [--build-only] SOURCE_DIR BUILD_DIR [PYTHON_WITH_TORCH [NORMC]]
#
# Configures SOURCE_DIR in BUILD_DIR with AddressSanitizer and
# UndefinedBehaviorSanitizer (NORMC_SANITIZE=ON), then runs the GoogleTest
# suites (LeakSanitizer included) and, when a python with torch is given, the
# PyTorch conformance suite with the sanitizer runtimes preloaded.
#
# With --build-only it stops after building: the main build does that step
# (target hardening_builds), so the test itself finds the instrumented tree
# up to date and only runs the suites.
#
# NORMC, an uninstrumented normc (the main build's), compiles the test specs:
# its kernel cache is warm, while the instrumented normc, whose build id is
# its own, would compile every kernel again. The instrumented normc compiles
# test/sanitize/emit.norm (every schedule and epilogue once, no cache), so
# the emitter still runs under the sanitizers.
set -euo pipefail
build_only=false
if [[ ${1:-} == --build-only ]]; then
  build_only=true
  shift
fi
src=$1
dir=$2
python=${3:-}
normc=${4:-}

cmake -S "$src" -B "$dir" -G Ninja -DNORMC_SANITIZE=ON \
  -DNORMC_MODULE_COMPILER="$normc" >"$dir.configure.log" 2>&1 ||
  { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" --target normc normrt_unit_tests normc_compiler_tests conformance_library
if $build_only; then
  exit 0
fi
# Leaks inside pocl (the OpenCL device of the GPU-schedule tests) are pocl's.
export LSAN_OPTIONS="suppressions=$src/tools/lsan.supp:print_suppressions=0"
"$dir/tools/normc" "$src/test/sanitize/emit.norm" -o "$dir/emit-smoke" \
  --no-cache --quiet --shared --runtime-lib "$dir/runtime/libnormrt.a"
"$dir/test/unit/normrt_unit_tests" --gtest_brief=1
"$dir/test/unit/normc_compiler_tests" --gtest_brief=1
if [[ -n "$python" ]]; then
  # Python itself is not instrumented: preload the runtimes, and leave leak
  # checking to the GoogleTest runs (the interpreter keeps memory at exit).
  preload="$(c++ -print-file-name=libasan.so):$(c++ -print-file-name=libubsan.so)"
  (cd "$src/test/conformance" &&
    LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 "$python" test_conformance.py \
      "$dir/test/conformance/conformance_module.normc/libconformance.so")
fi
echo "sanitizers: unit and conformance suites clean under ASan+UBSan"
