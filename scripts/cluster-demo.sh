#!/usr/bin/env bash
# A cluster on this machine: one redis-server and three mrd nodes (docs/scale-out.md), all on
# loopback ports chosen free. A job submitted to one node is fetched from another; then the node
# running a slow job is killed with SIGKILL, and the job finishes on another node, exactly.
# Everything it started is stopped at the end; it exits 0 if every step did what it says.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
build=$(realpath -m "${BUILD_DIR:-build}")
command -v redis-server >/dev/null || bash scripts/setup.sh
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" \
  --appendonly yes --appendfsync always --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
echo "redis-server on 127.0.0.1:$redis_port (AOF, appendfsync always)"

declare -A node_pid node_address
for name in a b c; do
  # --enable-test-jobs: the slow job below uses the test-slow mapper.
  "$build/server/mrd" --listen 127.0.0.1:0 --port-file "$work/port-$name" --workers 1 \
    --redis "redis://127.0.0.1:$redis_port" --node-name "$name" --lease-ms 1000 \
    --enable-test-jobs 2>"$work/node-$name.log" &
  node_pid[$name]=$!
  pids+=($!)
done
for name in a b c; do
  # A node listens at once, and serves once its links to Redis are up (it says so in its log).
  for _ in $(seq 200); do
    grep -q "connected to Redis: serving" "$work/node-$name.log" 2>/dev/null && break
    sleep 0.05
  done
  node_address[$name]=127.0.0.1:$(cat "$work/port-$name")
  echo "node $name on ${node_address[$name]}"
done
mrctl() { "$build/client/mrctl" "$@"; }

echo
echo "\$ mrctl --server ${node_address[a]} wordcount --no-wait /usr/share/common-licenses/GPL-3"
id=$(mrctl --server "${node_address[a]}" wordcount --no-wait /usr/share/common-licenses/GPL-3)
echo "$id"
echo "\$ mrctl --server ${node_address[b]} result --wait --top 5 $id"
mrctl --server "${node_address[b]}" result --wait --top 5 "$id"
echo "\$ mrctl --server ${node_address[c]} status $id"
mrctl --server "${node_address[c]}" status "$id"

echo
echo "A slow job: test-slow sleeps 400 ms in each map task, for the document named 400;"
echo "--chunk-bytes 1 makes a task of each of its 8 words: the node that takes the job offers them to every node's worker."
echo "slow word1 slow word2 slow word1 slow word2" >"$work/400"
slow=$(cd "$work" && "$build/client/mrctl" --server "${node_address[c]}" submit \
  --mapper test-slow --reducer sum --chunk-bytes 1 --no-wait --documents 400)
echo "job $slow submitted to node c"
runner=""
for _ in $(seq 400); do
  [[ $(redis-cli -p "$redis_port" hget "mrd:{j$slow}" state) == 1 ]] &&
    runner=$(redis-cli -p "$redis_port" hget "mrd:{j$slow}" node) && break
  sleep 0.05
done
[[ -n $runner ]] || { echo "the slow job never started" >&2; exit 1; }
echo "node $runner coordinates it; kill -9 node $runner (its tasks and the job itself run again elsewhere)"
kill -9 "${node_pid[$runner]}"
wait "${node_pid[$runner]}" 2>/dev/null || true  # reaped quietly
survivor=a
[[ $runner == a ]] && survivor=b
echo "\$ mrctl --server ${node_address[$survivor]} result --wait $slow"
mrctl --server "${node_address[$survivor]}" result --wait "$slow"
echo "attempts: $(redis-cli -p "$redis_port" hget "mrd:{j$slow}" attempt), finished by node $(redis-cli -p "$redis_port" hget "mrd:{j$slow}" node)"
echo
echo "cluster demo: done"
