#!/usr/bin/env bash
# Runs every recipe of docs/protocol.md (section 9), in order, against a fresh mrd, and checks that
# each prints exactly what the document says. Usage: netcat_test.sh MRD_BINARY DOCS/protocol.md
set -euo pipefail
mrd=$1
doc=$2
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT

"$mrd" --listen 127.0.0.1:0 --port-file "$work/port" --workers 2 2>"$work/mrd.log" &
server=$!
for _ in $(seq 200); do [[ -s $work/port ]] && break; sleep 0.05; done
port=$(cat "$work/port")

# Each recipe: a '<!-- recipe -->' line, a ```sh block with the command, a ``` block with the output.
awk -v dir="$work" '
  /^<!-- recipe -->$/ { n++; state = "want-cmd"; next }
  state == "want-cmd" && /^```sh$/ { state = "cmd"; next }
  state == "cmd" && /^```$/ { state = "want-out"; next }
  state == "cmd" { print > (dir "/" n ".cmd"); next }
  state == "want-out" && /^```$/ { state = "out"; printf "" > (dir "/" n ".want"); next }
  state == "out" && /^```$/ { state = ""; next }
  state == "out" { print > (dir "/" n ".want"); next }
' "$doc"

count=0
failed=0
for cmd in $(ls "$work"/*.cmd | sort -t/ -k4 -n); do
  want=${cmd%.cmd}.want
  sleep 0.3  # a job submitted by the previous recipe has finished by now
  sed "s/127\.0\.0\.1 1936/127.0.0.1 $port/" "$cmd" > "$cmd.run"
  if diff -u "$want" <(bash "$cmd.run") > "$cmd.diff"; then
    count=$((count + 1))
  else
    failed=$((failed + 1))
    echo "recipe failed: $(cat "$cmd")"
    cat "$cmd.diff"
  fi
done
[[ $count -gt 0 ]] || { echo "no recipes found in $doc"; exit 1; }
echo "netcat recipes: $count passed, $failed failed"
[[ $failed -eq 0 ]]
