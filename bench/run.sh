#!/usr/bin/env bash
# The benchmark suite, in one command: installs what it needs, builds Release, runs every
# section, writes bench/results/latest.json and regenerates docs/benchmarks.md and
# docs/bench-*.png.
#
#   bash bench/run.sh                    # everything (10-15 minutes on 2 cores)
#   bash bench/run.sh --quick            # fewer repetitions (under 3 minutes once built)
#   bash bench/run.sh --only tiny,hol    # some sections, merged into latest.json
#
# BENCH_BUILD (default /tmp/mrd-bench/build) is the build directory; corpora and logs go to
# /tmp/mrd-bench. Servers listen on 127.0.0.1 only, on free ports; see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash bench/setup.sh
build=${BENCH_BUILD:-/tmp/mrd-bench/build}
echo "bench: building Release in $build"
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  >"$build/bench-cmake.log" 2>&1 || { tail -30 "$build/bench-cmake.log"; exit 1; }
targets=(mrd mrctl wordcount_baseline matmul_baseline zipf_corpus e2e loadgen)
if grep -q '^GEARMAN_LIBRARY:FILEPATH=/' "$build/CMakeCache.txt"; then
  targets+=(gearman_bench)
fi
cmake --build "$build" -j 2 --target "${targets[@]}" >"$build/bench-build.log" 2>&1 ||
  { tail -50 "$build/bench-build.log"; exit 1; }
exec python3 bench/suite.py --build "$build" "$@"
