#!/usr/bin/env bash
# Runs the example programs of the tutorial's chapter 0 (docs/examples/) and checks them with
# Python sockets: bytes come back identical (several connections at once, one of 200 KB, one sent
# in pieces, a slow reader beside a fast one), a client that stops sending is closed at once, one
# that resets mid-stream does not stop the server, and the deadline example closes an idle
# connection but not one that keeps sending.
# Usage: echo_examples_test.sh ECHO_SERVER ECHO_WITH_DEADLINE
set -euo pipefail
echo_server=$1
echo_with_deadline=$2
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME PROGRAM ARGS...: starts a server and sets $port from the first line it prints.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 200); do
    [[ -s $work/$name.out && $(wc -l <"$work/$name.out") -ge 1 ]] && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  port=$(head -1 "$work/$name.out")
  [[ $port =~ ^[0-9]+$ ]] || { echo "$name printed no port"; cat "$work/$name.err"; exit 1; }
}

# The checks, in Python: check.py PORT echo|deadline NAME. Prints one line per check that passed
# and exits non-zero at the first that fails.
cat >"$work/check.py" <<'PY'
import os, socket, struct, sys, threading, time

port, mode, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pieces sent apart stay apart
    return s

def echoed(s, payload, pieces=1, pause=0.0):
    """Sends payload in `pieces` (from a second thread, so that neither side's buffers fill up)
    and returns what came back, once as many bytes came back or the server closed."""
    errors = []
    def send():
        try:
            step = -(-len(payload) // pieces)
            for i in range(0, len(payload), step):
                s.sendall(payload[i:i + step])
                time.sleep(pause)
        except OSError as e:
            errors.append(e)
    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    while len(got) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    sender.join()
    if errors:
        raise errors[0]
    return bytes(got)

def check(what, ok):
    if not ok:
        sys.exit(f"FAILED: {name}: {what}")
    print(f"ok: {name}: {what}")

def concurrent_echoes():
    # Several connections open at once, each served while the others are.
    payloads = [b"a", b"hello\n", os.urandom(1000), os.urandom(64 * 1024 + 1),
                os.urandom(200 * 1000), os.urandom(5000)]
    sockets = [connect() for _ in payloads]
    results = [None] * len(payloads)
    def run(i):
        try:
            results[i] = echoed(sockets[i], payloads[i])
        except OSError as e:
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in sockets:
        s.close()
    check(f"{len(payloads)} connections at once, up to 200 KB, echoed identical",
          results == payloads)

def split_send():
    with connect() as s:
        check("a message sent in 4 pieces, 0.1 s apart, echoed identical",
              echoed(s, b"split across several sends", pieces=4, pause=0.1) ==
              b"split across several sends")

def slow_reader():
    # Connection A sends 16 MiB and reads nothing for a while: more than the kernel's buffers
    # hold, so the server's write to A must wait, with A's bytes in hand. Connection B echoes
    # 16 MiB meanwhile. A must get back only its own bytes: this is what breaks if the server
    # writes from the buffer it shares between connections (docs/examples/echo_with_deadline.cpp).
    n = 16 << 20
    a, b = socket.socket(), socket.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # A's side holds little
    for s in (a, b):
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
    threading.Thread(target=a.sendall, args=(b"A" * n,), daemon=True).start()
    time.sleep(0.5)
    b_echo = echoed(b, b"B" * n)
    a_echo = bytearray()
    while len(a_echo) < n:
        chunk = a.recv(1 << 20)
        if not chunk:
            break
        a_echo += chunk
    a.close()
    b.close()
    check("a slow reader's 16 MiB come back unmixed with another connection's 16 MiB",
          a_echo == b"A" * n and b_echo == b"B" * n)

def half_close():
    # The client says it is done sending (shutdown: EOF for the server). The server must close at
    # once, not when a deadline passes (echo_with_deadline runs with 30 s here): see the comment
    # on `echo` in echo_with_deadline.cpp about operator|| and exceptions.
    with connect() as s:
        s.sendall(b"bye")
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        try:
            while chunk := s.recv(100):
                got += chunk
            closed = True
        except socket.timeout:
            closed = False
        check("a client that stops sending gets its echo, then EOF (within 10 s)",
              closed and got == b"bye")

def reset_mid_stream():
    # The client sends 256 KB, takes a little of the echo, and resets (SO_LINGER 0: close sends
    # RST) while the server still has bytes to read and to write.
    s = connect()
    s.sendall(os.urandom(256 * 1024))
    s.recv(1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    time.sleep(0.2)
    with connect() as s:
        check("still serving after a client reset mid-stream",
              echoed(s, b"after the reset") == b"after the reset")

def idle_is_closed():
    # One connection that never sends, one that goes quiet after an echo: the server closes both
    # (recv returns EOF) after the idle time, 1 s. Meanwhile one connection sends every 0.3 s for
    # 2.5 s and must still be open after it.
    start = time.monotonic()  # before the connections: none can be closed sooner than 1 s after
    silent, quiet, active = connect(), connect(), connect()
    check("echo before going quiet", echoed(quiet, b"ping") == b"ping")
    closed = {}
    def wait_close(which, s):
        try:
            closed[which] = (s.recv(100), time.monotonic() - start)
        except OSError as e:  # socket.timeout after 10 s included
            closed[which] = (e, time.monotonic() - start)
    waiters = [threading.Thread(target=wait_close, args=(n, s))
               for n, s in (("silent", silent), ("quiet", quiet))]
    for t in waiters:
        t.start()
    active_ok = True
    while time.monotonic() - start < 2.5:
        active_ok = active_ok and echoed(active, b"tick") == b"tick"
        time.sleep(0.3)
    for t in waiters:
        t.join()
    for which in ("silent", "quiet"):
        what, when = closed[which]
        # The deadline is 1 s after the accept or the last read: never sooner (0.9: the clocks'
        # granularity). At most 10 s: a generous bound, not a measure of speed.
        check(f"{which} connection closed by the server (EOF) after {when:.1f} s",
              what == b"" and 0.9 <= when <= 10)
    check("a connection sending every 0.3 s is still open after 2.5 s",
          active_ok and echoed(active, b"still here") == b"still here")
    for s in (silent, quiet, active):
        s.close()

if mode == "echo":
    concurrent_echoes()
    split_send()
    slow_reader()
    half_close()
    reset_mid_stream()
elif mode == "deadline":
    idle_is_closed()
else:
    sys.exit(f"unknown mode {mode}")
PY

passed=0
failed=0
# run NAME PORT MODE: one check.py run, counted.
run() {
  if python3 "$work/check.py" "$2" "$3" "$1"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "failed: $1"
  fi
}

start echo_server "$echo_server" 0
run "echo_server" "$port" echo
kill -0 "${pids[-1]}" || { echo "echo_server died"; failed=$((failed + 1)); }

# The echo checks with a long idle time, so that a slow machine cannot make them race the
# deadline; the deadline checks with 1 s.
start echo_with_deadline "$echo_with_deadline" 0 30
run "echo_with_deadline (echo)" "$port" echo
kill -0 "${pids[-1]}" || { echo "echo_with_deadline died"; failed=$((failed + 1)); }

start echo_with_deadline_1s "$echo_with_deadline" 0 1
run "echo_with_deadline (deadline)" "$port" deadline

if [[ $failed -gt 0 ]]; then
  for f in "$work"/*.err; do
    echo "== ${f##*/}"
    tail -20 "$f"
  done
fi
echo "echo examples: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
