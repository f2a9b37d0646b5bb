#!/usr/bin/env bash
# Installs what mrd needs to build and test, from Debian's packages. Safe to run again: it installs
# only what is missing. Needs root (or sudo) the first time. Arguments name more packages to
# install with them (scripts/package.sh: the packaging tools).
set -euo pipefail

packages=(
  build-essential cmake       # compiler and build
  libasio-dev libcereal-dev   # networking, serialization
  libcli11-dev                # command-line parsing (mrd, mrctl)
  libopenblas-dev             # matrix kernel
  libsqlite3-dev              # durable jobs and results (mrd --data-dir)
  libssl-dev                  # SHA-256 (libcrypto): idempotency keys bound to their request
  libhiredis-dev              # Redis client (mrd --redis: nodes that share their jobs)
  redis-server                # the Redis the cluster tests start (tests/cluster_test.cpp)
  sqlite3                     # the recovery path for a damaged data directory (.recover)
  libgtest-dev                # tests
  netcat-openbsd xxd          # the protocol recipes in docs/protocol.md
  python3                     # the second client (client/python) and its tests
  python3-venv python3-wheel  # pip install client/python, tried in a venv without network
  tshark                      # the Wireshark dissector's test
  clang libclang-rt-14-dev    # libFuzzer targets (tests/fuzz)
  pkg-config libcpp-httplib-dev nlohmann-json3-dev  # mrd-web: HTTP server, JSON bodies
  curl                        # mrd-web's test (and docs/http.md's examples)
  chromium chromium-driver python3-selenium  # mrd-web's page in a real browser (web_page_test)
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v promtool >/dev/null || missing_promtool=1
[[ ${#missing[@]} -eq 0 && -z ${missing_promtool:-} ]] && exit 0

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# promtool checks mrd-web's /metrics. It comes in Debian's prometheus package, whose installation
# would also start a Prometheus server as a service: only the one program is taken from it.
if [[ -n ${missing_promtool:-} ]]; then
  echo "setup: installing promtool (from Debian's prometheus package) in /usr/local/bin"
  # Our own directory, writable by no one else: what is installed from it is what apt fetched.
  # (apt warns that it downloads as root rather than as _apt into it; the file is the same.)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -qq prometheus 2>/dev/null && dpkg-deb -x prometheus_*.deb root)
  $sudo install -m 755 "$work/root/usr/bin/promtool" /usr/local/bin/promtool
fi
