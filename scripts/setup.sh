#!/usr/bin/env bash
# Installs what mrd needs to build and test, from Debian's packages. Safe to run again: it installs
# only what is missing. Needs root (or sudo) the first time.
set -euo pipefail

packages=(
  build-essential cmake       # compiler and build
  libasio-dev libcereal-dev   # networking, serialization
  libcli11-dev                # command-line parsing (mrd, mrctl)
  libopenblas-dev             # matrix kernel
  libsqlite3-dev              # durable jobs and results (mrd --data-dir)
  libssl-dev                  # SHA-256 (libcrypto): idempotency keys bound to their request
  sqlite3                     # the recovery path for a damaged data directory (.recover)
  libgtest-dev                # tests
  netcat-openbsd xxd          # the protocol recipes in docs/protocol.md
  python3                     # the second client (client/python) and its tests
  tshark                      # the Wireshark dissector's test
  clang libclang-rt-14-dev    # libFuzzer targets (tests/fuzz)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
