#!/usr/bin/env bash
# tools/setup.sh - install every Debian package normc's build and tests need.
#
# Idempotent: packages already present are skipped, and `apt-get update` runs
# only when something is missing. Needs root (or sudo) on Debian bookworm.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang-14 libclang-rt-14-dev
  dpkg-dev file
  llvm-14-dev llvm-14-tools libmlir-14-dev mlir-14-tools
  libhalide14-0-dev
  libgtest-dev libgmock-dev libbenchmark-dev libdnnl-dev gnuplot-nox
  python3 python3-numpy python3-torch python3-torchvision
  ocl-icd-opencl-dev pocl-opencl-icd
  libopenmpi-dev openmpi-bin
  zlib1g-dev libzstd-dev libedit-dev libcurl4-openssl-dev libxml2-dev libffi-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
