#!/usr/bin/env python3
"""cluster_soak: a cluster of three mrd nodes sharing one Redis (docs/scale-out.md) under a bounded
storm of small real jobs, while nodes are killed with SIGKILL and restarted, and Redis itself is
killed and restarted once; then every acknowledged job is checked against a reference computed
here.

    python3 bench/cluster_soak.py --mrd build/server/mrd [--seconds 60] [--clients 8]

It starts its own redis-server (a free loopback port, a temporary directory, AOF with
`appendfsync always`, no RDB) and three nodes (`--workers 1 --lease-ms 1000`, logs in the same
directory). Each client thread submits word counts, bigram counts, statistics of numbers and small
matrix products (and, one job in a hundred, a word count of 1 to 2.5 MiB, long enough to be cut
by a kill), every one with its own idempotency key, to a random node; on a connection error
or UNAVAILABLE it sends the same SUBMIT (same bytes, same key) to another node, with back-off. Some
of the jobs are fetched while the faults go on, some are cancelled (before or after they finish;
half of those are then submitted again with their key, and resubmit_after_cancel says whether
that gave the cancelled job's id or a new job), and a few acknowledged SUBMITs are sent again to
another node to check that the key gives back the same id. Meanwhile a fault thread kills a
random node every few seconds and restarts it on its old port, and in the middle kills
redis-server and restarts it on the same port and directory. At the end the load stops, and every
acknowledged job is fetched (from a random node) until it has finished or --final-wait runs out.

Prints one JSON object: acknowledged, correct, cancelled, failed_with_reason (with the reasons),
lost (acknowledged, then unknown, expired, or never finished), wrong (a result that differs, a
cancelled job that has a result, a job cancelled that nobody cancelled), idempotency_mismatches,
missing_during_run (a FETCH or CANCEL that said unknown or expired, while the faults went on, of a
job the final check found), node_kills, redis_restarts, resends, and samples of every problem seen
while the faults went on. Exits 1 if any job was lost or wrong or a key named two jobs, 0
otherwise; the temporary directory (node and Redis logs) is then kept, and its path printed on
stderr. Everything runs on 127.0.0.1, stops by itself, and every process it started is stopped by
its PID (and process group) at the end, even on errors.
"""
from __future__ import annotations

import argparse
import atexit
import collections
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
import mrd_client as mrd  # noqa: E402
from mrd_client import (ConnectionLost, CountsResult, Document, Matrix, MatrixPair,  # noqa: E402
                        Numbers, ServerError, StatisticsResult, Status)

LEASE_MS = 1000
NODE_NAMES = ("a", "b", "c")
# A SUBMIT (or CANCEL, FETCH) that meets one of these is sent again, to another node.
RETRY_STATUSES = {Status.UNAVAILABLE, Status.SERVER_BUSY, Status.QUEUE_FULL,
                  Status.SHUTTING_DOWN, Status.SERVER_ERROR}
SUBMIT_RETRY_SECONDS = 30.0  # how long one request is resent before the client gives up on it
CONNECT_TIMEOUT = 10.0
SAMPLES = 20  # examples kept of each kind of problem

# --------------------------------------------------------------------------------------------
# References (docs/protocol.md section 7): what each job must answer, computed here
# --------------------------------------------------------------------------------------------

WORD = re.compile(rb"[A-Za-z0-9\x80-\xff]+")


def words_of(text: bytes) -> List[bytes]:
    """A word: a maximal run of ASCII letters and digits and bytes >= 0x80; ASCII lower-cased."""
    return [w.lower() for w in WORD.findall(text)]  # bytes.lower() touches ASCII only


def ordered_counts(counts: Dict[bytes, int]) -> List[Tuple[bytes, int]]:
    """Most frequent first, ties by key in byte order (section 8, kind 0)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def reference_words(texts: List[bytes]) -> List[Tuple[bytes, int]]:
    counts: Dict[bytes, int] = collections.Counter()
    for text in texts:
        counts.update(words_of(text))
    return ordered_counts(counts)


def reference_bigrams(texts: List[bytes]) -> List[Tuple[bytes, int]]:
    """Pairs of consecutive words within a document, key "w1 w2"."""
    counts: Dict[bytes, int] = collections.Counter()
    for text in texts:
        words = words_of(text)
        counts.update(a + b" " + b for a, b in zip(words, words[1:]))
    return ordered_counts(counts)


def reference_stats(values: List[float]) -> Tuple:
    if not values:
        nan = float("nan")
        return (0, nan, nan, nan, nan, nan)
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    frequency = collections.Counter(0.0 if v == 0 else v for v in ordered)
    top = max(frequency.values())
    mode = min(v for v, c in frequency.items() if c == top)
    return (n, math.fsum(values) / n, median, mode, ordered[0], ordered[-1])


def reference_matmul(a: Matrix, b: Matrix) -> Matrix:
    values = []
    for r in range(a.rows):
        for c in range(b.cols):
            values.append(float(sum(a.values[r * a.cols + k] * b.values[k * b.cols + c]
                                    for k in range(a.cols))))
    return Matrix(a.rows, b.cols, values)


def same_float(x: float, y: float, relative: float = 0.0) -> bool:
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y or abs(x - y) <= relative * max(abs(x), abs(y))


def check_result(kind: str, expected, result) -> Optional[str]:
    """None if `result` is `expected`'s, else what differs."""
    if kind in ("words", "words_large", "bigrams"):
        if not isinstance(result, CountsResult):
            return f"a {type(result).__name__} instead of counts"
        got = [(bytes(k), n) for k, n in result.entries]
        if got == expected:
            return None
        if sorted(got) == sorted(expected):
            return "the right counts in the wrong order"
        first = next((i for i, (g, e) in enumerate(zip(got, expected)) if g != e),
                     min(len(got), len(expected)))
        return f"{len(got)} entries, {len(expected)} expected; first difference at entry {first}"
    if kind == "numbers":
        if not isinstance(result, StatisticsResult):
            return f"a {type(result).__name__} instead of statistics"
        got = (result.count, result.mean, result.median, result.mode, result.min, result.max)
        ok = got[0] == expected[0] and same_float(got[1], expected[1], 1e-12) and all(
            same_float(g, e) for g, e in zip(got[2:], expected[2:]))
        return None if ok else f"statistics {got}, expected {expected}"
    if kind == "matmul":
        if not isinstance(result, Matrix):
            return f"a {type(result).__name__} instead of a matrix"
        if (result.rows, result.cols) != (expected.rows, expected.cols):
            return f"a {result.rows}x{result.cols} matrix, expected {expected.rows}x{expected.cols}"
        if all(same_float(g, e, 1e-9) for g, e in zip(result.values, expected.values)):
            return None
        return "matrix values differ"
    return f"unknown kind {kind}"


# --------------------------------------------------------------------------------------------
# Random jobs
# --------------------------------------------------------------------------------------------

VOCABULARY = [w.encode() for w in (
    "the of and to in is it that was for on are as with his they at be this from I have or by "
    "one had not but what all were when we there can an your which their said if do will each "
    "about how up out them then she many some so these would other into has more her two like "
    "Map Reduce MAP reduce Redis NODE node lease Lease job JOB 42 7 2024 x1 a0b "
    "café naïve Straße résumé 日本 données").split()]
SEPARATORS = [b" ", b" ", b" ", b"  ", b"\n", b", ", b". ", b"-", b"'", b"\t", b"!? ", b"/", b"_"]


def random_text(rng: random.Random) -> bytes:
    count = rng.choice((0, rng.randint(1, 8), rng.randint(10, 200), rng.randint(200, 600)))
    parts = []
    for _ in range(count):
        # Zipf-ish: a few words often, most rarely, so that counts have ties and non-ties.
        parts.append(VOCABULARY[min(int(rng.paretovariate(1.2)) - 1, len(VOCABULARY) - 1)]
                     if rng.random() < 0.7 else rng.choice(VOCABULARY))
        parts.append(rng.choice(SEPARATORS))
    return b"".join(parts)


@dataclass
class JobSpec:
    kind: str
    mapper: str
    reducer: str
    input: object
    expected: object
    chunk_bytes: int = 0
    partitions: int = 0

    def submit_args(self, key: str) -> dict:
        return dict(mapper=self.mapper, reducer=self.reducer, input=self.input,
                    chunk_bytes=self.chunk_bytes, partitions=self.partitions,
                    idempotency_key=key)


def large_word_count(rng: random.Random) -> JobSpec:
    """A word count of 1 to 2.5 MiB (an input of two or three pieces in Redis, tens of map
    tasks: long enough for a node to be killed in the middle): a random block said many times."""
    block = random_text(rng) + b" "
    while len(block) < 2000:
        block += random_text(rng) + b"\n"
    repeats = rng.randint(1 << 20, 5 << 19) // len(block)
    expected = ordered_counts({w: n * repeats for w, n in reference_words([block])})
    return JobSpec("words_large", "words", "sum", [Document("large", block * repeats)], expected,
                   rng.choice((0, 1 << 16)), rng.choice((0, 2, 4)))


def random_job(rng: random.Random) -> JobSpec:
    if rng.random() < 0.01:
        return large_word_count(rng)
    kind = rng.choices(("words", "bigrams", "numbers", "matmul"), weights=(50, 20, 20, 10))[0]
    # Small chunks and several partitions now and then: jobs of several map and reduce tasks.
    chunk = rng.choice((0, 0, rng.randint(16, 64), rng.randint(64, 1024)))
    partitions = rng.choice((0, 0, 1, rng.randint(2, 4)))
    if kind in ("words", "bigrams"):
        texts = [random_text(rng) for _ in range(rng.randint(1, 4))]
        documents = [Document(f"doc{i}", t) for i, t in enumerate(texts)]
        expected = reference_words(texts) if kind == "words" else reference_bigrams(texts)
        return JobSpec(kind, kind, "sum", documents, expected, chunk, partitions)
    if kind == "numbers":
        count = rng.choice((0, rng.randint(1, 5), rng.randint(5, 300)))
        spread = rng.choice((4, 40, 4000))
        values = [rng.randint(-spread, spread) / 4 for _ in range(count)]
        if values and rng.random() < 0.2:
            values[rng.randrange(len(values))] = -0.0
        return JobSpec(kind, "numbers", "stats", Numbers(values), reference_stats(values),
                       chunk, partitions)
    n, k, m = rng.randint(1, 8), rng.randint(1, 8), rng.randint(1, 8)
    a = Matrix(n, k, [float(rng.randint(-9, 9)) for _ in range(n * k)])
    b = Matrix(k, m, [float(rng.randint(-9, 9)) for _ in range(k * m)])
    return JobSpec(kind, "matmul", "rows", MatrixPair(a, b), reference_matmul(a, b), chunk, 0)


# --------------------------------------------------------------------------------------------
# Processes: redis-server and the nodes, each in its own process group, stopped by PID
# --------------------------------------------------------------------------------------------

_started: List[subprocess.Popen] = []
_started_lock = threading.Lock()


def spawn(args: List[str], log_path: str) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    with _started_lock:
        _started.append(proc)
    return proc


def stop_everything() -> None:
    """SIGKILL every process this script started, and what is left of their process groups
    (a node's workers), by their ids. Idempotent."""
    with _started_lock:
        procs = list(_started)
        _started.clear()
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group is the one it leads (its own pid)
        except OSError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def append_line(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def redis_pipeline(port: int, commands: List[Tuple[str, ...]], timeout: float = 10.0) -> list:
    """Commands over RESP on one connection, sent at once; their decoded replies (an error reply
    as an Exception)."""
    payload = b"".join(
        b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode())
                                           for a in args)
        for args in commands)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        f = s.makefile("rb")

        def read():
            line = f.readline()
            if not line:
                raise ConnectionError("redis closed the connection")
            kind, rest = line[:1], line[1:-2]
            if kind == b"+":
                return rest.decode()
            if kind == b"-":
                return Exception(rest.decode())
            if kind == b":":
                return int(rest)
            if kind == b"$":
                n = int(rest)
                return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
            if kind == b"*":
                n = int(rest)
                return None if n < 0 else [read() for _ in range(n)]
            raise ConnectionError(f"unexpected RESP {line!r}")
        return [read() for _ in commands]


def redis_command(port: int, *args: str, timeout: float = 2.0):
    return redis_pipeline(port, [args], timeout)[0]


class Redis:
    def __init__(self, binary: str, work: str):
        self.binary = binary
        self.dir = os.path.join(work, "redis")
        os.makedirs(self.dir)
        self.log = os.path.join(work, "redis.log")
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        append_line(self.log, f"=== cluster_soak: starting redis-server at {time.strftime('%T')}")
        self.proc = spawn([self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                           "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always",
                           "--save", "", "--daemonize", "no", "--logfile", self.log], self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}); see {self.log}")
            try:
                if redis_command(self.port, "PING", timeout=0.5) == "PONG":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer PING; see {self.log}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Node:
    def __init__(self, name: str, binary: str, work: str, redis_port: int, log_level: str):
        self.name = name
        self.binary = binary
        self.log = os.path.join(work, f"node-{name}.log")
        self.port_file = os.path.join(work, f"port-{name}")
        self.redis_port = redis_port
        self.log_level = log_level
        self.port = 0  # 0 while it is down; clients read it under `lock`
        self.lock = threading.Lock()
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def current_port(self) -> int:
        with self.lock:
            return self.port

    def start(self, port: int = 0) -> None:
        """Starts the node on `port` (0: any free one), falling back to a free port if the old
        one cannot be bound again."""
        for attempt in range(4):
            want = port if attempt < 3 else 0
            try:
                os.remove(self.port_file)
            except FileNotFoundError:
                pass
            self.starts += 1
            append_line(self.log, f"=== cluster_soak: start #{self.starts} of node {self.name} "
                                  f"on 127.0.0.1:{want} at {time.strftime('%T')}")
            self.proc = spawn([
                self.binary, "--redis", f"redis://127.0.0.1:{self.redis_port}",
                "--node-name", self.name, "--lease-ms", str(LEASE_MS), "--workers", "1",
                "--listen", f"127.0.0.1:{want}", "--port-file", self.port_file,
                "--log-level", self.log_level], self.log)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with open(self.port_file) as f:
                        text = f.read().strip()
                    if text:
                        with self.lock:
                            self.port = int(text)
                        return
                except FileNotFoundError:
                    pass
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            time.sleep(0.2)
        raise RuntimeError(f"node {self.name} did not start; see {self.log}")

    def kill(self) -> None:
        with self.lock:
            self.port = 0
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


# --------------------------------------------------------------------------------------------
# What the run saw
# --------------------------------------------------------------------------------------------


@dataclass
class Job:
    id: int
    spec: JobSpec
    key: str
    client: int
    node: str  # the node that acknowledged it
    t_ack: float  # seconds since the start
    cancel: str = ""  # "", "confirmed" (CANCEL answered OK) or "uncertain" (no answer)


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: Dict[int, Job] = {}
        self.counters: Dict[str, int] = collections.Counter()
        self.retry_causes: Dict[str, int] = collections.Counter()
        self.problems: Dict[str, List[dict]] = collections.defaultdict(list)
        self.problem_counts: Dict[str, int] = collections.Counter()

    def count(self, name: str, by: int = 1) -> None:
        with self.lock:
            self.counters[name] += by

    def problem(self, kind: str, **detail) -> None:
        with self.lock:
            self.problem_counts[kind] += 1
            if len(self.problems[kind]) < SAMPLES:
                self.problems[kind].append(detail)

    def acknowledged(self, job: Job) -> None:
        with self.lock:
            other = self.jobs.get(job.id)
            if other is not None and other.key != job.key:
                self.problem_counts["id_collisions"] += 1
                self.problems["id_collisions"].append(
                    {"id": job.id, "keys": [other.key, job.key]})
            self.jobs[job.id] = job


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


class GaveUp(Exception):
    pass


class Client:
    """One client thread: its own connections (one per node, made again when a node moved)."""

    def __init__(self, index: int, soak: "Soak", rng: random.Random):
        self.index = index
        self.soak = soak
        self.rng = rng
        self.connections: Dict[str, Tuple[int, mrd.Connection]] = {}
        self.cancels = index % 2 == 0  # every other client cancels some of its jobs

    def close(self) -> None:
        for _, conn in self.connections.values():
            conn.close()
        self.connections.clear()

    def connection(self, node: Node) -> mrd.Connection:
        port = node.current_port()
        held = self.connections.get(node.name)
        if held and held[0] == port:
            return held[1]
        if held:
            held[1].close()
            del self.connections[node.name]
        if not port:
            raise ConnectionLost(f"node {node.name} is down")
        conn = mrd.Connection.connect("127.0.0.1", port, timeout=CONNECT_TIMEOUT)
        self.connections[node.name] = (port, conn)
        return conn

    def drop(self, node: Node) -> None:
        held = self.connections.pop(node.name, None)
        if held:
            held[1].close()

    def call(self, what: str, operation, first: Optional[Node] = None,
             seconds: float = SUBMIT_RETRY_SECONDS):
        """`operation(connection)` on a random node (or `first`); on a connection error or a
        status of RETRY_STATUSES, again on another node, with back-off, for at most `seconds`.
        Returns (result, node, resends)."""
        nodes = self.soak.nodes
        node = first or self.rng.choice(nodes)
        delay, resends = 0.02, 0
        deadline = time.monotonic() + seconds
        while True:
            try:
                return operation(self.connection(node)), node, resends
            except ConnectionLost as error:
                self.drop(node)
                cause = "connection"
                detail = str(error)
            except ServerError as error:
                if error.status not in RETRY_STATUSES:
                    raise
                cause, detail = error.status.name, error.message
            with self.soak.tally.lock:
                self.soak.tally.retry_causes[f"{what}: {cause}"] += 1
            if time.monotonic() + delay > deadline:
                raise GaveUp(f"{what}: gave up after {resends} resends; last: {cause}: {detail}")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            resends += 1
            node = self.rng.choice([n for n in nodes if n is not node])

    def submit(self, spec: JobSpec, key: str, first: Optional[Node] = None) -> Tuple[int, Node]:
        args = spec.submit_args(key)
        job_id, node, resends = self.call("submit", lambda c: c.submit(**args), first)
        self.soak.tally.count("resends", resends)
        return job_id, node

    def fetch(self, job_id: int) -> mrd.FetchOutcome:
        outcome, _, resends = self.call("fetch", lambda c: c.fetch(job_id))
        self.soak.tally.count("fetch_retries", resends)
        return outcome

    def run(self) -> None:
        soak, tally, rng = self.soak, self.soak.tally, self.rng
        sequence = 0
        try:
            while not soak.stop_load.is_set():
                spec = random_job(rng)
                sequence += 1
                key = f"cs-{soak.run_tag}-{self.index}-{sequence}"
                try:
                    job_id, node = self.submit(spec, key)
                except GaveUp as error:
                    tally.count("submits_given_up")
                    tally.problem("submits_given_up", key=key, why=str(error))
                    continue
                except ServerError as error:  # BAD_REQUEST or BAD_JOB: not a job of ours
                    tally.problem("submit_refused", key=key, status=error.status.name,
                                  message=error.message)
                    continue
                job = Job(job_id, spec, key, self.index, node.name, soak.elapsed())
                tally.acknowledged(job)
                tally.count("acknowledged_" + spec.kind)
                if rng.random() < 0.05:
                    self.check_key(job, node)
                roll = rng.random()
                if self.cancels and roll < 0.08:
                    self.cancel(job)  # at once: likely queued or running
                elif self.cancels and roll < 0.14:
                    self.poll(job)
                    self.cancel(job)  # likely after it finished
                elif roll < 0.45:
                    self.poll(job)
        except Exception as error:  # a bug of this script: say so, do not hide it
            tally.problem("client_crashed", client=self.index, error=repr(error))
        finally:
            self.close()

    def check_key(self, job: Job, acked_by: Node) -> None:
        """The same SUBMIT again, same key, to another node: the same id must come back."""
        other = self.rng.choice([n for n in self.soak.nodes if n is not acked_by])
        try:
            again, _ = self.submit(job.spec, job.key, first=other)
        except (GaveUp, ServerError) as error:
            self.soak.tally.problem("key_check_failed", id=job.id, why=str(error))
            return
        self.soak.tally.count("idempotency_checks")
        if again != job.id:
            self.soak.tally.problem("idempotency_mismatches", key=job.key, first=job.id,
                                    again=again)

    def poll(self, job: Job, seconds: float = 5.0) -> None:
        """FETCH while the faults go on, from random nodes, until the job ends or `seconds`."""
        tally = self.soak.tally
        deadline = time.monotonic() + seconds
        delay = 0.005
        while time.monotonic() < deadline:
            try:
                outcome = self.fetch(job.id)
            except (GaveUp, ServerError) as error:
                tally.problem("fetch_failed_during_run", id=job.id, why=str(error))
                return
            tally.count("fetches_during_run")
            if outcome.pending:
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
                continue
            if outcome.done:
                why = check_result(job.spec.kind, job.spec.expected, outcome.result)
                if why:
                    tally.problem("wrong_during_run", id=job.id, kind=job.spec.kind, why=why)
            elif outcome.status in (Status.UNKNOWN_JOB, Status.JOB_EXPIRED):
                tally.problem("missing_during_run", id=job.id, status=outcome.status.name,
                              message=outcome.message, t=round(self.soak.elapsed(), 2))
            elif outcome.status == Status.JOB_CANCELLED and not job.cancel:
                tally.problem("cancelled_during_run", id=job.id, message=outcome.message)
            return

    def cancel(self, job: Job) -> None:
        tally = self.soak.tally
        job.cancel = "uncertain"
        try:
            _, node, resends = self.call("cancel", lambda c: c.cancel(job.id))
        except GaveUp as error:
            tally.count("cancels_uncertain")
            tally.problem("cancels_uncertain", id=job.id, why=str(error))
            return
        except ServerError as error:  # UNKNOWN_JOB or JOB_EXPIRED: the job is missing
            tally.problem("cancel_of_missing_job", id=job.id, status=error.status.name,
                          message=error.message, t=round(self.soak.elapsed(), 2))
            return
        job.cancel = "confirmed"
        tally.count("cancels_confirmed")
        tally.count("cancel_retries", resends)
        # Another node must say so at once.
        try:
            elsewhere = self.rng.choice([n for n in self.soak.nodes if n is not node])
            outcome, _, _ = self.call("fetch", lambda c: c.fetch(job.id), elsewhere)
            if outcome.status != Status.JOB_CANCELLED:
                tally.problem("cancel_not_seen_elsewhere", id=job.id, status=outcome.status.name)
        except (GaveUp, ServerError):
            pass
        if self.rng.random() < 0.5:
            self.resubmit_after_cancel(job)

    def resubmit_after_cancel(self, job: Job) -> None:
        """protocol.md: a server remembers a key "until the job is evicted, or cancelled", so the
        same SUBMIT again after a CANCEL starts a new job. Which does the cluster do?"""
        tally = self.soak.tally
        try:
            again, node = self.submit(job.spec, job.key)
        except (GaveUp, ServerError) as error:
            tally.problem("resubmit_after_cancel_failed", id=job.id, why=str(error))
            return
        if again == job.id:
            tally.count("resubmit_after_cancel_same_id")
            return
        tally.count("resubmit_after_cancel_new_id")
        new = Job(again, job.spec, job.key, self.index, node.name, self.soak.elapsed())
        tally.acknowledged(new)
        tally.count("acknowledged_" + job.spec.kind)


# --------------------------------------------------------------------------------------------
# The soak
# --------------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args, work: str):
        self.args = args
        self.work = work
        self.run_tag = "%08x" % random.Random(args.seed).getrandbits(32)
        self.tally = Tally()
        self.stop_load = threading.Event()
        self.started = time.monotonic()
        self.redis = Redis(args.redis_server, work)
        self.nodes: List[Node] = []
        self.faults: List[dict] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fault(self, what: str, **detail) -> None:
        self.faults.append({"t": round(self.elapsed(), 2), "what": what, **detail})

    def start_cluster(self) -> None:
        self.redis.start()
        self.nodes = [Node(name, self.args.mrd, self.work, self.redis.port, self.args.log_level)
                      for name in NODE_NAMES]
        for node in self.nodes:
            node.start()

    def fault_thread(self, rng: random.Random) -> None:
        """Kills a random node every --kill-every seconds (on average) and restarts it on its old
        port; kills Redis once, half way, and restarts it on its port and directory."""
        args = self.args
        redis_at = args.seconds / 2 if args.redis_kill else math.inf
        next_kill = self.elapsed() + rng.uniform(0.5, 1.5) * args.kill_every
        try:
            while not self.stop_load.wait(0.05):
                now = self.elapsed()
                if now >= redis_at:
                    redis_at = math.inf
                    self.redis.kill()
                    self.fault("redis killed")
                    time.sleep(rng.uniform(0.5, 1.5))
                    self.redis.start()
                    self.fault("redis restarted")
                    self.tally.count("redis_restarts")
                elif args.kill_every > 0 and now >= next_kill:
                    node = rng.choice(self.nodes)
                    old = node.current_port()
                    node.kill()
                    self.fault("node killed", node=node.name, port=old)
                    self.tally.count("node_kills")
                    time.sleep(rng.uniform(0.1, 1.0))
                    node.start(old)
                    self.fault("node restarted", node=node.name, port=node.current_port())
                    next_kill = self.elapsed() + rng.uniform(0.5, 1.5) * args.kill_every
        except Exception as error:
            self.tally.problem("fault_thread_crashed", error=repr(error))

    def run_load(self) -> None:
        args = self.args
        master = random.Random(args.seed)
        clients = [Client(i, self, random.Random(master.getrandbits(64)))
                   for i in range(args.clients)]
        threads = [threading.Thread(target=c.run, name=f"client-{c.index}", daemon=True)
                   for c in clients]
        faults = threading.Thread(target=self.fault_thread,
                                  args=(random.Random(master.getrandbits(64)),),
                                  name="faults", daemon=True)
        for t in threads:
            t.start()
        faults.start()
        self.stop_load.wait(args.seconds)
        self.stop_load.set()
        faults.join(60)
        # A client ends its request under way: a SUBMIT is resent for SUBMIT_RETRY_SECONDS at
        # most, a poll lasts 5 s.
        for t in threads:
            t.join(SUBMIT_RETRY_SECONDS * 3 + 30)
        if faults.is_alive() or any(t.is_alive() for t in threads):
            self.tally.problem("threads_did_not_stop",
                               names=[t.name for t in threads + [faults] if t.is_alive()])

    def ensure_up(self) -> None:
        """Every node and Redis running for the final check (the fault thread has stopped)."""
        if self.redis.proc.poll() is not None:
            self.redis.start()
        for node in self.nodes:
            if node.proc.poll() is not None or not node.current_port():
                node.start(node.current_port())

    def verify(self) -> dict:
        """FETCH every acknowledged job from a random node until it ended or --final-wait."""
        tally = self.tally
        checker = Client(-1, self, random.Random(self.args.seed ^ 0x5eed))
        jobs = dict(tally.jobs)
        outcome_of: Dict[int, mrd.FetchOutcome] = {}
        waiting = sorted(jobs)
        deadline = time.monotonic() + self.args.final_wait
        try:
            while waiting and time.monotonic() < deadline:
                still = []
                for job_id in waiting:
                    try:
                        outcome = checker.fetch(job_id)
                    except (GaveUp, ServerError) as error:
                        outcome = mrd.FetchOutcome(Status.PENDING, message=str(error))
                    outcome_of[job_id] = outcome
                    if outcome.pending:
                        still.append(job_id)
                waiting = still
                if waiting:
                    time.sleep(0.2)
        finally:
            checker.close()

        result = collections.Counter()
        reasons = collections.Counter()
        details: Dict[str, List[dict]] = collections.defaultdict(list)

        def note(category: str, job: Job, **detail) -> None:
            result[category] += 1
            if len(details[category]) < SAMPLES:
                details[category].append({"id": job.id, "kind": job.spec.kind, "key": job.key,
                                          "acked_by": job.node, "t_ack": round(job.t_ack, 2),
                                          "cancel": job.cancel, **detail})

        for job_id, job in jobs.items():
            outcome = outcome_of.get(job_id)
            status = outcome.status if outcome else Status.PENDING
            if status == Status.PENDING:
                note("lost", job, why="never finished", last=(outcome.message if outcome else ""))
            elif status in (Status.UNKNOWN_JOB, Status.JOB_EXPIRED):
                note("lost", job, why=status.name, message=outcome.message)
            elif job.cancel == "confirmed":
                if status == Status.JOB_CANCELLED:
                    result["cancelled"] += 1
                else:
                    note("wrong", job, why=f"CANCEL answered OK, then FETCH {status.name}")
            elif status == Status.JOB_CANCELLED:
                if job.cancel:
                    result["cancelled"] += 1
                else:
                    note("wrong", job, why="cancelled, and nobody cancelled it")
            elif status == Status.OK:
                why = check_result(job.spec.kind, job.spec.expected, outcome.result)
                if why:
                    note("wrong", job, why=why)
                else:
                    result["correct"] += 1
            else:
                result["failed_with_reason"] += 1
                reasons[f"{status.name}: {outcome.message}"] += 1
        return {"counts": result, "reasons": reasons, "details": details}

    def redis_state(self) -> dict:
        """What Redis holds at the end: the queue, and from each acknowledged job's record how
        many times it was taken (attempts over 1: run again after a kill) and how long it took
        from accepted to done."""
        state: dict = {}
        port = self.redis.port
        try:
            state["next_id"] = redis_command(port, "GET", "mrd:next-id")
            state["jobs_remembered"] = redis_command(port, "ZCARD", "mrd:jobs")
            # Every tenant's queue of jobs, and the stream of tasks.
            queues = redis_command(port, "SMEMBERS", "mrd:queues") or []
            length = pending_jobs = 0
            for queue in queues:
                length += int(redis_command(port, "XLEN", queue))
                pending = redis_command(port, "XPENDING", queue, "nodes")
                pending_jobs += int(pending[0]) if isinstance(pending, list) else 0
            state["queue_length"] = length
            state["queue_pending"] = pending_jobs
            state["tasks_length"] = redis_command(port, "XLEN", "mrd:tasks")
            ids = sorted(self.tally.jobs)
            attempts: Dict[str, int] = collections.Counter()
            latency: List[Tuple[int, int]] = []
            for start in range(0, len(ids), 1000):
                batch = ids[start:start + 1000]
                replies = redis_pipeline(port, [
                    ("HMGET", f"mrd:{{j{i}}}", "state", "attempt", "submitted_ms", "finished_ms")
                    for i in batch])
                for job_id, reply in zip(batch, replies):
                    if not isinstance(reply, list) or reply[0] is None:
                        continue
                    attempts[reply[1] or "0"] += 1
                    if reply[0] == "3" and reply[2] and reply[3]:
                        latency.append((int(reply[3]) - int(reply[2]), job_id))
            state["jobs_by_attempts"] = dict(sorted(attempts.items()))
            if latency:
                latency.sort()

                def at(q: float) -> int:
                    return latency[min(len(latency) - 1, int(q * len(latency)))][0]
                state["done_ms"] = {"p50": at(0.5), "p99": at(0.99), "max": latency[-1][0],
                                    "slowest": [{"id": i, "ms": ms} for ms, i in latency[-5:]]}
        except (OSError, ConnectionError, ValueError, IndexError) as error:
            state["error"] = repr(error)
        return state


def node_log_lines(work: str) -> dict:
    """Warnings and errors each node logged, by how often (numbers stripped)."""
    summary = {}
    for name in NODE_NAMES:
        counts = collections.Counter()
        try:
            with open(os.path.join(work, f"node-{name}.log"), errors="replace") as f:
                for line in f:
                    if line.startswith("=== cluster_soak"):
                        continue
                    line = re.sub(r"^\S+ mrd\[\d+\] ", "", line.strip())  # time, pid
                    counts[re.sub(r"\d+", "N", line)[:160]] += 1
        except FileNotFoundError:
            pass
        summary[name] = dict(counts.most_common(12))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mrd", default=os.path.join(ROOT, "build", "server", "mrd"),
                        help="the mrd binary (default: build/server/mrd of this repository)")
    parser.add_argument("--redis-server", default="redis-server",
                        help="the redis-server binary (default: redis-server on PATH)")
    parser.add_argument("--seconds", type=float, default=60,
                        help="how long the load and the faults go on (default 60, at most 3600)")
    parser.add_argument("--clients", type=int, default=8,
                        help="client threads (default 8, at most 64)")
    parser.add_argument("--kill-every", type=float, default=4.0,
                        help="mean seconds between two node kills (default 4; 0: no node killed)")
    parser.add_argument("--no-redis-kill", dest="redis_kill", action="store_false",
                        help="do not kill and restart redis-server half way")
    parser.add_argument("--final-wait", type=float, default=60,
                        help="seconds the final check waits for unfinished jobs (default 60)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the jobs, of the clients' choices and of the faults "
                             "(default: from the clock; printed in the JSON)")
    parser.add_argument("--log-level", default="warn", choices=("error", "warn", "info", "debug"),
                        help="the nodes' --log-level (default warn)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (logs, Redis's AOF) even if all is well")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 3600:
        parser.error("--seconds must be from 1 to 3600")
    if not 1 <= args.clients <= 64:
        parser.error("--clients must be from 1 to 64")
    if not 0 <= args.final_wait <= 600:
        parser.error("--final-wait must be from 0 to 600")
    if args.kill_every < 0:
        parser.error("--kill-every must not be negative")
    if args.seed is None:
        args.seed = int(time.time() * 1000) & 0xFFFFFFFF
    args.mrd = os.path.abspath(args.mrd)
    if not os.access(args.mrd, os.X_OK):
        parser.error(f"{args.mrd} is not an executable: build mrd, or name it with --mrd")
    try:
        help_text = subprocess.run([args.mrd, "--help"], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        parser.error(f"{args.mrd} --help failed: {error}")
    if b"--redis" not in help_text:
        parser.error(f"{args.mrd} has no --redis (built before cluster mode?): name a newer "
                     f"build with --mrd")
    if not shutil.which(args.redis_server):
        parser.error(f"{args.redis_server} not found (Debian: apt-get install redis-server)")

    # Stopped however this ends: normally, on an exception, on SIGTERM or SIGINT, or by the
    # watchdog if something hangs past every bound.
    atexit.register(stop_everything)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    limit = args.seconds + args.final_wait + SUBMIT_RETRY_SECONDS * 3 + 180

    def watchdog() -> None:
        print(f"cluster_soak: still running after {limit:.0f} s; stopping everything",
              file=sys.stderr)
        stop_everything()
        os._exit(2)
    timer = threading.Timer(limit, watchdog)
    timer.daemon = True
    timer.start()

    work = tempfile.mkdtemp(prefix="mrd-cluster-soak-")
    keep = args.keep
    try:
        soak = Soak(args, work)
        soak.start_cluster()
        soak.run_load()
        soak.ensure_up()
        checked = soak.verify()
        tally = soak.tally
        counts = checked["counts"]
        c = tally.counters
        report = {
            "seconds": args.seconds, "clients": args.clients, "seed": args.seed,
            "acknowledged": len(tally.jobs),
            "correct": counts["correct"],
            "cancelled": counts["cancelled"],
            "failed_with_reason": counts["failed_with_reason"],
            "lost": counts["lost"],
            "wrong": counts["wrong"],
            "idempotency_mismatches": tally.problem_counts["idempotency_mismatches"]
            + tally.problem_counts["id_collisions"],
            # A FETCH or CANCEL that said unknown or expired, while the faults went on, of a job
            # that was there (the final check sees it): a client would have given up on it.
            "missing_during_run": tally.problem_counts["missing_during_run"]
            + tally.problem_counts["cancel_of_missing_job"],
            "node_kills": c["node_kills"],
            "redis_restarts": c["redis_restarts"],
            "resends": c["resends"],
            "acknowledged_by_kind": {k: c["acknowledged_" + k]
                                     for k in ("words", "words_large", "bigrams", "numbers",
                                                               "matmul")},
            "submits_given_up": c["submits_given_up"],
            "idempotency_checks": c["idempotency_checks"],
            "cancels_confirmed": c["cancels_confirmed"],
            "cancels_uncertain": c["cancels_uncertain"],
            "resubmit_after_cancel": {"same_id": c["resubmit_after_cancel_same_id"],
                                      "new_job": c["resubmit_after_cancel_new_id"]},
            "fetches_during_run": c["fetches_during_run"],
            "fetch_retries": c["fetch_retries"],
            "retry_causes": dict(sorted(tally.retry_causes.items())),
            "failure_reasons": dict(checked["reasons"].most_common(10)),
            "problems_during_run": dict(tally.problem_counts),
            "problem_samples": dict(tally.problems),
            "lost_jobs": checked["details"].get("lost", []),
            "wrong_jobs": checked["details"].get("wrong", []),
            "faults": soak.faults,
            "redis_at_end": soak.redis_state(),
            "node_log_lines": node_log_lines(work),
        }
        bad = report["lost"] + report["wrong"] + report["idempotency_mismatches"]
        if bad:
            keep = True
        if keep:
            report["work_dir"] = work
        print(json.dumps(report, indent=2, default=str))
        return 1 if bad else 0
    except BaseException:
        keep = True
        raise
    finally:
        timer.cancel()
        stop_everything()
        if keep:
            print(f"cluster_soak: logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
