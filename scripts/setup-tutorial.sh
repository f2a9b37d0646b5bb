#!/usr/bin/env bash
# Installs what docs/tutorial.md uses beyond building and testing mrd: a tracer and a debugger to
# watch the server (strace, gdb), and the process and socket tools its commands call (ps, pgrep,
# top, ss). Everything of scripts/setup.sh comes with it (nc, xxd, tshark, python3).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/setup.sh strace gdb procps iproute2
