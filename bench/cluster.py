#!/usr/bin/env python3
"""The cost of going through Redis: the same load against a single mrd (2 workers), one cluster
node (2 workers) and three cluster nodes (1 worker each), all on this machine, in one run.

    python3 bench/cluster.py [--build DIR] [--seconds 4] [--runs 3]

Needs a Release build with the bench tools (bash bench/run.sh builds one in /tmp/mrd-bench/build)
and redis-server. For each setup: tiny round trips (`loadgen roundtrip -c 32`, every connection to
the first node) and the 64 MiB real-text word count end to end (`e2e wordcount`, through the
first node); for the clusters, what Redis did per tiny job (commands by name, bytes in and out,
from INFO). Prints one JSON object per setup, then a Markdown table (docs/scale-out.md keeps
the last one, with this command).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import suite  # noqa: E402  (its process helpers and the real-text corpus)


def redis_info(port, section):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", section], capture_output=True,
                         text=True, check=True).stdout
    fields = {}
    for line in out.splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def redis_counts(port):
    """Calls per command, and bytes in and out, since Redis started."""
    calls = {}
    for key, value in redis_info(port, "commandstats").items():
        name = key[len("cmdstat_"):]
        calls[name] = int(value.split(",")[0].split("=")[1])
    stats = redis_info(port, "stats")
    cpu = redis_info(port, "cpu")
    return (calls, int(stats["total_net_input_bytes"]), int(stats["total_net_output_bytes"]),
            float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))


class Redis:
    def __init__(self, work):
        self.dir = tempfile.mkdtemp(dir=work)
        self.port = suite.free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--logfile", os.path.join(self.dir, "log")],
            stdin=subprocess.DEVNULL)
        suite.wait_for_port(self.port, self.proc)

    def close(self):
        suite.stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(bench, setup, args, corpus):
    """Starts the setup's servers, runs the load, stops them; returns what was measured."""
    redis = Redis(bench.work) if setup["nodes"] else None
    procs, ports = [], []
    try:
        for i in range(max(setup["nodes"], 1)):
            extra = ["--redis", "redis://127.0.0.1:%d" % redis.port, "--node-name",
                     "n%d" % i] if redis else []
            proc, port = bench.start_mrd(workers=setup["workers"], extra=extra)
            procs.append(proc)
            ports.append(port)
        server = "127.0.0.1:%d" % ports[0]
        before = redis_counts(redis.port) if redis else None
        tiny = bench.run_json("cluster", [
            bench.tool("loadgen"), "roundtrip", "--server", server, "-c", "32", "--seconds",
            str(args.seconds), "--warmup", "0.5"])[0]
        result = {"setup": setup["name"], "tiny": tiny}
        if redis:
            after = redis_counts(redis.port)
            jobs = tiny.get("completed", 0) or 1
            # Warm-up jobs count in Redis's totals too: divide by every job the load made.
            made = int(after[0].get("incr", 0)) - int(before[0].get("incr", 0))
            per = max(made, jobs)
            calls = {name: round((after[0].get(name, 0) - before[0].get(name, 0)) / per, 2)
                     for name in after[0] if after[0].get(name, 0) != before[0].get(name, 0)}
            result["redis_per_job"] = {
                "jobs": per, "commands": calls,
                "command_total": round(sum(calls.values()), 2),
                "bytes_in": round((after[1] - before[1]) / per),
                "bytes_out": round((after[2] - before[2]) / per),
                "redis_cpu_us": round((after[3] - before[3]) / per * 1e6, 1),
                "fetches": tiny.get("fetches_per_job")}
        big = bench.run_json("cluster", [
            bench.tool("e2e"), "--server", server, "--runs", str(args.runs), "--warmup", "1",
            "wordcount", "--file", corpus["path"]])[0]
        result["wordcount"] = big
        return result
    finally:
        for proc in procs:
            suite.stop(proc)
        if redis:
            redis.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="/tmp/mrd-bench/build")
    parser.add_argument("--work", default="/tmp/mrd-bench")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    args.quick = False
    bench = suite.Suite(args)
    corpus = bench.real_corpus(64)
    setups = [{"name": "single server, 2 workers", "nodes": 0, "workers": 2},
              {"name": "1 node x 2 workers", "nodes": 1, "workers": 2},
              {"name": "3 nodes x 1 worker", "nodes": 3, "workers": 1}]
    rows = []
    for setup in setups:
        suite.log("cluster: %s" % setup["name"])
        row = measure(bench, setup, args, corpus)
        print(json.dumps(row), flush=True)
        rows.append(row)
    mib = corpus["bytes"] / (1 << 20)
    print("\n| setup | tiny jobs/s (32 connections) | p99 ms | 64 MiB word count, s (median) "
          "| MiB/s | Redis commands per tiny job | Redis bytes in / out per tiny job "
          "| Redis CPU per tiny job |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        seconds = suite.med(row["wordcount"]["total_s"])
        per = row.get("redis_per_job")
        print("| %s | %.0f | %.2f | %.3f | %.0f | %s | %s | %s |" % (
            row["setup"], row["tiny"]["rate"], row["tiny"]["p99_ms"], seconds,
            mib / seconds, "%.1f" % per["command_total"] if per else "-",
            "%d / %d" % (per["bytes_in"], per["bytes_out"]) if per else "-",
            "%.0f us" % per["redis_cpu_us"] if per else "-"))
    for row in rows:
        if row.get("redis_per_job"):
            print("\n%s, Redis commands per tiny job: %s" % (
                row["setup"], ", ".join("%s %.2f" % kv for kv in
                                        sorted(row["redis_per_job"]["commands"].items()))))
    print("\nload average at the end: %s; %s" % (suite.loadavg(), time.strftime("%Y-%m-%d %H:%M UTC",
                                                                               time.gmtime())))


if __name__ == "__main__":
    main()
