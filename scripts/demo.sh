#!/usr/bin/env bash
# The main job, end to end: build, start mrd, count the words of the licence texts every Debian
# machine has with mrctl, multiply two random 500x500 matrices and check the product, stop mrd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
work=$(mktemp -d)
# --data-dir: jobs and results are kept in $work/data/mrd.sqlite3 and would survive a restart.
build/server/mrd --listen 127.0.0.1:0 --port-file "$work/port" --data-dir "$work/data" \
  2>"$work/mrd.log" &
server=$!
# Under set -e a failing command in the trap would become the script's exit status: the server
# is usually gone by then (stopped below), so kill and wait may fail, and that is fine.
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 200); do [[ -s $work/port ]] && break; sleep 0.05; done
server_address=127.0.0.1:$(cat "$work/port")
echo "mrd is listening on $server_address"

echo
echo "\$ mrctl wordcount --top 15 /usr/share/common-licenses/*"
build/client/mrctl --server "$server_address" wordcount --top 15 /usr/share/common-licenses/*

echo
echo "\$ mrctl matmul --random 500 --verify"
build/client/mrctl --server "$server_address" matmul --random 500 --verify

kill -TERM "$server"
wait "$server" && echo && echo "mrd stopped cleanly"
