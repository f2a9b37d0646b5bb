#!/usr/bin/env bash
# Installs what the benchmark suite needs beyond scripts/setup.sh, from Debian's packages. Safe to
# run again: it installs only what is missing. Needs root (or sudo) the first time.
set -euo pipefail

packages=(
  redis-server redis-tools            # the Redis reference: redis-server, redis-benchmark
  gearman-job-server libgearman-dev   # the gearmand reference: gearmand, and its C library
  gnuplot-nox                         # the plots in docs/
  linux-perf valgrind                 # bench/profile.sh: perf record (cpu-clock), callgrind
  python3-numpy                       # the numpy reference for `mrctl matmul A.npy B.npy`
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "bench/setup: installing ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
