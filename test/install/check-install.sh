#!/usr/bin/env bash
# check-install.sh BUILD_DIR WORK_DIR [PYTHON] - installs normc from BUILD_DIR
# into a prefix under WORK_DIR and builds and runs a downstream project
# against it, outside the source tree: once with CMake (find_package +
# normc_add_module), once with plain cc/c++ and pkg-config, plus `normc
# --shared` with no --runtime-lib from the installed prefix. With PYTHON (a
# python3 that imports torch and torchvision), also the installed Python
# package: its tests, and the installed torch_resnet.py example with the
# installed normc.
set -euo pipefail
build=$(cd "$1" && pwd)
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"

cmake --install "$build" --prefix "$prefix" >/dev/null
export NORMC_CACHE_DIR="$work/cache"

echo "== CMake: find_package(normc CONFIG)"
cp -r "$here/downstream" "$work/src"
cmake -S "$work/src" -B "$work/cmake-build" -G Ninja \
      -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
"$work/cmake-build/c_program"
"$work/cmake-build/cpp_program"
test -f "$work/cmake-build/model.normc/libmodel.so"

echo "== plain cc/c++ with pkg-config"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
normc=$(pkg-config --variable=normc normc)
"$normc" "$work/src/model.norm" -o "$work/plain" --module model --quiet
# C: no header of the module, so the layer table is named to the linker.
cc -o "$work/plain/c_program" "$work/src/main.c" -Wl,--undefined=normc_module_model \
   "$work/plain/model.a" $(pkg-config --cflags --libs normc) -lm
"$work/plain/c_program"
c++ -o "$work/plain/cpp_program" "$work/src/main.cpp" -I"$work/plain" \
    "$work/plain/model.a" $(pkg-config --cflags --libs normc)
"$work/plain/cpp_program"

echo "== normc --shared from the prefix, no --runtime-lib"
"$prefix/bin/normc" "$work/src/model.norm" -o "$work/shared" --module model --shared --quiet
# The symbol table is read whole first: with pipefail, `nm | grep -q` failed
# whenever grep stopped reading before nm had written everything (SIGPIPE).
symbols=$(nm -D --defined-only "$work/shared/libmodel.so")
grep -q " T normrt_layer_create" <<<"$symbols"
if [[ -n "${3:-}" ]]; then
  echo "== Python: the installed normrt package and example"
  export PYTHONPATH="$prefix/share/normc/python"
  "$3" -c 'import normrt, normrt.torch, sys; sys.exit(0 if normrt.__file__.startswith(sys.argv[1]) else 1)' "$prefix"
  "$3" "$here/../python/test_torch.py" "$build/test/python/torch_module.normc/libtorchmods.so" 2>&1 | tail -3
  "$3" "$prefix/share/normc/examples/torch_resnet.py" --normc "$prefix/bin/normc" \
       --work "$work/torch_resnet" --steps 2 --batch 4 --size 64
fi
echo "check-install: ok"
