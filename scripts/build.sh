#!/usr/bin/env bash
# Installs the dependencies and builds mrd and mrctl into build/ (or $BUILD_DIR).
# Extra arguments go to CMake, e.g. scripts/build.sh -DMRD_SANITIZE=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
