#!/usr/bin/env bash
# tools/fuzz-frontend.sh [--build-only] SOURCE_DIR BUILD_DIR [SECONDS]
#
# Builds the libFuzzer target over normc's front end with clang (ASan+UBSan)
# in BUILD_DIR and fuzzes it for SECONDS (default 60), seeded with the specs
# of the test suites and the examples. Exits non-zero on a crash, a hang or
# a sanitizer report; the reproducer is left in BUILD_DIR. With --build-only
# it stops after building (the main build's target hardening_builds).
set -euo pipefail
build_only=false
if [[ ${1:-} == --build-only ]]; then
  build_only=true
  shift
fi
src=$1
dir=$2
seconds=${3:-60}

cc=$(command -v clang-14 || command -v clang)
cxx=$(command -v clang++-14 || command -v clang++)
CC=$cc CXX=$cxx cmake -S "$src" -B "$dir" -G Ninja -DNORMC_FUZZ=ON \
  -DNORMC_ENABLE_TESTS=OFF >"$dir.configure.log" 2>&1 ||
  { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" --target normc-fuzz-frontend
if $build_only; then
  exit 0
fi
corpus="$dir/corpus"
mkdir -p "$corpus"
"$dir/test/fuzz/normc-fuzz-frontend" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$dir/" "$corpus" \
  "$src/test/lit/ast" "$src/test/lit/mlir" "$src/test/lit/kernels" \
  "$src/test/lit/emit" "$src/test/lit/diagnostics" "$src/test/unit/specs" \
  "$src/test/conformance/specs" "$src/examples"
