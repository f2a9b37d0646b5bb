#!/usr/bin/env bash
# Checks a solution of one of the tutorial's exercises (docs/tutorial.md, section 8) from the
# outside: it starts YOUR mrd on a free port in a temporary directory, talks to it, and says what
# it expected and what came back.
#
#   docs/solutions/check.sh EXERCISE MRD [MRCTL]
#
#   a   PING (opcode 8) answers OK with its body, and the connection goes on
#   b   the chars + sum and longest + max jobs (needs MRCTL)
#   d   the debug line of a closed connection counts its requests, bytes and seconds
#
# For example: docs/solutions/check.sh b build/server/mrd build/client/mrctl
# Exit status: 0 the solution does what the exercise asks, 1 it does not, 2 usage.
set -euo pipefail

usage() {
  echo "usage: $0 a|b|d MRD [MRCTL]   (MRCTL for b)" >&2
  exit 2
}
[[ $# -ge 2 ]] || usage
exercise=$1
mrd=$2
mrctl=${3:-}
case $exercise in
  a | d) ;;
  b) [[ -n $mrctl ]] || usage ;;
  *) usage ;;
esac
for program in "$mrd" ${mrctl:+"$mrctl"}; do
  [[ -x $program ]] || { echo "check.sh: $program is not an executable program" >&2; exit 2; }
done

work=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Says what went wrong, and exits 1.
fail() {
  echo "exercise ($exercise): FAILED" >&2
  printf '%s\n' "$@" | sed 's/^/  /' >&2
  exit 1
}

# Starts the mrd under test with `extra arguments`; sets $server (its pid) and $port.
start_mrd() {
  "$mrd" --listen 127.0.0.1:0 --port-file "$work/port" --workers 2 "$@" 2>"$work/mrd.log" &
  server=$!
  for _ in $(seq 200); do
    [[ -s $work/port ]] && { port=$(cat "$work/port"); return; }
    kill -0 "$server" 2>/dev/null || break
    sleep 0.05
  done
  fail "$mrd did not start listening (within 10 s); its log:" "$(tail -n 20 "$work/mrd.log")"
}

# Sends each argument (bytes in hex) on one connection, each after the reply to the one before,
# and prints each reply frame in hex on a line of its own; a reply with an error body has its
# message after it. Stops at "(no reply within 5 s)" or when the server closes.
ask() {
  python3 - "$port" "$@" <<'PY'
import socket, sys
try:
    connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
except OSError as error:
    sys.exit(print(f"(cannot connect: {error})"))

def read(n):
    data = b""
    while len(data) < n:
        chunk = connection.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data

for request in sys.argv[2:]:
    connection.sendall(bytes.fromhex(request))
    try:
        frame = read(5)
        if len(frame) == 5:
            frame += read(min(int.from_bytes(frame[1:5], "little"), 1 << 16))
    except socket.timeout:
        print("(no reply within 5 s)")
        break
    except OSError as error:
        print(f"({error})")
        break
    if not frame:
        print("(the server closed the connection without a reply)")
        break
    line = frame.hex(" ")
    if frame[0] != 0 and len(frame) >= 13:  # an error body: u64 length, then the message
        line += '   "' + frame[13:].decode("utf-8", "replace") + '"'
    print(line)
PY
}

check_a() {
  start_mrd
  local ping="08 05 00 00 00 68 65 6c 6c 6f" want="00 05 00 00 00 68 65 6c 6c 6f"
  local hello="06 0a 00 00 00 01 00 00 00 00 00 00 00 00 00"
  local replies
  replies=$(ask "$ping" "$hello")
  local got_ping got_hello
  got_ping=$(sed -n 1p <<<"$replies")
  got_hello=$(sed -n 2p <<<"$replies")
  [[ $got_ping == "$want" ]] ||
    fail "PING with the body 'hello':     $ping" \
      "should be answered OK, echoed: $want" \
      "but the answer was:            ${got_ping:-(nothing)}" \
      "(by hand: printf '\\x08\\x05\\x00\\x00\\x00hello' | nc -N 127.0.0.1 PORT | xxd -g1)"
  [[ $got_hello == "00 "* ]] ||
    fail "after the PING, on the same connection, HELLO (version 1): $hello" \
      "should be answered OK (a reply starting 00), but the answer was: ${got_hello:-(nothing)}"
}

# Runs mrctl's submit on the server under test; prints what it printed, and fails if it failed.
submit() {
  local output status=0
  output=$(timeout 60 "$mrctl" --server "127.0.0.1:$port" -q submit "$@" 2>&1) || status=$?
  [[ $status -eq 0 ]] ||
    fail "mrctl -q submit $* exited with status $status, saying:" "$output"
  printf '%s\n' "$output"
}

check_b() {
  start_mrd
  printf 'to be or not to be\n' >"$work/a.txt"
  local want got
  want=$'4  o\n3  t\n2  b\n2  e\n1  n\n1  r'
  got=$(submit --mapper chars --reducer sum --documents "$work/a.txt")
  [[ $got == "$want" ]] ||
    fail "chars + sum of 'to be or not to be' should print:" "$want" "but printed:" "$got"
  # The longest word of each initial: what a sum would add up differs on every line. Chunks of
  # at most 16 bytes and two partitions make the maxima of several map tasks meet in reduce.
  printf '%s\n' 'Anna asked: are all apples awfully amazing?' \
    'Bob baked bread because Barbara begged.' 'The tall tree threw thin twigs.' >"$work/t.txt"
  want=$'7  a\n7  b\n5  t'
  got=$(submit --mapper longest --reducer max --chunk-bytes 16 --partitions 2 \
    --documents "$work/t.txt")
  [[ $got == "$want" ]] ||
    fail "longest + max (in chunks of 16 bytes) of:" "$(cat "$work/t.txt")" \
      "should print the longest word's length for each initial:" "$want" "but printed:" "$got"
}

check_d() {
  start_mrd --log-level debug
  local hello="06 0a 00 00 00 01 00 00 00 00 00 00 00 00 00" got
  got=$(ask "$hello")
  [[ $got == "00 "* ]] || fail "HELLO (15 bytes) should be answered OK, but the answer was: $got"
  # The client has closed; the server logs the line in its own time.
  local pattern='closed \(closed by the client\) after 1 request, 15 bytes read, [0-9]+\.[0-9] s$'
  for _ in $(seq 50); do
    grep -Eq "$pattern" "$work/mrd.log" && return
    sleep 0.1
  done
  fail "after one HELLO (15 bytes) and a close, mrd --log-level debug should log a line ending" \
    "  connection 127.0.0.1:PORT closed (closed by the client) after 1 request, 15 bytes read, S.S s" \
    "within 5 s, but its lines about the connection were:" \
    "$(grep ' connection ' "$work/mrd.log" | tail -n 5 || echo '(none)')"
}

"check_$exercise"
echo "exercise ($exercise): ok"
