#!/usr/bin/env bash
# check-deb.sh BUILD_DIR WORK_DIR - builds normc's .deb with CPack and checks
# its control file (name, version, the Debian packages it depends on) and
# contents (the compiler, the runtime, its headers, the CMake and pkg-config
# files, a pkg-config file that points at /usr).
set -euo pipefail
build=$(cd "$1" && pwd)
work=$2
rm -rf "$work"
mkdir -p "$work"
(cd "$build" && cpack -G DEB -B "$work" >/dev/null)
deb=$(ls "$work"/normc_*.deb)
echo "package: $(basename "$deb")"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for needed in libhalide14-0 libllvm14 libmlir-14 libstdc++6 "g++"; do
  case "$depends" in
    *"$needed"*) ;;
    *) echo "check-deb: Depends lacks $needed"; exit 1 ;;
  esac
done
contents=$(dpkg-deb -c "$deb")
for file in ./usr/bin/normc ./usr/lib/libnormrt.a ./usr/include/normrt/normrt.h \
            ./usr/lib/cmake/normc/normcConfig.cmake ./usr/lib/pkgconfig/normc.pc \
            ./usr/share/normc/python/normrt/__init__.py \
            ./usr/share/normc/python/normrt/torch.py; do
  grep -q " $file\$" <<<"$contents" || { echo "check-deb: $file missing"; exit 1; }
done
dpkg-deb -x "$deb" "$work/root"
grep -qx "prefix=/usr" "$work/root/usr/lib/pkgconfig/normc.pc" ||
  { echo "check-deb: normc.pc does not point at /usr"; exit 1; }
echo "check-deb: ok"
