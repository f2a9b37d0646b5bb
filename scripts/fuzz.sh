#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (into build-fuzz/, or $FUZZ_BUILD_DIR) and
# runs each for SECONDS_PER_TARGET (default 60), as many at once as there are cores, each from a
# scratch copy of its seed corpus. Exits non-zero if any target crashed, leaked, timed out or
# tripped a sanitizer, after saying which and where its input was saved.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#   scripts/fuzz.sh --build-only     (builds the targets, runs none: .ci/run builds them early)
#
# To replay a saved input: build-fuzz/<target> <file>   (or a whole directory, with -runs=0)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
if ! [[ $seconds =~ ^([1-9][0-9]*|--build-only)$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET | --build-only]" >&2
  exit 2
fi

bash scripts/setup.sh  # clang and libclang-rt-14-dev, among the rest
build=${FUZZ_BUILD_DIR:-build-fuzz}
CC=clang CXX=clang++ cmake -S tests/fuzz -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
[[ $seconds == --build-only ]] && exit 0

# Target and its largest input in bytes. Small inputs keep each run short and still hold every
# kind of message; job_pipeline_fuzz runs a whole job per input, so it gets less.
# The last number is the largest single allocation allowed, in MiB. job_pipeline_fuzz keeps its
# matrix products small (its kMaxProductValues), below the engine's 256 MiB cap.
targets=(
  "frame_parser_fuzz 4096 256"
  "request_body_fuzz 4096 256"
  "reply_body_fuzz 4096 256"
  "task_message_fuzz 4096 256"
  "job_pipeline_fuzz 2048 256"
)

# One BLAS thread, as in a worker process (blas_threads.hpp): no idle pool started at load.
# Undefined behaviour already aborts (-fno-sanitize-recover); the stack says where it was.
export OPENBLAS_NUM_THREADS=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# Runs one target from a scratch copy of its seed corpus; its exit status goes to a file of its
# own, so that several can run at once.
fuzz_one() {
  local target=$1 max_len=$2 malloc_limit=$3
  local corpus="$build/corpus/$target"        # a scratch copy: the fuzzer adds to it
  local artifacts="$build/artifacts/$target"  # where a failing input is saved
  local log="$build/logs/$target.log"
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  cp tests/fuzz/corpus/"$target"/* "$corpus"/
  local status=0
  # -timeout: an input that takes longer is a hang. -malloc_limit_mb: no input of a few KiB has
  # any business allocating more than its job's caps allow; a larger single allocation means a
  # length or a count was trusted before it was checked.
  "$build/$target" "$corpus" \
    -dict=tests/fuzz/mrd.dict \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb="$malloc_limit" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  echo "$status" >"$build/logs/$target.status"
}

# As many at once as there are cores: each fuzzer is one process on one core.
for entry in "${targets[@]}"; do
  read -r target max_len malloc_limit <<<"$entry"
  while [[ $(jobs -rp | wc -l) -ge $(nproc) ]]; do wait -n || true; done
  echo "fuzz: $target for ${seconds}s"
  fuzz_one "$target" "$max_len" "$malloc_limit" &
done
wait

failed=()
summary=()
for entry in "${targets[@]}"; do
  read -r target _ _ <<<"$entry"
  log="$build/logs/$target.log"
  status=$(cat "$build/logs/$target.status" 2>/dev/null || echo 1)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  if [[ $status -ne 0 ]]; then
    failed+=("$target")
    crash=$(grep -o 'Test unit written to .*' "$log" | sed 's/Test unit written to //' || true)
    echo "fuzz: $target FAILED (exit $status); the end of $log:" >&2
    tail -n 40 "$log" >&2
    echo "fuzz: $target input that fails: ${crash:-(none saved; see $log)}" >&2
    [[ -n $crash ]] && echo "fuzz: replay it with: $build/$target $crash" >&2
    summary+=("$(printf '%-20s FAILED after %s executions' "$target" "${runs:-?}")")
  else
    summary+=("$(printf '%-20s ok, %s executions' "$target" "${runs:-?}")")
  fi
done

echo "fuzz: ${seconds}s per target:"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
