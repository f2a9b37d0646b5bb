#!/usr/bin/env bash
# The Wireshark dissector (protocol/wireshark/mrd.lua) against a real capture: a server on an
# ephemeral port, a capture of that port on loopback, a session with mrctl and a few hand-made
# requests (one split over four TCP segments, ten pipelined in one segment, malformed ones); then
# tshark with the dissector must decode every field checked below. Then the same over TLS: a job
# run by mrctl on the server's TLS port with SSLKEYLOGFILE, decrypted by tshark with that key log.
# Then protocol versions 2 and 3's tokens and tenants: a second server with --auth-file, mrctl
# with MRD_TOKEN and hand-made AUTHs; the AUTH requests must show their token's length and never
# its bytes, and LIST's replies each job's tenant when the LIST asked for them.
# Version 4: STATUS and STATS with and without details against the first server, checked against
# what the test knows (the jobs it submitted, the bytes it sent, the clock, the server's --workers);
# and a capture made with text2pcap from docs/protocol.md's hex examples of them, with crafted
# malformed replies beside them, which must decode to what the document's prose says.
# Usage: dissector_test.sh MRD_BINARY MRCTL_BINARY SOURCE_DIR   (KEEP_WORK=1 keeps the capture)
set -uo pipefail
export LC_ALL=C
mrd=$1
mrctl=$2
dissector=$3/protocol/wireshark/mrd.lua
protocol_doc=$3/docs/protocol.md
work=$(mktemp -d)
server=
auth_server=
capture=
tls_capture=
auth_capture=

cleanup() {
  [[ -n $capture ]] && kill "$capture" 2>/dev/null && wait "$capture" 2>/dev/null
  [[ -n $tls_capture ]] && kill "$tls_capture" 2>/dev/null && wait "$tls_capture" 2>/dev/null
  [[ -n $auth_capture ]] && kill "$auth_capture" 2>/dev/null && wait "$auth_capture" 2>/dev/null
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [[ -n $auth_server ]] && kill "$auth_server" 2>/dev/null && wait "$auth_server" 2>/dev/null
  if [[ -n ${KEEP_WORK:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "dissector_test: $*" >&2; exit 1; }

for tool in tshark dumpcap text2pcap nc openssl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (bash scripts/setup.sh installs it)"
done
[[ -f $dissector ]] || fail "no dissector at $dissector"

# --- a CA and a certificate for 127.0.0.1, for the TLS port ---
(
  cd "$work" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
      -out ca.pem -days 2 -subj /CN=ca &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout server.key -out server.csr -subj /CN=server &&
    printf 'subjectAltName=IP:127.0.0.1\n' > server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.pem
) >"$work/openssl.log" 2>&1 || fail "openssl: $(cat "$work/openssl.log")"

# --- a server, and captures of its ports that are really running before anything is sent ---
start_ms=$(date +%s%3N)  # (h) checks the times of jobs against the clock
"$mrd" --listen 127.0.0.1:0 --port-file "$work/port" --workers 2 --enable-test-jobs \
  --tls-listen 127.0.0.1:0 --tls-port-file "$work/tls-port" --tls-cert-file "$work/server.pem" \
  --tls-key-file "$work/server.key" --drain-seconds 0 2>"$work/mrd.log" &
server=$!
for _ in $(seq 200); do [[ -s $work/port ]] && break; sleep 0.05; done
[[ -s $work/port ]] || fail "mrd did not start: $(cat "$work/mrd.log")"
port=$(cat "$work/port")
tls_port=$(cat "$work/tls-port")

# A second server, which requires tokens (protocol version 2): alice's and bob's tokens are
# users', ops's an admin's. The auth file holds their SHA-256 digests; the tokens themselves are
# only here.
user_token=dissector-user-s3cret-Zq81
bob_token=dissector-bob-s3cret-Wm4
admin_token=dissector-admin-s3cret-Kp27
wrong_token=dissector-wrong-s3cret-Xv55
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
printf '# tenant role sha256-of-token\nalice user %s\nbob user %s\nops admin %s\n' \
  "$(sha256 "$user_token")" "$(sha256 "$bob_token")" "$(sha256 "$admin_token")" > "$work/tokens"
"$mrd" --listen 127.0.0.1:0 --port-file "$work/auth-port" --workers 1 --auth-file "$work/tokens" \
  --drain-seconds 0 2>"$work/mrd-auth.log" &
auth_server=$!
for _ in $(seq 200); do [[ -s $work/auth-port ]] && break; sleep 0.05; done
[[ -s $work/auth-port ]] || fail "mrd --auth-file did not start: $(cat "$work/mrd-auth.log")"
auth_port=$(cat "$work/auth-port")

# probe PORT ADDRESS: a connection attempt to PORT on ADDRESS, 127.0.0.2 or 127.0.0.3, where
# nothing listens (the servers listen on 127.0.0.1): its SYN and RST match a capture's filter
# "tcp port PORT", yet reach no server.
probe() { (exec 3<>"/dev/tcp/$2/$1") 2>/dev/null; }
# in_capture NAME FILTER: whether NAME.pcapng already holds a packet matching FILTER. (dumpcap
# writes as it captures: a file still being written reads up to its last whole packet.)
in_capture() {
  tshark -n -r "$work/$1.pcapng" -Y "$2" 2>/dev/null | grep -q .
}
# wait_for_packet NAME FILTER [PORT ADDRESS]: wait (30 s at most) until capture NAME holds a
# packet matching FILTER; with PORT and ADDRESS, probe them before each look.
wait_for_packet() {
  local _
  for _ in $(seq 150); do
    [[ -n ${3:-} ]] && probe "$3" "$4"
    in_capture "$1" "$2" && return 0
    sleep 0.1
  done
  return 1
}
# wait_for_probe NAME PORT ADDRESS: probe until capture NAME holds a probe to ADDRESS. Packets
# reach a capture in the order they were sent, so once a probe is in it, so is every packet sent
# before the probe; and a capture holding one has its filter installed, and is running.
wait_for_probe() { wait_for_packet "$1" "ip.dst == $3 && tcp.dstport == $2" "$2" "$3"; }

# start_capture PORT NAME: dumpcap on lo for PORT into NAME.pcapng, running once this returns;
# prints its pid.
start_capture() {
  # (Its stdout is not ours: the caller waits for that to close.)
  dumpcap -q -i lo -f "tcp port $1" -w "$work/$2.pcapng" >/dev/null 2>"$work/$2.dumpcap.log" &
  local pid=$!
  # Not its "Capturing on" line: dumpcap prints that before its filter is installed.
  wait_for_probe "$2" "$1" 127.0.0.2 || {
    kill "$pid"
    fail "cannot capture on lo (root or the capture capability is needed): $(cat "$work/$2.dumpcap.log")"
  }
  echo "$pid"
}
capture=$(start_capture "$port" capture) || exit 1
tls_capture=$(start_capture "$tls_port" tls-capture) || exit 1
auth_capture=$(start_capture "$auth_port" auth-capture) || exit 1

# --- a session with mrctl: jobs 1 (words), 2 (numbers), 3 (matmul), 4 (index) ---
ctl() { "$mrctl" -q --server "127.0.0.1:$port" "$@" >>"$work/mrctl.log" 2>&1; }
printf 'to be or not to be\n' > "$work/hamlet.txt"
printf '1 2 3\n4\n' > "$work/numbers.txt"
printf 'apple pie\n' > "$work/pie.txt"
printf 'apple tart\n' > "$work/tart.txt"
ctl wordcount "$work/hamlet.txt" || fail "mrctl wordcount failed"
ctl stats "$work/numbers.txt" || fail "mrctl stats failed"
ctl matmul --random 4 || fail "mrctl matmul failed"
ctl index "$work/pie.txt" "$work/tart.txt" || fail "mrctl index failed"
ctl list
ctl status 1
ctl status 99  # UNKNOWN_JOB: mrctl exits 5, and the reply is what we want on the wire
ctl server-stats

# --- hand-made frames (docs/protocol.md, section 1: little-endian, cereal strings) ---
u8() { printf "\\x$(printf %02x "$1")"; }
uint_le() { local i; for ((i = 0; i < $2; i++)); do u8 $((($1 >> (8 * i)) & 255)); done; }
u32() { uint_le "$1" 4; }
u64() { uint_le "$1" 8; }
str() { u64 "${#1}"; printf '%s' "$1"; }
frame() { u8 "$1"; u32 "$(stat -c %s "$2")"; cat "$2"; }  # frame CODE BODY_FILE
# send FILE: the file in one write. (Piping printf straight into nc would send a request a few
# bytes at a time, as nc happens to read them.)
send() { timeout 10 nc -N 127.0.0.1 "$port" < "$1" >/dev/null; }

# (a) job 5: a SUBMIT in four segments, the header itself cut in two. Each piece goes to nc only
# once the one before is in the capture: as nothing else waits to be sent with it, it makes a
# segment of its own (Nagle may hold it until the one before is acknowledged, no more).
{
  str bigrams; str sum; u64 0; u32 0; u32 0; u32 0; str ""; u8 0
  u64 1; str split.txt; str 'split me into segments split me'
} > "$work/split.body"
frame 0 "$work/split.body" > "$work/split"
# piece FROM COUNT: COUNT bytes of the frame from byte FROM (1 is the first)
piece() { tail -c +"$1" "$work/split" | head -c "$2"; }
mkfifo "$work/split.fifo"
timeout 60 nc -N 127.0.0.1 "$port" < "$work/split.fifo" >/dev/null &
split_nc=$!
exec 3>"$work/split.fifo"
for cut in 1:2 3:3 6:20; do
  from=${cut%:*} count=${cut#*:}
  piece "$from" "$count" >&3
  payload=$(piece "$from" "$count" | od -An -tx1 -v | tr -s ' \n' ':' | sed 's/^://; s/:$//')
  wait_for_packet capture "tcp.dstport == $port && tcp.payload == $payload" ||
    fail "bytes $from to $((from + count - 1)) of the split SUBMIT never reached the capture"
done
piece 26 "$(stat -c %s "$work/split")" >&3
exec 3>&-
wait "$split_nc"

# (b) ten requests in one write: STATUS 1, FETCH 1, LIST, STATS, FETCH 99, CANCEL 2, FETCH 2,
# HELLO, HELLO of version 2, and the undefined opcode 42. Replies must pair with them in order
# (the two HELLOs' replies have two layouts: version 2's ends with a flags byte).
: > "$work/empty"
u8 0 > "$work/options0"; u8 1 > "$work/options1"; u8 2 > "$work/options2"
{ u8 1; u8 0; } > "$work/options-too-long"
u32 1 > "$work/id1"; u32 2 > "$work/id2"; u32 99 > "$work/id99"
{ u8 1; u8 0; str ""; } > "$work/hello"  # u16 version 1, empty software
{ u8 2; u8 0; str ""; } > "$work/hello2"
{
  frame 2 "$work/id1"; frame 1 "$work/id1"; frame 4 "$work/empty"; frame 5 "$work/empty"
  frame 1 "$work/id99"; frame 3 "$work/id2"; frame 1 "$work/id2"; frame 6 "$work/hello"
  frame 6 "$work/hello2"; frame 42 "$work/empty"
} > "$work/pipelined"
send "$work/pipelined"

# (c) job 6, with every option and an idempotency key; then job 7, a map task that never returns,
# and in the same write a FETCH of it: it cannot be done, so PENDING.
{
  str words; str sum; u64 65536; u32 2; u32 30000; u32 512; str retry-42; u8 0
  u64 1; str big.txt; str "$(printf 'lorem ipsum %.0s' $(seq 20000))"
} > "$work/big.body"
frame 0 "$work/big.body" > "$work/big"
send "$work/big"
{ str test-hang; str sum; u64 0; u32 0; u32 0; u32 0; str ""; u8 0; u64 1; str h; str "x"; } \
  > "$work/hang.body"
{ frame 0 "$work/hang.body"; u8 1; u32 4; u32 7; } > "$work/submit-fetch"
send "$work/submit-fetch"

# (d) malformed: a FETCH with a 3-byte id; a SUBMIT whose document count lies.
{ u8 1; u32 3; printf 'abc'; } > "$work/short-fetch"
send "$work/short-fetch"
{ str words; str sum; u64 0; u32 0; u32 0; u32 0; str ""; u8 0; u64 1000; } > "$work/liar.body"
frame 0 "$work/liar.body" > "$work/liar"
send "$work/liar"

# (e) a SUBMIT header announcing 4 GiB: FRAME_TOO_LARGE, and the server closes.
{ u8 0; u32 4294967295; } > "$work/huge"
send "$work/huge"

# (f) job 8, over TLS, with the session keys logged for tshark.
SSLKEYLOGFILE="$work/keys.log" "$mrctl" -q --server "127.0.0.1:$tls_port" --tls \
  --cacert "$work/ca.pem" wordcount "$work/hamlet.txt" >>"$work/mrctl.log" 2>&1 ||
  fail "mrctl --tls wordcount failed: $(tail -3 "$work/mrctl.log")"

# (g) the server with tokens. mrctl: a user's LIST (HELLO v4 says auth is required, then AUTH),
# an admin's STATS, and a user's STATS (FORBIDDEN: mrctl exits 5). By hand, in one write: HELLO
# v1, an AUTH with a wrong token, a LIST before any good AUTH, and a HELLO of version 5 (which
# the server does not speak).
actl() { "$mrctl" -q --server "127.0.0.1:$auth_port" "$@" >>"$work/mrctl.log" 2>&1; }
MRD_TOKEN=$user_token actl list ||
  fail "mrctl list with MRD_TOKEN failed: $(tail -3 "$work/mrctl.log")"
printf '%s\n' "$admin_token" > "$work/admin.token"
actl --token-file "$work/admin.token" server-stats ||
  fail "mrctl server-stats with --token-file failed: $(tail -3 "$work/mrctl.log")"
MRD_TOKEN=$user_token actl server-stats
str "$wrong_token" > "$work/wrong-auth"
{ u8 5; u8 0; str ""; } > "$work/hello5"
{
  frame 6 "$work/hello"; frame 7 "$work/wrong-auth"; frame 4 "$work/empty"; frame 6 "$work/hello5"
} > "$work/unauthenticated"
timeout 10 nc -N 127.0.0.1 "$auth_port" < "$work/unauthenticated" >/dev/null
# Tenants (version 3): job 1 is alice's, job 2 bob's. mrctl's LISTs ask for tenants: alice's
# shows job 1, the admin's both. By hand, in one write, as the admin: HELLO v2, AUTH, then LIST
# with an empty body, with options 0, 1 (with tenants) and 2 (undefined), and with 2 bytes.
MRD_TOKEN=$user_token actl wordcount "$work/hamlet.txt" ||
  fail "mrctl wordcount as alice failed: $(tail -3 "$work/mrctl.log")"
MRD_TOKEN=$bob_token actl wordcount "$work/pie.txt" ||
  fail "mrctl wordcount as bob failed: $(tail -3 "$work/mrctl.log")"
MRD_TOKEN=$user_token actl list
MRD_TOKEN=$admin_token actl list
str "$admin_token" > "$work/admin-auth"
{
  frame 6 "$work/hello2"; frame 7 "$work/admin-auth"; frame 4 "$work/empty"
  frame 4 "$work/options0"; frame 4 "$work/options1"; frame 4 "$work/options2"
  frame 4 "$work/options-too-long"
} > "$work/lists"
timeout 10 nc -N 127.0.0.1 "$auth_port" < "$work/lists" >/dev/null

# (h) version 4's details, against the first server. Job 9 fails (its mapper refuses any input):
# a SUBMIT by hand, so that the test knows its body's length, then mrctl waits for it to fail.
# Then, in one write: STATUS with details of jobs 1 (done), 7 (hung, so never finished) and 9
# (failed); STATUS of job 1 with options 0, 2 (undefined) and two option bytes; STATUS with
# details of job 99 (unknown); STATS with details, with options 0, 2 and two option bytes.
{ str test-throw; str sum; u64 0; u32 0; u32 0; u32 0; str ""; u8 0; u64 1; str t; str "x y"; } \
  > "$work/throw.body"
frame 0 "$work/throw.body" > "$work/throw"
before_ms=$(date +%s%3N)
send "$work/throw"
ctl result --wait 9
waited=$?
[[ $waited -eq 1 ]] ||
  fail "mrctl result --wait 9 exited $waited, not 1 (job failed): $(tail -3 "$work/mrctl.log")"
after_ms=$(date +%s%3N)
for id in 1 7 9; do { u32 "$id"; u8 1; } > "$work/details$id"; done
{ u32 1; u8 0; } > "$work/status-options0"
{ u32 1; u8 2; } > "$work/status-options2"
{ u32 1; u8 1; u8 1; } > "$work/status-options-too-long"
{ u32 99; u8 1; } > "$work/details99"
{
  frame 2 "$work/details1"; frame 2 "$work/details7"; frame 2 "$work/details9"
  frame 2 "$work/status-options0"; frame 2 "$work/status-options2"
  frame 2 "$work/status-options-too-long"; frame 2 "$work/details99"
  frame 5 "$work/options1"; frame 5 "$work/options0"; frame 5 "$work/options2"
  frame 5 "$work/options-too-long"
} > "$work/details"
send "$work/details"

# Every reply has been read by its client: once a probe sent now is in each capture, so are they.
wait_for_probe capture "$port" 127.0.0.3 || fail "the capture of port $port stopped"
wait_for_probe tls-capture "$tls_port" 127.0.0.3 || fail "the capture of port $tls_port stopped"
wait_for_probe auth-capture "$auth_port" 127.0.0.3 || fail "the capture of port $auth_port stopped"
kill "$capture" "$tls_capture" "$auth_capture"
wait "$capture" "$tls_capture" "$auth_capture" 2>/dev/null; capture= tls_capture= auth_capture=

# --- decode ---
# shark ARGS...: tshark with the dissector, on the capture, mrd on the server's port. Two passes
# (-2), as the GUI does: the second pass must find the pairing the first one recorded.
shark() {
  tshark -n -X "lua_script:$dissector" -r "$work/capture.pcapng" -d "tcp.port==$port,mrd" -2 \
    "$@" 2>>"$work/tshark.err"
}
# fields FILTER FIELD...: one line per matching frame, fields separated by '|', values by ','
fields() {
  local filter=$1
  shift
  shark -Y "$filter" -T fields -E separator='|' $(printf -- '-e %s ' "$@")
}
# stream_pdus: from lines "STREAM|LENGTHS" (LENGTHS: a frame's mrd.body_length values, joined
# by ','), how many PDUs each stream holds: "STREAM:COUNT ...", by stream
stream_pdus() {
  awk -F'|' '$2 != "" { n[$1] += split($2, lengths, ",") }
             END { for (s in n) print s ":" n[s] }' | sort -n | paste -sd' '
}
# count_pdus TSHARK_ARGS...: how many mrd PDUs one pass over the capture finds in each stream
count_pdus() {
  tshark -n -X "lua_script:$dissector" -r "$work/capture.pcapng" "$@" -T fields \
    -E separator='|' -e tcp.stream -e mrd.body_length 2>>"$work/tshark.err" | stream_pdus
}

passed=0
failed=0
report() {  # report NAME OK WANTED GOT
  if [[ $2 == yes ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    printf 'FAILED: %s\n  wanted: %s\n  got:    %s\n' "$1" "$3" "$4"
  fi
}
expect() { report "$1" "$([[ $2 == "$3" ]] && echo yes)" "$2" "$3"; }        # NAME WANTED GOT
expect_match() { report "$1" "$([[ $3 =~ $2 ]] && echo yes)" "$2" "$3"; }  # NAME REGEX GOT

# mrctl's session
expect "HELLO reply names the server" "mrd" \
  "$(fields 'mrd.status == 0 && mrd.hello.version' mrd.hello.software | head -1 | cut -d' ' -f1)"
expect "SUBMIT words+sum: mapper, reducer, document name, text" \
  "words|sum|$work/hamlet.txt|to be or not to be\\n" \
  "$(fields 'mrd.document.name contains "hamlet"' \
    mrd.submit.mapper mrd.submit.reducer mrd.document.name mrd.document.text)"
expect "SUBMIT options and input kind" "0|0|0|0|0" \
  "$(fields 'mrd.document.name contains "hamlet"' mrd.submit.chunk_bytes mrd.submit.partitions \
    mrd.submit.task_timeout_ms mrd.submit.memory_limit_mib mrd.submit.input_kind)"
# (Job 7's OK and its PENDING go out in one write, so one frame: its line may hold both ids.
# Job 8 is the TLS port's; job 9 is (h)'s.)
expect_match "the OKs to SUBMITs carry job ids 1 to 7, and 9" '^1 2 3 4 5 6 7(,7)? 9$' \
  "$(fields 'mrd.status == 0 && mrd.request_opcode == 0' mrd.job_id | paste -sd' ')"
expect "FETCH of job 1: counts of be, to, not, or" "0|be,to,not,or|2,2,1,1" \
  "$(fields 'mrd.result.kind == 0' mrd.result.kind mrd.counts.key mrd.counts.occurrences |
     sort -u)"
expect "FETCH of job 2: statistics" "4|2.5|2.5|1|1|4" \
  "$(fields 'mrd.result.kind == 3' mrd.statistics.count mrd.statistics.mean \
    mrd.statistics.median mrd.statistics.mode mrd.statistics.min mrd.statistics.max)"
expect "SUBMIT matmul+rows: two 4x4 matrices of 16 values" "matmul|2|4,4|4,4|16,16" \
  "$(fields 'mrd.submit.mapper == "matmul"' mrd.submit.mapper mrd.submit.input_kind \
    mrd.matrix.rows mrd.matrix.cols mrd.matrix.value_count)"
expect "FETCH of job 3: a 4x4 matrix" "2|4|4|16" \
  "$(fields 'mrd.result.kind == 2' mrd.result.kind mrd.matrix.rows mrd.matrix.cols \
    mrd.matrix.value_count)"
expect "FETCH of job 4: postings" \
  "apple,pie,tart|2,1,1|$work/pie.txt,$work/tart.txt,$work/pie.txt,$work/tart.txt" \
  "$(fields 'mrd.result.kind == 1' mrd.postings.word mrd.postings.document_count \
    mrd.postings.document)"
expect "LIST: jobs 1 to 4, all done" "1,2,3,4|3,3,3,3" \
  "$(fields 'mrd.request_opcode == 4' mrd.job_id mrd.state | head -1)"
expect "mrctl's LIST asks for tenants (options 0x01)" "0x01|1|LIST with tenants" \
  "$(fields 'mrd.opcode == 4 && mrd.list.options' mrd.list.options mrd.list.with_tenants \
    _ws.col.Info | head -1)"
# mrctl's LIST asked for tenants, (b)'s has an empty body: two layouts, each told by its bytes.
expect_match "LIST's OKs: mrctl's with (empty) tenants, the pipelined one without" \
  '^OK: 4 jobs, with tenants/(.* \| )?OK: 5 jobs( \| .*)?$' \
  "$(fields 'mrd.request_opcode == 4' _ws.col.Info | paste -sd/)"
shark -O mrd > "$work/tree.txt"
expect "state and error message by name in the tree" "State: done (3)|Message: no job 99" \
  "$(grep -m1 -o 'State: done (3)' "$work/tree.txt")|$(grep -m1 -o 'Message: no job 99' \
    "$work/tree.txt")"
stats_fields=$(printf 'mrd.stats.%s ' uptime_ms connections_open connections_total \
  requests_total requests_rejected jobs_submitted jobs_done jobs_failed jobs_cancelled \
  jobs_expired jobs_unfinished workers worker_restarts retained_result_bytes)
expect "STATS: 14 counters, 4 jobs submitted" "14|4" \
  "$(fields 'mrd.request_opcode == 5' $stats_fields | head -1 | tr '|' '\n' | grep -c .)|$(
     fields 'mrd.request_opcode == 5' mrd.stats.jobs_submitted | head -1)"
# (mrctl's STATUS asks for the job's details: version 4.)
expect "Info column" \
  "SUBMIT words+sum|OK: job 1|FETCH job 1|UNKNOWN_JOB: no job 99|OK: job 1 done, words+sum" \
  "$(for filter in 'mrd.submit.mapper == "words"' 'mrd.job_id == 1 && mrd.request_opcode == 0' \
       'mrd.opcode == 1 && mrd.job_id == 1' 'mrd.status == 2' \
       'mrd.request_opcode == 2 && mrd.job_id == 1'; do
       fields "$filter" _ws.col.Info | head -1
     done | paste -sd'|')"

# (a) the split SUBMIT: one PDU, in the frame of its fourth segment
expect "split SUBMIT reassembled from 4 segments into one PDU" "4|0|split.txt" \
  "$(fields 'mrd.submit.mapper == "bigrams"' tcp.segment.count mrd.opcode mrd.document.name)"
expect "split SUBMIT: its text" "split me into segments split me" \
  "$(fields 'mrd.submit.mapper == "bigrams"' mrd.document.text)"

# (b) the pipelined requests: one frame, ten PDUs, and ten replies paired in order
pipelined='mrd.opcode == 3 && mrd.opcode == 42'  # the only frame with these two
expect "ten pipelined requests decoded from one segment" "2,1,4,5,1,3,1,6,6,42" \
  "$(fields "$pipelined" mrd.opcode)"
expect "their replies, paired with them in order" "2,1,4,5,1,3,1,6,6,42|0,0,0,0,2,0,4,0,0,8" \
  "$(fields "tcp.stream == $(fields "$pipelined" tcp.stream) && tcp.srcport == $port && mrd" \
    mrd.request_opcode mrd.status |
    awk -F'|' '{ o = o s $1; t = t s $2; s = "," } END { print o "|" t }')"
expect "the request frame links to its replies" "10" \
  "$(fields "$pipelined" mrd.reply_in | tr ',' '\n' | grep -c .)"
expect "Info column of the pipelined frame" "STATUS job 1 | FETCH job 1 | LIST | STATS | \
FETCH job 99 | CANCEL job 2 | FETCH job 2 | HELLO v1 | HELLO v2 | opcode 42" \
  "$(fields "$pipelined" _ws.col.Info)"

expect "HELLO v1's reply without flags, HELLO v2's with them (auth not required)" \
  "1,2|0x00|0" \
  "$(fields "tcp.stream == $(fields "$pipelined" tcp.stream) && tcp.srcport == $port && \
     mrd.hello.version" mrd.hello.version mrd.hello.flags mrd.hello.auth_required |
    awk -F'|' '{ for (i = 1; i <= 3; i++) if ($i != "") f[i] = f[i] (f[i] == "" ? "" : ",") $i }
               END { print f[1] "|" f[2] "|" f[3] }')"

# (c) the options, the key, and PENDING with its state's name
expect "SUBMIT options and idempotency key" "65536|2|30000|512|retry-42|big.txt|240000" \
  "$(fields 'mrd.submit.idempotency_key == "retry-42"' mrd.submit.chunk_bytes \
    mrd.submit.partitions mrd.submit.task_timeout_ms mrd.submit.memory_limit_mib \
    mrd.submit.idempotency_key mrd.document.name mrd.document.text_length)"
expect_match "PENDING right after SUBMIT, with a state name" \
  '(^|\| )PENDING: (queued|(mapping|reducing) [0-9]+/[0-9]+)$' \
  "$(fields 'mrd.status == 1 && mrd.job_id == 7' _ws.col.Info)"

# (d) malformed bodies: expert infos, and the server's BAD_REQUEST decoded
expect "FETCH with a 3-byte body is flagged malformed" "1" \
  "$(fields 'mrd.opcode == 1 && mrd.body_length == 3 && mrd.malformed' mrd.body_length |
     grep -c .)"
expect "SUBMIT with a lying count is flagged malformed" "1" \
  "$(fields 'mrd.documents.count == 1000 && mrd.malformed' mrd.documents.count | grep -c .)"
expect "BAD_REQUEST replies decoded with their message" "2" \
  "$(fields 'mrd.status == 7 && mrd.error.message && !(mrd.request_opcode in {2, 5})' \
     mrd.error.message | grep -c .)"  # (not (h)'s, to STATUS and STATS)

# (e) the 4 GiB header
expect "oversized header flagged, and paired with FRAME_TOO_LARGE" "4294967295|0|9" \
  "$(fields 'mrd.too_large' mrd.body_length)|$(fields 'mrd.status == 9' mrd.request_opcode \
    mrd.status)"

# (h) version 4's details: STATUS and STATS with and without them, in the stream of the one write
# (its only STATUS with the undefined option 2). One pass writes every field checked below, one
# line per frame, tab-separated (an Info column holds '|'), and one the tree.
details="tcp.stream == $(fields 'mrd.status_request.options == 0x02' tcp.stream)"
details_fields=(tcp.srcport _ws.col.Info mrd.request_opcode mrd.status
  mrd.status_request.options mrd.status_request.with_details mrd.stats.options
  mrd.stats.with_details mrd.job_id mrd.state mrd.details.mapper mrd.details.reducer
  mrd.details.input_bytes mrd.details.submitted_ms mrd.details.started_ms mrd.details.finished_ms
  mrd.stats.workers mrd.stats.workers_busy mrd.stats.tasks_done mrd.stats.jobs_done
  mrd.stats.jobs_failed mrd.histogram.bucket_count mrd.histogram.bucket.upper_us
  mrd.histogram.bucket.count mrd.histogram.sum_us)
shark -Y "$details && mrd" -T fields -E separator=/t \
  $(printf -- '-e %s ' "${details_fields[@]}") > "$work/details-fields.txt"
shark -O mrd -Y "$details" > "$work/details-tree.txt"
# detail requests|replies FIELD: FIELD of the write's requests (or of their replies), joined over
# the frames (the PDUs of one write may come in one frame or several): by ',', the Info column
# by ' | '
detail() {
  local column
  column=$(printf '%s\n' "${details_fields[@]}" | grep -nxF -- "$2" | cut -d: -f1)
  awk -F'\t' -v port="$port" -v requests="$([[ $1 == requests ]] && echo 1)" -v c="$column" \
      -v sep="$([[ $2 == _ws.col.Info ]] && echo ' | ' || echo ,)" '
    ($1 != port) == (requests == 1) && $c != "" { out = out (out == "" ? "" : sep) $c }
    END { print out }' "$work/details-fields.txt"
}
expect "(h) the STATUS and STATS requests with their options" \
  "STATUS job 1 with details | STATUS job 7 with details | STATUS job 9 with details | \
STATUS job 1 options 0x00 | STATUS job 1 options 0x02 | STATUS job 1 with details | \
STATUS job 99 with details | STATS with details | STATS options 0x00 | STATS options 0x02 | \
STATS with details" \
  "$(detail requests _ws.col.Info)"
expect "... their options bytes and bit 0 (the 6th STATUS and the 4th STATS have a byte more)" \
  "0x01,0x01,0x01,0x00,0x02,0x01,0x01|1,1,1,0,0,1,1|0x01,0x00,0x02,0x01|1,0,0,1" \
  "$(for field in mrd.status_request.options mrd.status_request.with_details mrd.stats.options \
       mrd.stats.with_details; do detail requests "$field"; done | paste -sd'|')"
expect "... the undefined bit 1 and the extra bytes flagged" "2|2" \
  "$(grep -c 'Expert Info.*undefined option bits set' "$work/details-tree.txt")|$(
     grep -c 'Expert Info.*1 bytes after the last field' "$work/details-tree.txt")"
expect "... their replies, paired in order" "2,2,2,2,2,2,2,5,5,5,5|0,0,0,0,7,7,2,0,0,7,7" \
  "$(detail replies mrd.request_opcode)|$(detail replies mrd.status)"
# (Job 7 may still be queued, if it waits for a worker; jobs 5 and 6 may still run.)
expect_match "... and their Info column" "^OK: job 1 done, words\\+sum \\| \
OK: job 7 (queued|mapping [0-9]+/[0-9]+), test-hang\\+sum \\| \
OK: job 9 failed, test-throw\\+sum \\| \
OK: job 1 done \\| BAD_REQUEST: [^|]+ \\| BAD_REQUEST: [^|]+ \\| UNKNOWN_JOB: no job 99 \\| \
OK: up [0-9]+ ms, 9 jobs submitted, [0-9]+ unfinished, [0-2]/2 workers busy, [0-9]+ tasks done \\| \
OK: up [0-9]+ ms, 9 jobs submitted, [0-9]+ unfinished \\| BAD_REQUEST: [^|]+ \\| \
BAD_REQUEST: [^|]+\$" \
  "$(detail replies _ws.col.Info)"
# What the test knows of jobs 1, 7 and 9: their names, their SUBMIT bodies' lengths (job 1's as
# mrctl sent it, in the capture; 7's and 9's as this test wrote them), no tenant, and when.
submit1_length=$(fields 'mrd.document.name contains "hamlet"' mrd.opcode mrd.body_length |
  awk -F'|' '{ n = split($1, o, ","); split($2, l, ","); for (i = 1; i <= n; i++)
               if (o[i] == 0) print l[i] }')
# (The ids and states are those of the four OKs to STATUS: three with details, one without.)
expect "STATUS details: ids, names, and the SUBMIT bodies' lengths" \
  "1,7,9,1|words,test-hang,test-throw|sum,sum,sum|$submit1_length,$(stat -c %s \
    "$work/hang.body"),$(stat -c %s "$work/throw.body")" \
  "$(for field in mrd.job_id mrd.details.mapper mrd.details.reducer mrd.details.input_bytes; do
       detail replies "$field"; done | paste -sd'|')"
expect_match "... states: done, queued or mapping, failed; done" '^3,[01],4,3$' \
  "$(detail replies mrd.state)"
expect "... no tenant (no token), and only job 9 has a failure" "3|2" \
  "$(grep -c 'Tenant: (none: submitted without a token)' "$work/details-tree.txt")|$(
     grep -c 'Failure: (none)' "$work/details-tree.txt")"
IFS=, read -r submitted1 submitted7 submitted9 <<<"$(detail replies mrd.details.submitted_ms)"
IFS=, read -r started1 started7 started9 <<<"$(detail replies mrd.details.started_ms)"
IFS=, read -r finished1 finished7 finished9 <<<"$(detail replies mrd.details.finished_ms)"
# (Job 1 finished before job 9 was submitted; job 7 hangs for the server's 300 s task timeout.)
expect "... times in order, within what the test saw of the clock" "yes|yes|yes" \
  "$( ((start_ms <= submitted1 && submitted1 <= started1 && started1 <= finished1 &&
        finished1 <= before_ms)) && echo yes)|$(
     ((start_ms <= submitted7 && submitted7 <= before_ms && finished7 == 0 &&
       (started7 == 0 || started7 >= submitted7))) && echo yes)|$(
     ((before_ms <= submitted9 && submitted9 <= started9 && started9 <= finished9 &&
       finished9 <= after_ms)) && echo yes)"
utc() { printf '%s.%03d UTC' "$(date -u -d "@$(($1 / 1000))" '+%F %T')" $(($1 % 1000)); }
expect "... shown as dates too, 0 as not yet" \
  "Submitted (ms): $submitted9 ($(utc "$submitted9"))|Finished (ms): 0 (not yet)" \
  "$(grep -m1 -o -F "Submitted (ms): $submitted9 ($(utc "$submitted9"))" \
     "$work/details-tree.txt")|$(grep -m1 -o -F 'Finished (ms): 0 (not yet)' \
     "$work/details-tree.txt")"
# (From the tree, as is FETCH's message: a message may hold commas.)
failure=$(grep -o 'Failure: .*' "$work/details-tree.txt" | grep -vx 'Failure: (none)' |
  sed 's/^Failure: //')
expect "... job 9's failure, as FETCH said it" \
  "$(awk '/Status: JOB_FAILED \(3\)/ { failed = 1 } failed && sub(/^ *Message: /, "") {
            print; failed = 0 }' "$work/tree.txt" | sort -u)" \
  "$failure"
expect_match "... which names its cause" 'test-throw: the mapper refused its input' "$failure"

# STATS with details: the counters, then the workers and the histograms
busy=$(detail replies mrd.stats.workers_busy)
expect "STATS: 14 counters with and without details, workers as started (--workers 2)" \
  "2,2|yes" "$(detail replies mrd.stats.workers)|$( ((busy >= 0 && busy <= 2)) && echo yes)"
inf=18446744073709551615
IFS=, read -r -a upper <<<"$(detail replies mrd.histogram.bucket.upper_us)"
IFS=, read -r -a cumulative <<<"$(detail replies mrd.histogram.bucket.count)"
expect "STATS details: two histograms of 17 buckets, each ending at +Inf" \
  "17,17|34|$inf|$inf|2|2" \
  "$(detail replies mrd.histogram.bucket_count)|${#upper[@]}|${upper[16]:-}|${upper[33]:-}|$(
     grep -c 'Upper bound (us): +Inf' "$work/details-tree.txt")|$(
     grep -c 'Bucket 17: +Inf: ' "$work/details-tree.txt")"
# rising HISTOGRAM: whether histogram 0 or 1 has rising bounds and counts that never fall (bash
# compares signed 64-bit integers: +Inf, 2^64 - 1, is compared as a string)
rising() {
  local i first=$(($1 * 17))
  for ((i = first + 1; i < first + 17; i++)); do
    [[ ${upper[i - 1]} != "$inf" ]] || return 1
    [[ ${upper[i]} == "$inf" ]] || ((upper[i] > upper[i - 1])) || return 1
    ((cumulative[i] >= cumulative[i - 1])) || return 1
  done
}
expect "... bounds rising, counts cumulative; nothing flagged" "yes|yes|0" \
  "$(rising 0 && echo yes)|$(rising 1 && echo yes)|$(grep -c \
     "Expert Info.*\(bound not above\|count below\|bound is not +Inf\|no buckets\)" \
     "$work/details-tree.txt")"
tasks_done=$(detail replies mrd.stats.tasks_done)
IFS=, read -r jobs_done _ <<<"$(detail replies mrd.stats.jobs_done)"
IFS=, read -r jobs_failed _ <<<"$(detail replies mrd.stats.jobs_failed)"
# Every job 1 to 9 but 5, 6 (perhaps still running) and 7 (hung) finished done or failed, each
# with a task at least: but 9, whose task failed.
expect "... task_us counts tasks_done, job_us jobs done or failed" "yes|yes|yes" \
  "$( ((cumulative[16] == tasks_done && tasks_done >= 5)) && echo yes)|$(
     ((cumulative[33] == jobs_done + jobs_failed && cumulative[33] >= 6)) && echo yes)|$(
     [[ $(detail replies mrd.histogram.sum_us) =~ ^[0-9]+,[0-9]+$ ]] && echo yes)"

# the other ways to find the server: the port preference, and the heuristic; and one pass.
# Each compares the PDUs found in each stream (a total could hide a miss here by a gain there).
with_decode_as=$(count_pdus -d "tcp.port==$port,mrd")
expect "Decode As finds PDUs in every stream that carries data" \
  "$(tshark -n -r "$work/capture.pcapng" -Y "tcp.len > 0" -T fields -e tcp.stream \
     2>>"$work/tshark.err" | sort -nu | paste -sd' ')" \
  "$(tr ' ' '\n' <<<"$with_decode_as" | cut -d: -f1 | paste -sd' ')"
expect "the port preference finds as many PDUs as Decode As" "$with_decode_as" \
  "$(count_pdus -o "mrd.port:$port")"
# The heuristic judges a stream by its first request: it misses the two that start with a
# malformed one, (d)'s short FETCH and (e)'s 4 GiB header, and finds everything else. TCP tries
# heuristics first here: else a client's ephemeral port that Wireshark gives another protocol
# (44818 is EtherNet/IP's, 57000 IRC's) would take its stream before any heuristic saw it.
odd_streams=$(fields 'mrd.body_length == 3 || mrd.too_large' tcp.stream | sort -u | paste -sd,)
expect "the heuristic finds every stream that starts well" \
  "$(count_pdus -d "tcp.port==$port,mrd" -Y "!(tcp.stream in {$odd_streams})")" \
  "$(count_pdus -o mrd.heuristic:TRUE -o tcp.try_heuristic_first:TRUE)"
expect "two passes find as many PDUs as one" "$with_decode_as" \
  "$(shark -T fields -E separator='|' -e tcp.stream -e mrd.body_length | stream_pdus)"

# (f) TLS: decrypted with the key log, the same frames decode
tls_fields() {
  tshark -n -X "lua_script:$dissector" -r "$work/tls-capture.pcapng" -2 \
    -o "tls.keylog_file:$work/keys.log" -d "tcp.port==$tls_port,tls" -d "tls.port==$tls_port,mrd" \
    -Y "$1" -T fields -E separator='|' $(printf -- '-e %s ' "${@:2}") 2>>"$work/tshark.err"
}
expect "over TLS: SUBMIT words+sum with its document" "words|sum|$work/hamlet.txt" \
  "$(tls_fields 'mrd.opcode == 0' mrd.submit.mapper mrd.submit.reducer mrd.document.name)"
expect "over TLS: the OK with job id 8, and the counts" "8|be,to,not,or|2,2,1,1" \
  "$(tls_fields 'mrd.status == 0 && mrd.request_opcode == 0' mrd.job_id)|$(
     tls_fields 'mrd.result.kind == 0' mrd.counts.key mrd.counts.occurrences | sort -u)"
expect "without the key log, nothing decodes as mrd" "0" \
  "$(tshark -n -X "lua_script:$dissector" -r "$work/tls-capture.pcapng" \
     -d "tcp.port==$tls_port,tls" -d "tls.port==$tls_port,mrd" -Y mrd 2>>"$work/tshark.err" |
     grep -c .)"

# (g) tokens: the capture of the server started with --auth-file
auth_shark() {
  tshark -n -X "lua_script:$dissector" -r "$work/auth-capture.pcapng" \
    -d "tcp.port==$auth_port,mrd" -2 "$@" 2>>"$work/tshark.err"
}
auth_fields() {
  auth_shark -Y "$1" -T fields -E separator='|' $(printf -- '-e %s ' "${@:2}")
}
# (mrctl's HELLOs are version 4's, and the hand-made write's of (g) version 2's: one layout.)
expect "HELLO v2's and v4's replies say auth is required" "2|0x01|1 4|0x01|1|8" \
  "$(auth_fields 'mrd.request_opcode == 6 && mrd.hello.flags' mrd.hello.version mrd.hello.flags \
     mrd.hello.auth_required | sort -u | paste -sd' ')|$(auth_fields 'mrd.hello.auth_required' \
     mrd.hello.version | grep -c .)"
unauthenticated='mrd.opcode == 7 && mrd.opcode == 4'  # the hand-made writes, one frame each
user_auth="${#user_token}|AUTH token of ${#user_token} bytes"
admin_auth="${#admin_token}|AUTH token of ${#admin_token} bytes"
expect "AUTH requests: their tokens' lengths, and the Info column" \
  "$user_auth/$admin_auth/$user_auth/\
${#wrong_token}|HELLO v1 | AUTH token of ${#wrong_token} bytes | LIST | HELLO v5/\
$user_auth/${#bob_token}|AUTH token of ${#bob_token} bytes/$user_auth/$admin_auth/\
${#admin_token}|HELLO v2 | AUTH token of ${#admin_token} bytes | LIST | LIST options 0x00 | \
LIST with tenants | LIST options 0x02 | LIST with tenants" \
  "$(auth_fields 'mrd.opcode == 7' mrd.auth.token_length _ws.col.Info | paste -sd/)"
auth_shark -V > "$work/auth-verbose.txt"
expect "the tree shows a token's length, not the token" "9|0|0|0|0" \
  "$(grep -c "Token: [0-9]* bytes (not shown)" "$work/auth-verbose.txt")|$(
     grep -c -- "$user_token" "$work/auth-verbose.txt")|$(
     grep -c -- "$bob_token" "$work/auth-verbose.txt")|$(
     grep -c -- "$admin_token" "$work/auth-verbose.txt")|$(
     grep -c -- "$wrong_token" "$work/auth-verbose.txt")"
expect "AUTH's OKs: tenant and role" "alice|0 ops|1 alice|0 alice|0 bob|0 alice|0 ops|1 ops|1" \
  "$(auth_fields 'mrd.auth.tenant' mrd.auth.tenant mrd.auth.role | paste -sd' ')"
expect "AUTH's OK and role by name in the tree, and in the Info column" \
  "Tenant: alice|Role: admin (1)|OK: tenant alice, user" \
  "$(grep -m1 -o 'Tenant: alice' "$work/auth-verbose.txt")|$(grep -m1 -o 'Role: admin (1)' \
     "$work/auth-verbose.txt")|$(auth_fields 'mrd.auth.tenant == "alice"' _ws.col.Info |
     sort -u)"
expect "its replies: OK to HELLO v1 (no flags), AUTH_FAILED, NOT_AUTHENTICATED, VERSION_MISMATCH" \
  "6,7,4,6|0,18,19,10|1|" \
  "$(auth_fields "tcp.stream == $(auth_fields "$unauthenticated" tcp.stream | head -1) && \
     tcp.srcport == $auth_port && mrd" mrd.request_opcode mrd.status mrd.hello.version \
     mrd.hello.flags |
    awk -F'|' '{ o = o s $1; t = t s $2; s = ","; v = v $3; f = f $4 }
               END { print o "|" t "|" v "|" f }')"
expect "AUTH_FAILED, NOT_AUTHENTICATED, FORBIDDEN by name, with their messages" \
  "Status: AUTH_FAILED (18)|Status: NOT_AUTHENTICATED (19)|Status: FORBIDDEN (20)|1|1|1" \
  "$(for status in 'AUTH_FAILED (18)' 'NOT_AUTHENTICATED (19)' 'FORBIDDEN (20)'; do
       grep -m1 -o "Status: $status" "$work/auth-verbose.txt"
     done | paste -sd'|')|$(for code in 18 19 20; do
       auth_fields "mrd.status == $code && mrd.error.message" mrd.error.message | grep -c .
     done | paste -sd'|')"
expect "STATS: OK to the admin, FORBIDDEN to the user" "0,20" \
  "$(auth_fields 'mrd.request_opcode == 5' mrd.status | paste -sd,)"
# auth_pdus TSHARK_ARGS...: how many AUTH requests one pass over the auth capture finds
auth_pdus() {
  tshark -n -X "lua_script:$dissector" -r "$work/auth-capture.pcapng" "$@" -T fields \
    -e mrd.opcode 2>>"$work/tshark.err" | tr ',' '\n' | grep -cx 7
}
expect "the heuristic finds the AUTH requests too" "9|9" \
  "$(auth_pdus -d "tcp.port==$auth_port,mrd")|$(auth_pdus -o mrd.heuristic:TRUE \
     -o tcp.try_heuristic_first:TRUE)"  # (first, as above)

# Tenants (version 3): LIST's options, and its OKs with and without each job's tenant
expect "mrctl's LISTs as alice and as the admin: her job 1; jobs 1 and 2 with their tenants" \
  "1|3|alice 1,2|3,3|alice,bob" \
  "$(auth_fields 'mrd.request_opcode == 4 && mrd.list.tenant' mrd.job_id mrd.state \
     mrd.list.tenant | head -2 | paste -sd' ')"
lists="tcp.stream == $(auth_fields "$unauthenticated" tcp.stream | tail -1)"
# server_fields FILTER FIELD...: FIELDs of the server's frames matching FILTER, joined over the
# frames (the replies of one write may come in one frame or several), one line per FIELD.
server_fields() {
  auth_fields "$1 && tcp.srcport == $auth_port && mrd" "${@:2}" |
    awk -F'|' '{ for (i = 1; i <= NF; i++) if ($i != "") f[i] = f[i] (f[i] == "" ? "" : ",") $i }
               END { for (i = 1; i <= '$(($# - 1))'; i++) print f[i] }'
}
expect "the admin's LISTs: replies paired in order, the last two BAD_REQUEST" \
  "6,7,4,4,4,4,4|0,0,0,0,0,7,7" \
  "$(server_fields "$lists" mrd.request_opcode mrd.status | paste -sd'|')"
expect "empty body and options 0: jobs without tenants; options 1: with them" \
  "2,2,2|1,2,1,2,1,2|alice,bob" \
  "$(server_fields "$lists" mrd.list.count mrd.job_id mrd.list.tenant | paste -sd'|')"
# (The software's version, and the message about the 2-byte body, are cut out.)
expect "... and their Info column" \
  "OK: mrd, v2, auth required | OK: tenant ops, admin | OK: 2 jobs | OK: 2 jobs | \
OK: 2 jobs, with tenants | BAD_REQUEST: list: unknown option bits 2; this server knows 1 \
(with tenants) | BAD_REQUEST: list: ..." \
  "$(auth_fields "$lists && tcp.srcport == $auth_port && mrd" _ws.col.Info |
     awk '{ printf "%s%s", (NR > 1 ? " | " : ""), $0 } END { print "" }' |
     sed 's/^OK: mrd [^,]*,/OK: mrd,/; s/\(BAD_REQUEST: list: \)[^|]*$/\1.../')"
expect "LIST's options: bit names, the undefined bit 1 and the extra byte flagged" \
  "With tenants: Yes (each job with its tenant)|1|1" \
  "$(grep -m1 -o 'With tenants: Yes (each job with its tenant)' "$work/auth-verbose.txt")|$(
     auth_fields "$lists && mrd.list.options == 0x02 && mrd.unknown_code" mrd.list.options |
     grep -c .)|$(auth_fields "$lists && mrd.trailing_bytes" mrd.opcode | grep -c .)"
expect "a job's tenant in the tree" "Job: 1 done alice|Job: 2 done bob" \
  "$(grep -m1 -o 'Job: 1 done alice' "$work/auth-verbose.txt")|$(
     grep -m1 -o 'Job: 2 done bob' "$work/auth-verbose.txt")"

# --- version 4's examples in docs/protocol.md, and malformed replies, in a made-up capture ---
# example NAME: the bytes of the document's hex example NAME (the block after its marker)
example() {
  local hex
  hex=$(awk -v marker="<!-- example: $1 -->" '$0 == marker { found = 1; next }
          found && /^```/ { if (inside) exit; inside = 1; next }
          inside' "$protocol_doc" | tr -d ' \n')
  [[ -n $hex ]] || fail "no example $1 in $protocol_doc"
  printf '%b' "$(sed 's/../\\x&/g' <<<"$hex")"
}
# packet DIRECTION: stdin as one packet of text2pcap's input; I: to the server, O: from it
packet() { echo "$1"; od -Ax -tx1 -v | sed '$d'; }
# counters N: a body of the fourteen STATS counters, each N
counters() { local i; for i in $(seq 14); do u64 "$1"; done; }
frame_of() { local body; body=$(mktemp -p "$work"); cat > "$body"; frame "$1" "$body"; }
{
  # the document's examples: STATUS and STATS with details, and the version 1 STATUS
  example status-details-request | packet I; example status-details-reply | packet O
  example stats-details-request | packet I; example stats-details-reply | packet O
  example status-request | packet I; example status-reply | packet O
  # a STATS without options, whose reply has no details
  example stats-request | packet I; counters 7 | frame_of 0 | packet O
  # malformed: the replies of version 1 to requests with details
  example status-details-request | packet I; example status-reply | packet O
  example stats-details-request | packet I; counters 7 | frame_of 0 | packet O
  # a histogram whose second bound falls, whose count falls, whose last bound is not +Inf; and
  # one with no buckets
  example stats-details-request | packet I
  { counters 0; u64 0; u64 5; u64 3; u64 10; u64 3; u64 5; u64 2; u64 20; u64 4; u64 9
    u64 0; u64 0; } | frame_of 0 | packet O
  # a bucket count that the body cannot hold
  example stats-details-request | packet I
  { counters 0; u64 0; u64 5; u64 1000000; u64 0; } | frame_of 0 | packet O
} > "$work/examples.txt"
text2pcap -q -D -T 40000,1936 -4 127.0.0.1,127.0.0.1 "$work/examples.txt" \
  "$work/examples.pcapng" 2>>"$work/tshark.err" || fail "text2pcap failed: $(tail -3 \
  "$work/tshark.err")"
examples() {
  tshark -n -X "lua_script:$dissector" -r "$work/examples.pcapng" -d tcp.port==1936,mrd -2 "$@" \
    2>>"$work/tshark.err"
}
# Its tree, and one line per frame (one PDU each) of the fields checked below
example_fields=(frame.number _ws.col.Info mrd.job_id mrd.state mrd.details.mapper
  mrd.details.reducer mrd.details.tenant mrd.details.input_bytes mrd.details.submitted_ms
  mrd.details.started_ms mrd.details.finished_ms mrd.details.failure mrd.stats.workers
  mrd.stats.workers_busy mrd.stats.tasks_done mrd.histogram.bucket_count
  mrd.histogram.bucket.upper_us mrd.histogram.bucket.count mrd.histogram.sum_us)
examples -O mrd > "$work/examples-tree.txt"
examples -T fields -E separator=/t $(printf -- '-e %s ' "${example_fields[@]}") \
  > "$work/examples-fields.txt"
# example_frame N FIELD...: FIELDs of frame N, separated by '|'
example_frame() {
  local field columns=()
  for field in "${@:2}"; do
    columns+=("$(printf '%s\n' "${example_fields[@]}" | grep -nxF -- "$field" | cut -d: -f1)")
  done
  awk -F'\t' -v n="$1" -v columns="${columns[*]}" '
    $1 == n { k = split(columns, c, " "); for (i = 1; i <= k; i++) printf "%s%s", $c[i],
              (i < k ? "|" : "\n") }' "$work/examples-fields.txt"
}
expect "examples: paired in order, and the Info column" \
  "STATUS job 7 with details|OK: job 7 done, words+sum of alice|STATS with details|\
OK: up 120000 ms, 4 jobs submitted, 3 unfinished, 1/2 workers busy, 3 tasks done|STATUS job 7|\
OK: job 7 done|STATS|OK: up 7 ms, 7 jobs submitted, 7 unfinished|STATUS job 7 with details|\
OK: [malformed]|STATS with details|OK: [malformed]|STATS with details|\
OK: up 0 ms, 0 jobs submitted, 0 unfinished, 0/0 workers busy, 5 tasks done|\
STATS with details|OK: [malformed]" \
  "$(cut -f2 "$work/examples-fields.txt" | paste -sd'|')"
# What the document says of its examples: job 7, words/sum of alice, 66 bytes, accepted at
# 1764576000000 (2025-12-01 08:00:00 UTC), started 12 ms later, done 250 ms after it was accepted.
expect "example status-details-reply: the job's details" \
  "7|3|words|sum|alice|66|1764576000000|1764576000012|1764576000250|" \
  "$(example_frame 2 mrd.job_id mrd.state mrd.details.mapper mrd.details.reducer \
     mrd.details.tenant mrd.details.input_bytes mrd.details.submitted_ms \
     mrd.details.started_ms mrd.details.finished_ms mrd.details.failure)"
expect "... its times as dates, and a filter on the date" \
  "Submitted (ms): 1764576000000 (2025-12-01 08:00:00.000 UTC)|\
Started (ms): 1764576000012 (2025-12-01 08:00:00.012 UTC)|\
Finished (ms): 1764576000250 (2025-12-01 08:00:00.250 UTC)|Failure: (none)|2" \
  "$(grep -o 'Submitted (ms): .*\|Started (ms): .*\|Finished (ms): .*\|Failure: .*' \
     "$work/examples-tree.txt" | paste -sd'|')|$(examples -T fields -e frame.number \
     -Y 'mrd.details.submitted == "2025-12-01 08:00:00Z"')"
# ... and of the other: two buckets each, 3 tasks (2 of them in at most 10 us), 46 us in all;
# 1 job, 60 us.
expect "example stats-details-reply: workers busy, tasks done, two histograms" \
  "1|3|2,2|10,$inf,10,$inf|2,3,0,1|46,60" \
  "$(example_frame 4 mrd.stats.workers_busy mrd.stats.tasks_done mrd.histogram.bucket_count \
     mrd.histogram.bucket.upper_us mrd.histogram.bucket.count mrd.histogram.sum_us)"
expect "... in the tree, with +Inf" \
  "task_us: 3 tasks, 46 us in all (2 buckets)|Bucket 1: <= 10 us: 2|Bucket 2: +Inf: 3|\
Upper bound (us): +Inf|job_us: 1 job, 60 us in all (2 buckets)" \
  "$(grep -m1 -o 'task_us: .*' "$work/examples-tree.txt")|$(
     grep -m1 -o 'Bucket 1: .*' "$work/examples-tree.txt")|$(
     grep -m1 -o 'Bucket 2: .*' "$work/examples-tree.txt")|$(
     grep -m1 -o 'Upper bound (us): +Inf' "$work/examples-tree.txt")|$(
     grep -m1 -o 'job_us: .*' "$work/examples-tree.txt")"
# (Frames 6 and 8 are the replies to the STATUS and STATS without options.)
expect "without options: a Progress, and the counters alone" "7|3||7|" \
  "$(example_frame 6 mrd.job_id mrd.state mrd.details.mapper)|$(
     example_frame 8 mrd.stats.workers mrd.stats.workers_busy)"
expect "malformed replies flagged, each with its cause, and only those" "1|1|1|3" \
  "$(grep -c 'Expert Info (Error/Malformed): mapper length needs 8 bytes, only 0 left' \
     "$work/examples-tree.txt")|$(grep -c \
     'Expert Info (Error/Malformed): workers_busy needs 8 bytes, only 0 left' \
     "$work/examples-tree.txt")|$(grep -c \
     'Expert Info (Error/Malformed): bucket count 1000000 does not fit in the 8 bytes left' \
     "$work/examples-tree.txt")|$(grep -c 'Expert Info (Error/' "$work/examples-tree.txt")"
expect "histograms not as specified flagged, and only those" \
  "bound not above the one before|count below the one before (counts are cumulative)|\
the last bucket's bound is not +Inf|no buckets (the last one's bound is +Inf)" \
  "$(grep -o 'Expert Info (Warning/.*\]' "$work/examples-tree.txt" |
     sed 's/^[^:]*: //; s/\]$//' | paste -sd'|')"

# no Lua error anywhere, in the tree or on stderr
shark -V > "$work/verbose.txt"
expect "no Lua errors" "0" \
  "$(cat "$work/verbose.txt" "$work/auth-verbose.txt" "$work/examples-tree.txt" "$work/tshark.err" |
     grep -v 'Running as user "root"' | grep -ci 'lua error\|dissector_bug\|Internal error in the mrd')"

echo "dissector: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
