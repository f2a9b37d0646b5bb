#!/usr/bin/env bash
# Builds everything and runs the whole test suite (unit, integration against the real binaries,
# and the netcat recipes of docs/protocol.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
build=${BUILD_DIR:-build}
ctest --test-dir "$build" --output-on-failure -j 2
