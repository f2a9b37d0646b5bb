#!/usr/bin/env bash
# Runs every recipe of docs/protocol.md (section 9), in order, against a fresh mrd, and checks that
# each prints exactly what the document says.
#   netcat_test.sh [MRD [DOCS/protocol.md]]
# MRD defaults to $MRD_BINARY, the document to the repository's docs/protocol.md.
set -euo pipefail
mrd=${1:-${MRD_BINARY:-}}
doc=${2:-$(dirname "$0")/../docs/protocol.md}
[[ -n $mrd ]] || { echo "usage: $0 MRD [DOCS/protocol.md]   (or MRD_BINARY=... $0)" >&2; exit 2; }
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
  state == "cmd" { print > (dir "/" sprintf("%03d", n) ".cmd"); next }
  state == "want-out" && /^```$/ { state = "out"; printf "" > (dir "/" sprintf("%03d", n) ".want"); next }
  state == "out" && /^```$/ { state = ""; next }
  state == "out" { print > (dir "/" sprintf("%03d", n) ".want"); next }
' "$doc"

# The server's count of unfinished jobs (STATS, the 11th counter: 5 + 10 x 8 bytes in).
unfinished_jobs() {
  python3 - "$port" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x05\x00\x00\x00\x00")
reply = b""
while len(reply) < 117:
    chunk = s.recv(117 - len(reply))
    if not chunk:
        sys.exit("the server closed before its STATS reply")
    reply += chunk
print(struct.unpack_from("<Q", reply, 5 + 10 * 8)[0])
PY
}

count=0
failed=0
for cmd in "$work"/*.cmd; do  # numbered with leading zeros: in the document's order
  want=${cmd%.cmd}.want
  # A recipe may FETCH the job of the one before: wait until every job has finished.
  for _ in $(seq 1200); do [[ $(unfinished_jobs) == 0 ]] && break; sleep 0.05; done
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
