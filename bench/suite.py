#!/usr/bin/env python3
"""The mrd benchmark suite. Run it through bench/run.sh, which builds first.

    python3 bench/suite.py --build BUILD_DIR [--quick] [--only SECTION,...] [--work DIR]
    python3 bench/suite.py --report-only        # docs/benchmarks.md and plots from latest.json

Every server it starts (mrd, redis-server, gearmand and its workers) listens on 127.0.0.1 on a
free port and is stopped by its own PID; every load is bounded in count and time. Raw output of
every tool goes into bench/results/latest.json; bench/report.py turns that into
docs/benchmarks.md and docs/bench-*.png.
"""
import argparse
import datetime
import glob
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

SECTIONS = ["wordcount", "matmul", "tiny", "hol", "memory", "scaling", "tls"]


def log(*parts):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *parts, flush=True)


def free_port():
    """A port nothing listens on right now (bound to 127.0.0.1 and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process %d exited with %s" % (proc.pid, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d after %ds" % (port, seconds))


def stop(proc, sig=signal.SIGTERM, seconds=15):
    """Stops one process this suite started, by its PID; SIGKILL if it will not go."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def status_kib(pid, field):
    """A "Field:   123 kB" line of /proc/PID/status, in KiB (0 if absent)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def peak_rss_kib(pid):
    """The most resident memory a process has had since it started (VmHWM), in KiB."""
    return status_kib(pid, "VmHWM")


def tree_cpu_seconds(pid):
    """CPU seconds (user + system) used so far by a process and its children: mrd and its
    workers."""
    pids = [pid]
    for children in glob.glob("/proc/%d/task/*/children" % pid):
        with open(children) as fh:
            pids += [int(x) for x in fh.read().split()]
    ticks = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def med(values):
    return statistics.median(values) if values else None


class Suite:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.build = os.path.abspath(args.build)
        self.bench_bin = os.path.join(self.build, "bench")
        self.mrd = os.path.join(self.build, "server", "mrd")
        self.mrctl = os.path.join(self.build, "client", "mrctl")
        self.work = os.path.abspath(args.work)
        os.makedirs(self.work, exist_ok=True)
        self.raw = []  # every JSON line a tool printed, tagged with its section
        self.sections = {}
        self.notes = []
        # How much of everything: the quick mode trades repetitions for time, never the method.
        self.runs = 2 if self.quick else 7  # big jobs and baselines, per configuration
        self.reps = 1 if self.quick else 5  # tiny-job and head-of-line rounds
        self.tiny_seconds = 1.5 if self.quick else 4.0
        self.tiny_warmup = 0.3 if self.quick else 0.5
        self.connections = [1, 8, 32, 256]

    # ---------- processes ----------

    def tool(self, name):
        return os.path.join(self.bench_bin, name)

    def run_json(self, section, cmd, timeout=600, tag=None):
        """Runs a tool; returns the JSON objects it printed, one per line, and records them."""
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), result.returncode,
                                                       result.stderr.strip()[-2000:]))
        objects = [json.loads(line) for line in result.stdout.splitlines()
                   if line.startswith("{")]
        for o in objects:
            o["section"] = section
            if tag:
                o.update(tag)
            self.raw.append(o)
        return objects

    def start_mrd(self, workers=2, extra=()):
        """Starts mrd on a free port; returns (process, port)."""
        port_file = os.path.join(self.work, "mrd.port")
        if os.path.exists(port_file):
            os.remove(port_file)
        log_file = open(os.path.join(self.work, "mrd.log"), "a")
        proc = subprocess.Popen(
            [self.mrd, "--listen", "127.0.0.1:0", "--port-file", port_file,
             "--workers", str(workers), "--log-level", "warn", *extra],
            stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL)
        log_file.close()
        deadline = time.time() + 15
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("mrd exited with %d; see %s/mrd.log" % (proc.returncode,
                                                                           self.work))
            try:
                with open(port_file) as f:
                    port = int(f.read().strip())
                wait_for_port(port, proc)
                return proc, port
            except (OSError, ValueError):
                time.sleep(0.05)
        stop(proc)
        raise RuntimeError("mrd did not start")

    # ---------- inputs ----------

    def real_corpus(self, mib):
        """The first `mib` MiB (to the next line end) of the licence and changelog texts of this
        machine, in sorted path order, repeated if they are fewer."""
        path = os.path.join(self.work, "real-%d.txt" % mib)
        paths = sorted(set(
            glob.glob("/usr/share/doc/*/copyright") +
            glob.glob("/usr/share/doc/*/changelog*.gz") +
            [p for p in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(p)]))
        target = mib << 20
        parts, size, passes = [], 0, 0
        while size < target:
            passes += 1
            for p in paths:
                try:
                    data = gzip.open(p).read() if p.endswith(".gz") else open(p, "rb").read()
                except OSError:
                    continue
                parts.append(data)
                size += len(data)
                if size >= target:
                    break
        blob = b"".join(parts)
        end = blob.find(b"\n", target)
        blob = blob[:end + 1] if end >= 0 else blob
        with open(path, "wb") as f:
            f.write(blob)
        return {"name": "real-%d" % mib, "path": path, "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(), "source_files": len(paths),
                "passes": passes,
                "what": "licence/copyright/changelog text of this machine"}

    def zipf_corpus(self, mib, seed=42, vocabulary=1000000):
        path = os.path.join(self.work, "zipf-%d-%d-%d.txt" % (mib, seed, vocabulary))
        if not os.path.exists(path) or os.path.getsize(path) < (mib << 20):
            self.run_json("inputs", [self.tool("zipf_corpus"), "--mib", str(mib), "--seed",
                                     str(seed), "--vocabulary", str(vocabulary), "--out", path])
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                h.update(block)
        return {"name": "zipf-%d" % mib, "path": path, "bytes": os.path.getsize(path),
                "sha256": h.hexdigest(), "seed": seed, "vocabulary": vocabulary,
                "what": "Zipf (s=1.0) over %d pseudo-words, seed %d" % (vocabulary, seed)}

    # ---------- 1. word count ----------

    def mrctl_wordcount(self, port, corpus):
        """Times `mrctl wordcount --all` as a user runs it; checks its output's totals."""
        out_path = os.path.join(self.work, "mrctl-wordcount.out")
        with open(out_path, "wb") as out:
            start = time.perf_counter()
            subprocess.run([self.mrctl, "--server", "127.0.0.1:%d" % port, "--quiet",
                            "wordcount", "--all", corpus["path"]],
                           stdout=out, stderr=subprocess.DEVNULL, check=True, timeout=600)
            seconds = time.perf_counter() - start
        distinct = total = 0
        with open(out_path, "rb") as f:
            for line in f:
                count, _ = line.lstrip().split(b"  ", 1)
                distinct += 1
                total += int(count)
        os.remove(out_path)
        return seconds, "%d %d" % (distinct, total)

    def section_wordcount(self):
        corpora = [self.real_corpus(64),
                   self.zipf_corpus(64 if self.quick else 256)]
        self.inputs = corpora
        out = []
        for corpus in corpora:
            log("word count:", corpus["name"], "%.1f MiB" % (corpus["bytes"] / 2**20))
            proc, port = self.start_mrd(workers=2)
            base = {1: [], 2: []}
            base_count = {1: [], 2: []}
            base_cpu = {1: [], 2: []}
            e2e, submit, mrctl, mrd_cpu = [], [], [], []
            digests = set()
            mrctl_check = []
            try:
                # Run by run, baseline and server take turns, so load from elsewhere hits both.
                for r in range(self.runs):
                    for o in self.run_json("wordcount", [
                            self.tool("wordcount_baseline"), "--file", corpus["path"],
                            "--threads", "1,2", "--runs", "1"], tag={"corpus": corpus["name"]}):
                        base[o["threads"]].append(o["total_s"][0])
                        base_count[o["threads"]].append(o["count_s"][0])
                        base_cpu[o["threads"]].append(o["cpu_s"][0])
                        digests.add(("baseline-%d" % o["threads"], o["digest"]))
                    cpu = tree_cpu_seconds(proc.pid)
                    o = self.run_json("wordcount", [
                        self.tool("e2e"), "wordcount", "--server", "127.0.0.1:%d" % port,
                        "--file", corpus["path"], "--runs", "1",
                        "--warmup", "1" if r == 0 else "0"], tag={"corpus": corpus["name"]})[0]
                    if r > 0:  # the first invocation also ran the warm-up
                        mrd_cpu.append((tree_cpu_seconds(proc.pid) - cpu) / o["total_s"][0])
                    e2e.append(o["total_s"][0])
                    submit.append(o["submit_s"][0])
                    digests.add(("mrd", o["digest"]))
                    if r < (1 if self.quick else 3):
                        seconds, check = self.mrctl_wordcount(port, corpus)
                        mrctl.append(seconds)
                        mrctl_check.append(check)
                peak_kib = peak_rss_kib(proc.pid)  # of this server, over every run on this corpus
            finally:
                stop(proc)
            values = {d for _, d in digests}
            distinct_total = " ".join(next(iter(values)).split()[:2]) if values else ""
            out.append({
                "corpus": corpus, "baseline1_s": base[1], "baseline2_s": base[2],
                "baseline1_count_s": base_count[1], "baseline2_count_s": base_count[2],
                "baseline2_cores": [c / t for c, t in zip(base_cpu[2], base[2])],
                "mrd_cores": mrd_cpu,
                "mrd_s": e2e, "mrd_submit_s": submit, "mrctl_s": mrctl,
                "mrd_peak_rss_kib": peak_kib,
                "digests": sorted(digests), "same_result": len(values) == 1,
                "mrctl_totals_match": all(c == distinct_total for c in mrctl_check),
            })
            if len(values) != 1:
                log("MISMATCH: the word counts differ:", sorted(digests))
        self.sections["wordcount"] = out

    # ---------- 2. matrix multiply ----------

    def section_matmul(self):
        sides = [500, 1000, 2000]
        proc, port = self.start_mrd(workers=2)
        points = {n: {"blas1_s": [], "blas2_s": [], "mrd_s": [], "mrd_submit_s": [],
                      "mrctl_s": [], "blas2_cores": [], "mrd_cores": [], "error": None}
                  for n in sides}
        try:
            for r in range(self.runs):
                log("matmul: run %d of %d" % (r + 1, self.runs))
                for o in self.run_json("matmul", [
                        self.tool("matmul_baseline"), "--n", ",".join(map(str, sides)),
                        "--threads", "1,2", "--runs", "1"]):
                    points[o["n"]]["blas%d_s" % o["threads"]].append(o["seconds"][0])
                    if o["threads"] == 2:
                        points[o["n"]]["blas2_cores"].append(o["cpu_s"][0] / o["seconds"][0])
                for n in sides:
                    cpu = tree_cpu_seconds(proc.pid)
                    o = self.run_json("matmul", [
                        self.tool("e2e"), "matmul", "--server", "127.0.0.1:%d" % port,
                        "--n", str(n), "--runs", "1",
                        "--warmup", "1" if r == 0 else "0"])[0]
                    if r > 0:
                        points[n]["mrd_cores"].append(
                            (tree_cpu_seconds(proc.pid) - cpu) / o["total_s"][0])
                    points[n]["mrd_s"].append(o["total_s"][0])
                    points[n]["mrd_submit_s"].append(o["submit_s"][0])
                    points[n]["error"] = max(points[n]["error"] or 0, o["max_abs_error"])
            for n in sides:
                for _ in range(1 if self.quick else 2):
                    start = time.perf_counter()
                    subprocess.run([self.mrctl, "--server", "127.0.0.1:%d" % port, "--quiet",
                                    "matmul", "--random", str(n)], check=True, timeout=600,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    points[n]["mrctl_s"].append(time.perf_counter() - start)
            points[2000]["npy"] = self.matmul_npy(port, 2000)
        finally:
            stop(proc)
        self.sections["matmul"] = [dict(n=n, **points[n]) for n in sides]

    def matmul_npy(self, port, n):
        """`mrctl matmul A.npy B.npy --out C.npy` as a user runs it, against numpy computing the
        same product in one process (2 threads), taking turns run by run."""
        # Debian's python3-numpy is for Debian's python3, which need not be first on PATH.
        python = next((p for p in (sys.executable, "/usr/bin/python3") if os.path.exists(p) and
                       subprocess.run([p, "-c", "import numpy"], capture_output=True).returncode
                       == 0), None)
        if python is None:
            self.notes.append("numpy is missing (python3-numpy): `mrctl matmul A.npy B.npy` "
                              "was not measured")
            return None
        a, b, c = (os.path.join(self.work, name) for name in ("A.npy", "B.npy", "C.npy"))
        numpy_script = ("import sys, time, numpy as np\n"
                        "a, b = np.load(sys.argv[1]), np.load(sys.argv[2])\n"
                        "t = time.perf_counter(); c = a @ b; t = time.perf_counter() - t\n"
                        "err = float(np.abs(c - np.load(sys.argv[3])).max())\n"
                        "print(t, err)\n")
        subprocess.run([python, "-c",
                        "import numpy as np, sys\n"
                        "r = np.random.default_rng(1)\n"
                        "np.save(sys.argv[1], r.random((%d, %d)))\n"
                        "np.save(sys.argv[2], r.random((%d, %d)))\n" % (n, n, n, n), a, b],
                       check=True, timeout=300)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
        out = {"n": n, "mrctl_s": [], "numpy_s": [], "max_abs_error": 0.0}
        for r in range(max(3, self.runs // 2)):
            log("matmul: mrctl with .npy files, run %d" % (r + 1))
            start = time.perf_counter()
            subprocess.run([self.mrctl, "--server", "127.0.0.1:%d" % port, "--quiet", "matmul",
                            a, b, "--out", c], check=True, timeout=600,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out["mrctl_s"].append(time.perf_counter() - start)
            # numpy's own product, checked against the C.npy mrctl wrote.
            seconds, err = subprocess.run([python, "-c", numpy_script, a, b, c],
                                          check=True, timeout=300, capture_output=True, text=True,
                                          env=env).stdout.split()
            out["numpy_s"].append(float(seconds))
            out["max_abs_error"] = max(out["max_abs_error"], float(err))
        return out

    # ---------- 3. tiny jobs ----------

    def start_redis(self):
        port = free_port()
        proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", self.work,
             "--logfile", os.path.join(self.work, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_for_port(port, proc)
        return proc, port

    def start_gearman(self):
        """gearmand with its defaults, plus two workers; returns ([processes], port)."""
        port = free_port()
        gearmand = subprocess.Popen(
            ["gearmand", "--listen=127.0.0.1", "--port=%d" % port, "--backlog=1024",
             "--log-file=%s" % os.path.join(self.work, "gearmand.log"),
             "--pid-file=%s" % os.path.join(self.work, "gearmand.pid"), "--verbose=ERROR"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        procs = [gearmand]
        try:
            wait_for_port(port, gearmand)
            for _ in range(2):
                procs.append(subprocess.Popen(
                    [self.tool("gearman_bench"), "worker", "--server", "127.0.0.1:%d" % port],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL))
            time.sleep(0.3)
        except Exception:
            for p in reversed(procs):
                stop(p)
            raise
        return procs, port

    def redis_lpush(self, port, clients):
        n = max(20000, int(60000 * self.tiny_seconds))
        result = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "lpush",
             "-c", str(clients), "-n", str(n), "-P", "1", "--csv"],
            capture_output=True, text=True, timeout=300, check=True)
        row = [line for line in result.stdout.splitlines() if line.startswith('"LPUSH"')][0]
        fields = [x.strip('"') for x in row.split(",")]
        o = {"tool": "redis-benchmark", "connections": clients, "requests": n,
             "rate": float(fields[1]), "mean_ms": float(fields[2]), "p50_ms": float(fields[4]),
             "p99_ms": float(fields[6]), "max_ms": float(fields[7]), "section": "tiny"}
        self.raw.append(o)
        return o

    def section_tiny(self):
        have_redis = shutil.which("redis-server") and shutil.which("redis-benchmark")
        have_gearman = shutil.which("gearmand") and os.path.exists(self.tool("gearman_bench"))
        if not have_redis:
            self.notes.append("redis-server/redis-benchmark not installed: no Redis reference")
        if not have_gearman:
            self.notes.append("gearmand or gearman_bench missing: no gearman reference")
        rows = {c: {"roundtrip": [], "submit": [], "redis": [], "gearman": []}
                for c in self.connections}
        lg = ["--seconds", str(self.tiny_seconds), "--warmup", str(self.tiny_warmup)]
        for rep in range(self.reps):
            redis = gear = None
            try:
                if have_redis:
                    redis, redis_port = self.start_redis()
                if have_gearman:
                    gear, gear_port = self.start_gearman()
                for c in self.connections:
                    log("tiny jobs: round %d of %d, %d connections" % (rep + 1, self.reps, c))
                    # A fresh server per point, so no point inherits another's retained jobs.
                    proc, port = self.start_mrd(workers=2)
                    try:
                        rows[c]["roundtrip"].append(self.run_json("tiny", [
                            self.tool("loadgen"), "roundtrip", "--server",
                            "127.0.0.1:%d" % port, "-c", str(c), *lg])[0])
                    finally:
                        stop(proc)
                    # SUBMIT at full speed queues far more than the default 10,000 unfinished
                    # jobs within a second; QUEUE_FULL answers would not be accepted jobs.
                    proc, port = self.start_mrd(workers=2, extra=["--max-queued-jobs",
                                                                   "16777216"])
                    try:
                        rows[c]["submit"].append(self.run_json("tiny", [
                            self.tool("loadgen"), "submit", "--server", "127.0.0.1:%d" % port,
                            "-c", str(c), *lg])[0])
                    finally:
                        stop(proc)
                    if redis:
                        rows[c]["redis"].append(self.redis_lpush(redis_port, c))
                    if gear:
                        rows[c]["gearman"].append(self.run_json("tiny", [
                            self.tool("gearman_bench"), "client", "--server",
                            "127.0.0.1:%d" % gear_port, "-c", str(c), *lg])[0])
            finally:
                stop(redis)
                for p in reversed(gear or []):
                    stop(p)
        self.sections["tiny"] = [dict(connections=c, **rows[c]) for c in self.connections]

    # ---------- 4. head-of-line ----------

    def section_hol(self):
        corpus = self.real_corpus(64)
        without, with_big, with_big_durable = [], [], []
        for rep in range(self.reps):
            log("head-of-line: round %d of %d" % (rep + 1, self.reps))
            proc, port = self.start_mrd(workers=2)
            try:
                common = [self.tool("loadgen"), "roundtrip", "--server", "127.0.0.1:%d" % port,
                          "-c", "8", "--warmup", str(self.tiny_warmup)]
                without.append(self.run_json("hol", common + [
                    "--seconds", "2" if self.quick else "3"], tag={"big_job": False})[0])
                with_big.append(self.run_json("hol", common + [
                    "--background-file", corpus["path"],
                    "--background-runs", "2" if self.quick else "3"],
                    tag={"big_job": True})[0])
            finally:
                stop(proc)
            # The same with --data-dir: every SUBMIT, the big one included, is committed first.
            data_dir = tempfile.mkdtemp(prefix="hol-data-", dir=self.work)
            proc, port = self.start_mrd(workers=2, extra=("--data-dir", data_dir))
            try:
                with_big_durable.append(self.run_json("hol", [
                    self.tool("loadgen"), "roundtrip", "--server", "127.0.0.1:%d" % port,
                    "-c", "8", "--warmup", str(self.tiny_warmup),
                    "--background-file", corpus["path"],
                    "--background-runs", "2" if self.quick else "3"],
                    tag={"big_job": True, "data_dir": True})[0])
            finally:
                stop(proc)
                shutil.rmtree(data_dir, ignore_errors=True)
        self.sections["hol"] = {"without": without, "with": with_big,
                                "with_data_dir": with_big_durable, "corpus": corpus["name"]}

    # ---------- 5. memory ----------

    def stats(self, port):
        return self.run_json("memory", [self.tool("loadgen"), "stats", "--server",
                                        "127.0.0.1:%d" % port])[0]

    def section_memory(self):
        out = {}
        n = 10000
        log("memory: %d idle connections" % n)
        proc, port = self.start_mrd(workers=2)
        try:
            # Warm the paths a connection takes, then measure without, with, and after.
            self.run_json("memory", [self.tool("loadgen"), "idle", "--server",
                                     "127.0.0.1:%d" % port, "-c", "100", "--hold", "0"])
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            holder = subprocess.Popen(
                [self.tool("loadgen"), "idle", "--server", "127.0.0.1:%d" % port, "-c", str(n),
                 "--hold", "120"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                ready = json.loads(holder.stdout.readline())
                time.sleep(1.0)
                with_conns = rss_kib(proc.pid)
            finally:
                holder.stdin.close()  # the holder closes its connections and exits
                holder.wait(timeout=60)
            time.sleep(1.0)
            after = rss_kib(proc.pid)
            out["idle"] = {"connections": n, "ready": ready, "rss_before_kib": before,
                           "rss_with_kib": with_conns, "rss_after_close_kib": after,
                           "bytes_per_connection": (with_conns - before) * 1024 / n}
        finally:
            stop(proc)

        jobs = 20000
        log("memory: %d retained tiny jobs" % jobs)
        proc, port = self.start_mrd(workers=2)
        try:
            self.run_json("memory", [self.tool("loadgen"), "roundtrip", "--server",
                                     "127.0.0.1:%d" % port, "-c", "32", "--warmup", "0",
                                     "--max-jobs", "500", "--seconds", "30"])
            s0 = self.wait_idle(port)
            before = rss_kib(proc.pid)
            self.run_json("memory", [self.tool("loadgen"), "roundtrip", "--server",
                                     "127.0.0.1:%d" % port, "-c", "32", "--warmup", "0",
                                     "--max-jobs", str(jobs), "--seconds", "60"])
            s1 = self.wait_idle(port)
            time.sleep(0.5)
            after = rss_kib(proc.pid)
            added = s1["jobs_submitted"] - s0["jobs_submitted"]
            out["retained"] = {
                "jobs": added, "rss_before_kib": before, "rss_after_kib": after,
                "bytes_per_job": (after - before) * 1024 / max(1, added),
                "result_bytes_per_job": (s1["retained_result_bytes"] -
                                         s0["retained_result_bytes"]) / max(1, added),
                "stats_before": s0, "stats_after": s1}
        finally:
            stop(proc)
        self.sections["memory"] = out

    def wait_idle(self, port, seconds=30):
        """The server's counters once no job is unfinished (bounded wait)."""
        deadline = time.time() + seconds
        while True:
            s = self.stats(port)
            if s["jobs_unfinished"] == 0 or time.time() > deadline:
                return s
            time.sleep(0.1)

    # ---------- 6. scaling ----------

    def section_scaling(self):
        corpus = self.real_corpus(64)
        runs = 1 if self.quick else 3
        base = {1: [], 2: []}
        base_cores = []

        def baseline():
            """One baseline run before each point: the dashed lines are medians over all."""
            for o in self.run_json("scaling", [self.tool("wordcount_baseline"), "--file",
                                               corpus["path"], "--threads", "1,2", "--runs", "1"]):
                base[o["threads"]].append(o["total_s"][0])
                if o["threads"] == 2:
                    base_cores.append(o["cpu_s"][0] / o["total_s"][0])

        def point(port, proc, extra, tag):
            """Timed runs of one configuration, and the cores mrd kept busy meanwhile."""
            cpu = tree_cpu_seconds(proc.pid)
            o = self.run_json("scaling", [
                self.tool("e2e"), "wordcount", "--server", "127.0.0.1:%d" % port,
                "--file", corpus["path"], "--runs", str(runs), "--warmup", "0", *extra],
                tag=tag, timeout=900)[0]
            cores = (tree_cpu_seconds(proc.pid) - cpu) / sum(o["total_s"])
            return {"mrd_s": o["total_s"], "map_tasks": o["map_tasks"], "mrd_cores": cores}

        def warm_up(port):
            self.run_json("scaling", [self.tool("e2e"), "wordcount", "--server",
                                      "127.0.0.1:%d" % port, "--file", corpus["path"],
                                      "--runs", "1", "--warmup", "0"], tag={"warmup": True})

        workers = []
        for w in [1, 2, 3, 4]:
            log("scaling: %d workers" % w)
            baseline()
            proc, port = self.start_mrd(workers=w)
            try:
                warm_up(port)
                workers.append(dict(workers=w, **point(port, proc, [], {"workers": w})))
            finally:
                stop(proc)
        chunks = []
        proc, port = self.start_mrd(workers=2)
        try:
            warm_up(port)
            for kib in [4, 16, 64, 256, 1024, 4096, 16384, 65536]:
                log("scaling: chunk %d KiB" % kib)
                baseline()
                chunks.append(dict(chunk_bytes=kib * 1024, **point(
                    port, proc, ["--chunk-bytes", str(kib * 1024)], {"chunk_kib": kib})))
        finally:
            stop(proc)
        self.sections["scaling"] = {
            "corpus": corpus["name"], "bytes": corpus["bytes"], "workers": workers,
            "chunks": chunks, "baseline1_s": base[1], "baseline2_s": base[2],
            "baseline2_cores": base_cores}

    # ---------- the whole run ----------

    # ---------- 7. TLS ----------

    def tls_files(self):
        """A CA and a certificate for 127.0.0.1 it signs, made with openssl (docs/security.md)."""
        d = os.path.join(self.work, "tls")
        os.makedirs(d, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        steps = [
            ["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=bench CA"],
            ["openssl", "req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=bench"],
            ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem"]]
        with open(os.path.join(d, "server.ext"), "w") as fh:
            fh.write("subjectAltName=IP:127.0.0.1\n")
        for step in steps:
            subprocess.run(step, cwd=d, check=True, capture_output=True)
        return {name: os.path.join(d, name) for name in ["ca.pem", "server.pem", "server.key"]}

    def start_mrd_tls(self, files):
        """mrd with a plain and a TLS listener; returns (process, plain port, TLS port)."""
        tls_port_file = os.path.join(self.work, "mrd.tls-port")
        if os.path.exists(tls_port_file):
            os.remove(tls_port_file)
        proc, port = self.start_mrd(workers=2, extra=[
            "--tls-listen", "127.0.0.1:0", "--tls-port-file", tls_port_file,
            "--tls-cert-file", files["server.pem"], "--tls-key-file", files["server.key"]])
        with open(tls_port_file) as fh:  # written before the plain port's file
            return proc, port, int(fh.read().strip())

    def section_tls(self):
        files = self.tls_files()
        tls = ["--tls", "--cacert", files["ca.pem"]]
        out = {"roundtrip": {"plain": [], "tls": []}, "wordcount": {"plain": [], "tls": []}}
        lg = ["-c", "32", "--seconds", str(self.tiny_seconds), "--warmup", str(self.tiny_warmup)]
        for rep in range(self.reps):
            log("tls: round trips, round %d of %d" % (rep + 1, self.reps))
            proc, port, tls_port = self.start_mrd_tls(files)
            try:
                # Alternating, each against the same server: the ratio is what counts.
                out["roundtrip"]["plain"].append(self.run_json("tls", [
                    self.tool("loadgen"), "blocking", "--server", "127.0.0.1:%d" % port, *lg])[0])
                out["roundtrip"]["tls"].append(self.run_json("tls", [
                    self.tool("loadgen"), "blocking", "--server", "127.0.0.1:%d" % tls_port,
                    *lg, *tls])[0])
            finally:
                stop(proc)
        corpus = self.real_corpus(64)
        out["corpus"] = corpus
        proc, port, tls_port = self.start_mrd_tls(files)
        try:
            for rep in range(2 if self.quick else 4):
                log("tls: 64 MiB word count, round %d" % (rep + 1))
                for how, where, more in [("plain", port, []), ("tls", tls_port, tls)]:
                    o = self.run_json("tls", [
                        self.tool("e2e"), "wordcount", "--server", "127.0.0.1:%d" % where,
                        "--file", corpus["path"], "--runs", "2", "--warmup", "1", *more])[0]
                    out["wordcount"][how].extend(o["total_s"])
            n = 2000
            log("tls: %d idle TLS connections" % n)
            self.run_json("tls", [self.tool("loadgen"), "idle", "--server",
                                  "127.0.0.1:%d" % tls_port, "-c", "100", "--hold", "0", *tls])
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            holder = subprocess.Popen(
                [self.tool("loadgen"), "idle", "--server", "127.0.0.1:%d" % tls_port, "-c",
                 str(n), "--hold", "120", *tls],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                ready = json.loads(holder.stdout.readline())
                time.sleep(1.0)
                with_conns = rss_kib(proc.pid)
            finally:
                holder.stdin.close()
                holder.wait(timeout=60)
            out["idle"] = {"connections": n, "ready": ready, "rss_before_kib": before,
                           "rss_with_kib": with_conns,
                           "bytes_per_connection": (with_conns - before) * 1024 / n}
        finally:
            stop(proc)
        self.sections["tls"] = out

    def machine(self):
        def out(cmd):
            try:
                return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
            except OSError:
                return ""
        lscpu = {}
        for line in out(["lscpu"]).splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                lscpu[k.strip()] = v.strip()
        mem = out(["free", "-m"]).splitlines()
        commit = out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
        dirty = bool(out(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
                     .strip())
        return {
            "nproc": int(out(["nproc"]).strip() or 0),
            "cpu": lscpu.get("Model name", "?"),
            "cpu_mhz": lscpu.get("CPU MHz", lscpu.get("BogoMIPS", "?")),
            "hypervisor": lscpu.get("Hypervisor vendor", ""),
            "l2": lscpu.get("L2 cache", "?"), "l3": lscpu.get("L3 cache", "?"),
            "memory": mem[1].split()[1] + " MiB" if len(mem) > 1 else "?",
            "kernel": os.uname().release,
            "compiler": out(["c++", "--version"]).splitlines()[0] if out(["c++", "--version"])
            else "?",
            "commit": commit + ("+uncommitted changes" if dirty else ""),
            "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
            "redis": out(["redis-server", "--version"]).strip(),
            "gearmand": out(["gearmand", "--version"]).strip(),
        }

    def run(self):
        started = time.time()
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        meta = {"date": now,
                "command": "bash bench/run.sh" + (" --quick" if self.quick else ""),
                "quick": self.quick, "runs": self.runs, "reps": self.reps,
                "tiny_seconds": self.tiny_seconds, "tiny_warmup": self.tiny_warmup,
                "machine": self.machine(), "load": {}, "section_seconds": {},
                "section_dates": {}, "inputs": [], "notes": []}
        only = self.args.only.split(",") if self.args.only else SECTIONS
        path = os.path.join(RESULTS, "latest.json")
        raw = []
        if self.args.only and os.path.exists(path):
            # Some sections only: merged into the last full run, which keeps its other figures.
            with open(path) as fh:
                old = json.load(fh)
            self.sections = {k: v for k, v in old["sections"].items() if k not in only}
            raw = [o for o in old["raw"] if o.get("section") not in only]
            meta = old["meta"]
            meta["command"] += "; then bash bench/run.sh%s --only %s" % (
                " --quick" if self.quick else "", self.args.only)
            meta["machine"]["commit"] += "; %s for %s" % (self.machine()["commit"],
                                                          self.args.only)
        self.inputs = meta.get("inputs", [])
        for name in SECTIONS:
            if name not in only:
                continue
            meta["load"][name + "_before"] = loadavg()
            t = time.time()
            getattr(self, "section_" + name)()
            meta["load"][name + "_after"] = loadavg()
            meta["section_seconds"][name] = round(time.time() - t, 1)
            meta["section_dates"][name] = now
        meta["seconds"] = round(sum(meta["section_seconds"].values()), 1)
        meta["inputs"] = self.inputs
        meta["notes"] = sorted(set(meta.get("notes", []) + self.notes))
        os.makedirs(RESULTS, exist_ok=True)
        with open(path, "w") as fh:
            json.dump({"meta": meta, "sections": self.sections, "raw": raw + self.raw}, fh,
                      indent=1)
        log("results in", path, "after %.0f s" % (time.time() - started))
        return path


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    parser.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                       "mrd-bench"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--corpus-only", action="store_true",
                        help="write the 64 MiB real-text corpus into --work, print its path")
    args = parser.parse_args()
    if args.corpus_only:
        print(Suite(args).real_corpus(64)["path"])
        return
    sys.path.insert(0, HERE)
    import report
    if not args.report_only:
        Suite(args).run()
    report.main(os.path.join(RESULTS, "latest.json"))


if __name__ == "__main__":
    main()
