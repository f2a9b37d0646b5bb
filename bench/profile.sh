#!/usr/bin/env bash
# Where mrd spends its time on the benchmarks' paths, two ways, into /tmp/mrd-bench/profile/:
#
#   perf record -e cpu-clock  sampling by time (works where hardware counters are "not
#                             supported"), attached to the server and its two workers;
#                             reported per process and per function: *-perf.txt
#   valgrind --tool=callgrind instruction counts of the server and of each worker
#                             (--trace-children), repeatable however loaded the machine is:
#                             callgrind-*.txt (callgrind_annotate, self and inclusive)
#   valgrind --tool=massif    the server's heap at its peak while 2,000 connections sit idle:
#                             massif.idle.txt
#
#   bash bench/profile.sh [CASE...]
#     CASE: wordcount tiny matmul cg-tiny cg-wordcount heap-idle (default: all of them)
#
# Builds Release with -g -fno-omit-frame-pointer into $PROFILE_BUILD (default
# /tmp/mrd-bench/prof-build). Servers listen on 127.0.0.1 on a free port and are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/setup.sh
build=${PROFILE_BUILD:-/tmp/mrd-bench/prof-build}
out=/tmp/mrd-bench/profile
mkdir -p "$build" "$out"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  "-DCMAKE_CXX_FLAGS=-g -fno-omit-frame-pointer" >"$build/cmake.log" 2>&1
cmake --build "$build" -j 2 --target mrd e2e loadgen >"$build/build.log" 2>&1 ||
  { tail -40 "$build/build.log"; exit 1; }
corpus=$(python3 bench/suite.py --build "$build" --corpus-only)
cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || cases=(wordcount tiny matmul cg-tiny cg-wordcount heap-idle)

server_pid=""
# Starts mrd (optionally under a wrapper such as valgrind); sets server_pid, port, workers.
start_mrd() {
  rm -f "$out/port"
  "$@" "$build/server/mrd" --listen 127.0.0.1:0 --port-file "$out/port" --workers 2 \
    --log-level warn >>"$out/mrd.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do [[ -s $out/port ]] && break; sleep 0.1; done
  port=$(cat "$out/port")
  workers=""
  for _ in $(seq 300); do  # both workers up (slow under valgrind)
    workers=$(cat /proc/"$server_pid"/task/*/children | tr ' ' '\n' | { grep . || true; } |
      paste -sd, -)
    [[ $workers == *,* ]] && break
    sleep 0.1
  done
  sleep 1
}
stop_mrd() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
trap stop_mrd EXIT

# perf_case NAME COMMAND...: samples the server and workers while COMMAND runs.
perf_case() {
  local name=$1; shift
  start_mrd
  "$@" >/dev/null  # warm-up
  perf record -e cpu-clock -F 1999 -g -p "$server_pid,$workers" -o "$out/$name.data" \
    >"$out/$name-record.log" 2>&1 &
  local perf_pid=$!
  sleep 0.5
  "$@" >"$out/$name-run.json"
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  {
    echo "# $name: $*"
    echo "# server pid $server_pid (threads: $(ls /proc/"$server_pid"/task | paste -sd' ' -))," \
      "workers $workers"
    cat "$out/$name-run.json"
    echo; echo "## share of samples per thread"
    perf report -i "$out/$name.data" --no-children -g none --sort pid --stdio 2>/dev/null |
      grep -E '^ +[0-9]'
    echo; echo "## self time, by thread and function (top 60)"
    perf report -i "$out/$name.data" --no-children -g none --sort pid,sym --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | sed -n '1,60p'
    echo; echo "## server, inclusive time of its functions (top 60)"
    perf report -i "$out/$name.data" --children -g none --pid "$server_pid" --sort sym --stdio \
      2>/dev/null | grep -E '^ +[0-9]' | grep -v '\[k\]' | sed -n '1,60p'
  } >"$out/$name-perf.txt"
  stop_mrd
  echo "profile: $out/$name-perf.txt"
}

# callgrind_case NAME COMMAND...: instruction counts of the server and workers over COMMAND.
callgrind_case() {
  local name=$1; shift
  rm -f "$out"/callgrind."$name".*
  start_mrd valgrind --tool=callgrind --trace-children=yes \
    --callgrind-out-file="$out/callgrind.$name.%p"
  "$@" >"$out/$name-run.json"
  for pid in ${workers//,/ } "$server_pid"; do callgrind_control -d "$pid" >/dev/null; done
  sleep 2
  stop_mrd
  for f in "$out"/callgrind."$name".*.1; do
    {
      echo "# $name: $*"; cat "$out/$name-run.json"
      callgrind_annotate --threshold=95 "$f" | sed -n '1,80p'
      echo; echo "## inclusive"
      callgrind_annotate --inclusive=yes --threshold=99 "$f" | sed -n '1,100p'
    } >"$f.txt"
    echo "profile: $f.txt"
  done
}

# massif_case NAME COMMAND...: the server's heap at its peak over COMMAND (valgrind's massif).
massif_case() {
  local name=$1; shift
  start_mrd valgrind --tool=massif --massif-out-file="$out/massif.$name" --threshold=1.0
  "$@" >"$out/$name-run.json"
  stop_mrd
  {
    echo "# $name: $*"; cat "$out/$name-run.json"
    ms_print --threshold=1.0 "$out/massif.$name"
  } >"$out/massif.$name.txt"
  echo "profile: $out/massif.$name.txt"
}

# The loads, run once mrd is up ($port is its port).
small=/tmp/mrd-bench/real-4.txt
head -c $((4 << 20)) "$corpus" >"$small"
wordcount() { "$build/bench/e2e" wordcount --server "127.0.0.1:$port" --file "$corpus" --runs 3 \
  --warmup 0; }
small_wordcount() { "$build/bench/e2e" wordcount --server "127.0.0.1:$port" --file "$small" \
  --runs 1 --warmup 0; }
matmul() { "$build/bench/e2e" matmul --server "127.0.0.1:$port" --n 2000 --runs 3 --warmup 0; }
tiny() { "$build/bench/loadgen" roundtrip --server "127.0.0.1:$port" -c 32 --seconds 4 \
  --warmup 0; }
idle() { "$build/bench/loadgen" idle --server "127.0.0.1:$port" -c 2000 --hold 3; }
few_tiny() { "$build/bench/loadgen" roundtrip --server "127.0.0.1:$port" -c 8 --max-jobs 3000 \
  --seconds 120 --warmup 0; }

for c in "${cases[@]}"; do
  case $c in
    wordcount) perf_case wordcount wordcount ;;
    tiny) perf_case tiny tiny ;;
    matmul) perf_case matmul matmul ;;
    cg-tiny) callgrind_case tiny few_tiny ;;
    cg-wordcount) callgrind_case wordcount small_wordcount ;;
    heap-idle) massif_case idle idle ;;
    *) echo "profile: unknown case $c" >&2; exit 2 ;;
  esac
done
