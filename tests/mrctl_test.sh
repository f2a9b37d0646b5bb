#!/usr/bin/env bash
# mrctl end to end against a real mrd: every command, its output and its exit code.
# Usage: mrctl_test.sh MRD_BINARY MRCTL_BINARY
set -uo pipefail
mrd=$1
mrctl=$2
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT

# --enable-test-jobs: test-slow, for a job that is still running when a node is lost (failover).
"$mrd" --listen 127.0.0.1:0 --port-file "$work/port" --workers 2 --enable-test-jobs \
  2>"$work/mrd.log" &
server=$!
for _ in $(seq 200); do [[ -s $work/port ]] && break; sleep 0.05; done
export MRD_SERVER=127.0.0.1:$(cat "$work/port")

passed=0
failed=0
check() {  # check NAME COMMAND...: the command must succeed
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $name"; fi
}
expect_exit() {  # expect_exit CODE NAME MRCTL-ARGS...: mrctl must exit with CODE
  local code=$1 name=$2
  shift 2
  "$mrctl" -q "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [[ $got -eq $code ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAILED: $name: exit $got, wanted $code"
    cat "$work/out" "$work/err"
  fi
}

# --- word count over real text agrees with the tokenisation rule, computed here by tr ---
corpus=()
for f in /usr/share/doc/*/copyright /usr/share/common-licenses/*; do [[ -f $f ]] && corpus+=("$f"); done
# A file of 64 KiB or more is not read into memory: mrctl sends it as it reads it. (First, and
# ending in a newline: the reference below counts the files concatenated.)
{ cat "${corpus[@]}"; echo; } > "$work/big.txt"
corpus=("$work/big.txt" "${corpus[@]}")
printf 'Caf\xc3\xa9 CAF\xc3\xa9! x9y, __a__b\tdon'"'"'t\n\xff\xfe bytes' > "$work/odd.txt"
corpus+=("$work/odd.txt")
reference_counts() {
  cat "$@" | LC_ALL=C tr -cs 'A-Za-z0-9\200-\377' '\n' | LC_ALL=C tr 'A-Z' 'a-z' | grep -av '^$' |
    LC_ALL=C sort | uniq -c | awk '{print $1, $2}' | LC_ALL=C sort
}
reference_counts "${corpus[@]}" > "$work/expected"
"$mrctl" -q wordcount --all --chunk-bytes 100000 "${corpus[@]}" | awk '{print $1, $2}' |
  LC_ALL=C sort > "$work/got"
check "wordcount of ${#corpus[@]} files matches tr" cmp -s "$work/expected" "$work/got"
check "the corpus is not trivial" test "$(wc -l < "$work/expected")" -gt 1000
check "... and holds a file sent from disk" test "$(stat -c %s "$work/big.txt")" -ge 65536
"$mrctl" --trace wordcount --top 1 "$work/big.txt" >/dev/null 2>"$work/trace"
check "--trace shows a file sent from disk, whole" \
  grep -qx "   documents: 1, $(stat -c %s "$work/big.txt") bytes of text" "$work/trace"

# --- top N: most frequent first, ties by word ---
printf 'b a c b a b d\n' > "$work/small.txt"
"$mrctl" -q wordcount --top 3 "$work/small.txt" | awk '{print $1, $2}' > "$work/got"
printf '3 b\n2 a\n1 c\n' > "$work/expected"
check "wordcount --top 3" cmp -s "$work/expected" "$work/got"
"$mrctl" -q wordcount --json --top 1 "$work/small.txt" | tr -d ' \n' > "$work/got"
check "wordcount --json" grep -q '^\[{"key":"b","count":3}\]$' "$work/got"

# --- bigrams and index ---
printf 'to be or not to be\n' > "$work/hamlet.txt"
"$mrctl" -q bigrams --all "$work/hamlet.txt" | awk '{print $1, $2, $3}' > "$work/got"
printf '2 to be\n1 be or\n1 not to\n1 or not\n' > "$work/expected"
check "bigrams" cmp -s "$work/expected" "$work/got"
printf 'apple pie\n' > "$work/d2.txt"
printf 'Apple tart\n' > "$work/d1.txt"
"$mrctl" -q index "$work/d2.txt" "$work/d1.txt" > "$work/got"
printf 'apple: %s %s\npie: %s\ntart: %s\n' "$work/d1.txt" "$work/d2.txt" "$work/d2.txt" \
  "$work/d1.txt" > "$work/expected"
check "index" cmp -s "$work/expected" "$work/got"

# --- statistics ---
printf '4 1\n3\n1 6\n' > "$work/numbers.txt"
"$mrctl" -q stats "$work/numbers.txt" | awk '{print $1, $2}' > "$work/got"
printf 'count 5\nmean 3\nmedian 3\nmode 1\nmin 1\nmax 6\n' > "$work/expected"
check "stats" cmp -s "$work/expected" "$work/got"

# --- matrices: text files, .npy output, a random product verified locally ---
printf '# A\n1 2\n3 4\n' > "$work/A.txt"
printf '5\n6\n' > "$work/B.txt"
"$mrctl" -q matmul "$work/A.txt" "$work/B.txt" > "$work/got"
printf '1.700000000000000000e+01\n3.900000000000000000e+01\n' > "$work/expected"
check "matmul of text matrices" cmp -s "$work/expected" "$work/got"
"$mrctl" -q matmul "$work/A.txt" "$work/B.txt" --out "$work/C.npy" > /dev/null
check "matmul --out .npy writes NumPy's magic" grep -q 'NUMPY' "$work/C.npy"
expect_exit 7 "mismatched shapes are refused before sending" matmul "$work/C.npy" "$work/B.txt"
check "... with a clear message" grep -q 'cannot multiply a 2x1 matrix by a 2x1 one' "$work/err"
# A .npy in numpy.save's layout is sent from its file (its values after the header); the same
# product as from text.
printf '1 0\n0 1\n' > "$work/I.txt"
"$mrctl" -q matmul "$work/A.txt" "$work/I.txt" --out "$work/A.npy" > /dev/null
"$mrctl" -q matmul "$work/A.npy" "$work/B.txt" > "$work/got"
check "matmul of a .npy sent from its file" cmp -s "$work/expected" "$work/got"
"$mrctl" -q matmul "$work/A.npy" "$work/A.npy" --verify > "$work/got"
check "matmul of .npy files, verified" grep -q '^verified' "$work/got"
"$mrctl" -q matmul --random 200 --seed 7 --verify > "$work/got"
check "matmul --random --verify" grep -q '^verified' "$work/got"

# --- the generic submit ---
"$mrctl" -q submit --mapper words --reducer sum --documents "$work/small.txt" --top 1 |
  awk '{print $1, $2}' > "$work/got"
check "submit --mapper words" grep -qx '3 b' "$work/got"

# --- no-wait, status, result, list, cancel, server-stats ---
id=$("$mrctl" -q --no-wait wordcount "$work/small.txt")
check "--no-wait prints a job id" test "$id" -gt 0
"$mrctl" -q result --wait "$id" --top 1 | awk '{print $1, $2}' > "$work/got"
check "result --wait" grep -qx '3 b' "$work/got"
check "status says done" bash -c "'$mrctl' status $id | grep -q done"
check "list shows the job" bash -c "'$mrctl' list | grep -qE '^ *$id +done'"
expect_exit 0 "cancel" cancel "$id"
expect_exit 1 "result of a cancelled job" result "$id"
check "server-stats" bash -c "'$mrctl' server-stats | grep -qE '^jobs_submitted +[0-9]+'"

# --- progress: lines on a non-terminal ---
"$mrctl" wordcount --chunk-bytes 50000 "${corpus[@]}" >/dev/null 2>"$work/err"
check "progress lines" grep -qE '^in-progress - (queued|mapping|reducing)' "$work/err"

# --- a lost SUBMIT reply: mrctl resends with the same idempotency key, the server runs one job ---
before=$("$mrctl" server-stats | awk '$1 == "jobs_submitted" {print $2}')
python3 "$(dirname "$0")/flaky_proxy.py" --target "$MRD_SERVER" --port-file "$work/proxy-port" \
  --count-file "$work/proxy-submits" --lifetime 30 &
proxy=$!
for _ in $(seq 200); do [[ -s $work/proxy-port ]] && break; sleep 0.05; done
"$mrctl" -q --server "127.0.0.1:$(cat "$work/proxy-port")" wordcount --top 1 "$work/small.txt" \
  2>"$work/err" | awk '{print $1, $2}' > "$work/got"
kill "$proxy" 2>/dev/null
check "the resent job gives the result" grep -qx '3 b' "$work/got"
check "mrctl said it sent the job again" grep -q 'sending the job again (attempt 2 of 3)' "$work/err"
after=$("$mrctl" server-stats | awk '$1 == "jobs_submitted" {print $2}')
check "the server was sent the SUBMIT twice" test "$(cat "$work/proxy-submits")" -eq 2
check "... and ran it once" test "$after" -eq $((before + 1))

# --- --trace: every frame on stderr, decoded by the codec; stdout as without it ---
"$mrctl" wordcount "$work/small.txt" >"$work/plain" 2>/dev/null
"$mrctl" --trace wordcount "$work/small.txt" >"$work/got" 2>"$work/trace"
check "--trace leaves stdout as it was" cmp -s "$work/plain" "$work/got"
check "--trace shows HELLO sent" grep -qx '>> HELLO (6) body 10 bytes' "$work/trace"
check "... its bytes in hex, header first" \
  grep -qx '   06 0a 00 00 00 04 00 00 00 00 00 00 00 00 00' "$work/trace"
check "... the SUBMIT sent" grep -q '^>> SUBMIT (0) body [0-9]* bytes$' "$work/trace"
check "... decoded" grep -qx '   mapper: words' "$work/trace"
check "... OK replies" grep -q '^<< OK (0) body ' "$work/trace"
check "... the job id" grep -qx '   job id: [0-9]*' "$work/trace"
check "... the result" grep -qx '   entry 1: "b" 3' "$work/trace"
MRD_TRACE=1 "$mrctl" list >/dev/null 2>"$work/trace"
check "MRD_TRACE=1 traces too" grep -qx '>> LIST (4) body 1 byte' "$work/trace"
check "... LIST asks for tenants" grep -qx '   options: 1 (with tenants)' "$work/trace"
MRD_TRACE=1 "$mrctl" status "$id" >/dev/null 2>"$work/trace"
check "STATUS asks for details" grep -qx '   options: 1 (with details)' "$work/trace"
check "... and they are decoded" grep -qx '   words + sum, [0-9]* bytes' "$work/trace"
"$mrctl" status "$id" >"$work/got"
check "status says what the job is" grep -qE '^  words \+ sum, [0-9]+ bytes$' "$work/got"
check "... and when it was submitted, started and finished" \
  grep -qE '^  submitted [0-9-]+ [0-9:.]+ UTC, started after [0-9]+ ms, finished after [0-9]+ ms$' \
  "$work/got"
"$mrctl" server-stats >"$work/got"
check "server-stats says how many tasks were done" \
  bash -c "awk '\$1 == \"tasks_done\" && \$2 > 0' '$work/got' | grep -q ."

# --- a list of servers (the nodes of a cluster): each request goes to the first that answers ---
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
refused() { echo "cannot connect to $1: Connection refused (is mrd running there?)"; }
dead=127.0.0.1:$(free_port)
"$mrctl" -q --server "$dead,$MRD_SERVER" wordcount --top 2 "$work/small.txt" \
  >"$work/got" 2>"$work/err"
check "failover past a dead node exits 0" test $? -eq 0
printf '3  b\n2  a\n' > "$work/expected"
check "... with the result" cmp -s "$work/expected" "$work/got"
printf 'mrctl: %s; trying %s\n' "$(refused "$dead")" "$MRD_SERVER" > "$work/expected"
check "... saying which node failed, why, and which is next" cmp -s "$work/expected" "$work/err"
MRD_SERVER="$dead,$MRD_SERVER" "$mrctl" list >"$work/got" 2>/dev/null
check "MRD_SERVER takes a list too" grep -qE "^ *$id +cancelled" "$work/got"
expect_exit 3 "every node down" --server "127.0.0.1:1,$dead" list
printf '%s\n' 'mrctl: list: gave up after trying each of the 2 servers 3 times:' \
  "  127.0.0.1:1: $(refused 127.0.0.1:1)" "  $dead: $(refused "$dead")" > "$work/expected"
check "... names every node and why" cmp -s "$work/expected" <(tail -n 3 "$work/err")
expect_exit 2 "an empty item in the list" --server "$MRD_SERVER,,$dead" list
check "... is named" grep -q "bad server list '$MRD_SERVER,,$dead': item 2 is empty" "$work/err"
expect_exit 2 "a bad port in the list" --server "$MRD_SERVER,127.0.0.1:0" list
expect_exit 0 "an IPv6 literal in the list" --server "[::1]:$(free_port),$MRD_SERVER" list

# A SUBMIT whose reply a node loses is sent to the next node with the same idempotency key: one
# job (flaky_proxy.py stands for the node that accepted the job and died before answering).
before=$("$mrctl" server-stats | awk '$1 == "jobs_submitted" {print $2}')
python3 "$(dirname "$0")/flaky_proxy.py" --target "$MRD_SERVER" --port-file "$work/proxy-port-2" \
  --count-file "$work/proxy-submits-2" --lifetime 30 &
proxy=$!
for _ in $(seq 200); do [[ -s $work/proxy-port-2 ]] && break; sleep 0.05; done
lossy=127.0.0.1:$(cat "$work/proxy-port-2")
"$mrctl" -q --server "$lossy,$MRD_SERVER" wordcount --top 1 "$work/small.txt" \
  >"$work/got" 2>"$work/err"
kill "$proxy" 2>/dev/null
check "the job sent to the next node gives the result" grep -qx '3  b' "$work/got"
printf 'mrctl: submit: the server at %s closed the connection without replying; trying %s\n' \
  "$lossy" "$MRD_SERVER" > "$work/expected"
check "mrctl said it sent the SUBMIT on to the next node" cmp -s "$work/expected" "$work/err"
after=$("$mrctl" server-stats | awk '$1 == "jobs_submitted" {print $2}')
check "the first node was sent the SUBMIT" test "$(cat "$work/proxy-submits-2")" -eq 1
check "... and the job ran once" test "$after" -eq $((before + 1))

# Waiting for a job goes on on another node when the one polled is lost. test-slow sleeps 1000 ms
# in each map task of the document named 1000, which --chunk-bytes 1 cuts into 5 tasks.
printf 'slow word1 slow word2\n' > "$work/1000"
slow=$(cd "$work" && "$mrctl" -q submit --mapper test-slow --reducer sum --chunk-bytes 1 \
  --no-wait --documents 1000)
python3 "$(dirname "$0")/flaky_proxy.py" --target "$MRD_SERVER" --port-file "$work/proxy-port-3" \
  --count-file "$work/proxy-submits-3" --lifetime 30 &
proxy=$!
for _ in $(seq 200); do [[ -s $work/proxy-port-3 ]] && break; sleep 0.05; done
lost=127.0.0.1:$(cat "$work/proxy-port-3")
"$mrctl" --server "$lost,$MRD_SERVER" result --wait "$slow" >"$work/got" 2>"$work/err" &
waiter=$!
for _ in $(seq 500); do grep -q '^in-progress' "$work/err" && break; sleep 0.01; done
kill "$proxy" 2>/dev/null  # the node polled is gone
wait "$waiter"
check "waiting across a lost node exits 0" test $? -eq 0
printf '2  slow\n1  word1\n1  word2\n' > "$work/expected"
check "... with the result" cmp -s "$work/expected" "$work/got"
check "... having polled the first node" grep -q '^in-progress - ' "$work/err"
check "... then the next" grep -qE "^mrctl: fetch job $slow: .*$lost.*; trying $MRD_SERVER\$" "$work/err"

# --- exit codes ---
expect_exit 5 "result of an unknown job" result 99999
expect_exit 7 "a missing file" wordcount "$work/does-not-exist"
expect_exit 7 "a directory" wordcount "$work"
expect_exit 2 "a usage error" wordcount --top
expect_exit 5 "an unknown mapper" submit --mapper nope --reducer sum --documents "$work/small.txt"
expect_exit 3 "nobody listening" --server 127.0.0.1:1 list

echo "mrctl: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
