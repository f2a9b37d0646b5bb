"""End-to-end tests of mrd-web, the HTTP front-end of mrd, written from docs/http.md.

Everything here runs as real processes: mrd (started with --enable-test-jobs, and a second one
with --auth-file), mrd-web in front of them, Python's urllib and curl as HTTP clients, and
`promtool check metrics` on /metrics. Expected results are computed here, in Python, with the
rules of docs/protocol.md section 7, never taken from mrd.

Environment (required: the tests fail without them):
  MRD_BINARY       the mrd server
  MRD_WEB_BINARY   mrd-web
curl and promtool (Debian: curl, prometheus) must be on PATH: the tests that use them fail
without them.

Run: MRD_BINARY=build/server/mrd MRD_WEB_BINARY=build/client/mrd-web python3 tests/web_test.py -v
"""

from __future__ import annotations

import collections
import email.message
import email.utils
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from dataclasses import dataclass
import http.client as http_client
from http.client import HTTPConnection
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

START_SECONDS = 15   # for a program to write its port file
JOB_SECONDS = 20     # for a small job to finish on a loaded machine
HTTP_SECONDS = 30    # for one HTTP exchange

UNFINISHED = ("queued", "mapping", "reducing")
STATES = UNFINISHED + ("done", "failed", "cancelled")
PROGRESS_KEYS = {"id", "state", "map_done", "map_total", "reduce_done", "reduce_total"}
# GET /api/jobs/ID: the progress, and the details of protocol version 4.
DETAILS_KEYS = PROGRESS_KEYS | {"mapper", "reducer", "tenant", "input_bytes", "submitted_ms",
                                "started_ms", "finished_ms", "failure"}
HISTOGRAM_KEYS = {"task_us", "job_us"}
STATS_KEYS = {"workers_busy", "tasks_done", "uptime_ms", "connections_open", "connections_total", "requests_total",
              "requests_rejected", "jobs_submitted", "jobs_done", "jobs_failed", "jobs_cancelled",
              "jobs_expired", "jobs_unfinished", "workers", "worker_restarts",
              "retained_result_bytes"}
WORKERS = 2  # every mrd here runs with --workers 2

# docs/http.md, "GET /metrics": every metric and its type.
METRIC_TYPES = {
    "mrd_up": "gauge",
    "mrd_uptime_seconds": "gauge",
    "mrd_connections_open": "gauge",
    "mrd_connections_total": "counter",
    "mrd_requests_total": "counter",
    "mrd_requests_rejected_total": "counter",
    "mrd_jobs_submitted_total": "counter",
    "mrd_jobs_done_total": "counter",
    "mrd_jobs_failed_total": "counter",
    "mrd_jobs_cancelled_total": "counter",
    "mrd_jobs_expired_total": "counter",
    "mrd_jobs_unfinished": "gauge",
    "mrd_workers": "gauge",
    "mrd_worker_restarts_total": "counter",
    "mrd_retained_result_bytes": "gauge",
    "mrd_workers_busy": "gauge",
    "mrd_tasks_done_total": "counter",
    "mrd_jobs": "gauge",
    "mrd_scrape_duration_seconds": "gauge",
}

# The tokens of the server with --auth-file (as in tests/auth_file.hpp): token -> tenant, role.
ALICE_TOKEN = "alice-0f3c9a1d-token"
BOB_TOKEN = "bob-5a8e01f7-token"
OPS_TOKEN = "ops-77e2b5c4-token"
AUTH_ENTRIES = ((ALICE_TOKEN, "alice", "user"), (BOB_TOKEN, "bob", "user"),
                (OPS_TOKEN, "ops", "admin"))

HANGING_JOB = {"mapper": "test-hang", "reducer": "sum", "documents": [{"name": "h", "text": "x"}]}


def slow_job(milliseconds: int, text: str = "slow words for a slow job") -> Dict[str, Any]:
    """test-slow sleeps as many milliseconds as a document's name says, then counts words."""
    return {"mapper": "test-slow", "reducer": "sum",
            "documents": [{"name": str(milliseconds), "text": text}]}


# --------------------------------------------------------------------------------------------
# Reference computations (docs/protocol.md, section 7), independent of mrd and mrd-web
# --------------------------------------------------------------------------------------------


def reference_words(text: str) -> List[bytes]:
    """Maximal runs of [A-Za-z0-9] or bytes >= 0x80 of the UTF-8 text; ASCII lower-cased."""
    return [word.lower() for word in re.findall(rb"[A-Za-z0-9\x80-\xff]+", text.encode())]


def counts_as_json(counter: collections.Counter) -> List[Dict[str, Any]]:
    """Every entry, most frequent first, ties by key in byte order, as mrd-web writes counts."""
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return [{"key": key.decode(), "count": count} for key, count in ordered]


def reference_word_counts(texts: Sequence[str]) -> List[Dict[str, Any]]:
    counter = collections.Counter()
    for text in texts:
        counter.update(reference_words(text))
    return counts_as_json(counter)


def reference_bigrams(texts: Sequence[str]) -> List[Dict[str, Any]]:
    counter = collections.Counter()
    for text in texts:  # pairs within a document only
        words = reference_words(text)
        counter.update(first + b" " + second for first, second in zip(words, words[1:]))
    return counts_as_json(counter)


def reference_index(documents: Sequence[Tuple[str, str]]) -> Dict[str, List[str]]:
    """word -> names of the documents it occurs in, in byte order, without repeats."""
    postings: Dict[bytes, set] = collections.defaultdict(set)
    for name, text in documents:
        for word in reference_words(text):
            postings[word].add(name.encode())
    return {word.decode(): [name.decode() for name in sorted(names)]
            for word, names in postings.items()}


def reference_statistics(values: Sequence[float]) -> Dict[str, float]:
    ordered = sorted(values)
    count, middle = len(ordered), len(ordered) // 2
    median = ordered[middle] if count % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    frequency = collections.Counter(ordered)
    mode = min(frequency, key=lambda value: (-frequency[value], value))
    return {"count": count, "mean": math.fsum(ordered) / count, "median": median, "mode": mode,
            "min": ordered[0], "max": ordered[-1]}


def reference_product(a: List[List[float]], b: List[List[float]]) -> List[List[float]]:
    return [[math.fsum(a[r][k] * b[k][c] for k in range(len(b))) for c in range(len(b[0]))]
            for r in range(len(a))]


# --------------------------------------------------------------------------------------------
# Processes: mrd and mrd-web on ephemeral ports, stopped by their PIDs
# --------------------------------------------------------------------------------------------


def required_binary(variable: str) -> str:
    path = os.environ.get(variable)
    if not path:
        raise RuntimeError(f"{variable} is not set: it must name the program to test")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"{variable}={path} is not an executable file")
    return path


def wait_for(what: str, probe: Callable[[], Any], seconds: float = JOB_SECONDS) -> Any:
    """Polls `probe` until it returns something truthy, and returns that; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds} s waiting for {what}")
        time.sleep(0.02)


def clean_environment() -> Dict[str, str]:
    """Ours, without the variables that would give mrd-web a token or another server."""
    environment = dict(os.environ)
    for variable in ("MRD_TOKEN", "MRD_SERVER", "MRD_TLS", "MRD_CACERT"):
        environment.pop(variable, None)
    return environment


class Program:
    """A program started here that writes its port to --port-file once listening."""

    def __init__(self, name: str, command: List[str], directory: Path):
        self.name = name
        self.port_file = directory / f"{name}.port"
        self.log_path = directory / f"{name}.log"
        if self.port_file.exists():
            self.port_file.unlink()  # a restart must not read the port of the last run
        # TMPDIR: what mrd makes there (the test jobs' directory) goes with the test's directory,
        # even when the test SIGKILLs it and mrd cannot remove it itself.
        environment = dict(clean_environment(), TMPDIR=str(directory))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([*command, "--port-file", str(self.port_file)],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            env=environment)
        try:
            self.port = wait_for(f"{name} to write its port file", self._port, START_SECONDS)
        except BaseException:
            self.stop()
            raise

    def _port(self) -> Optional[int]:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode} at start:\n"
                               f"{self.log_tail()}")
        text = self.port_file.read_text().strip() if self.port_file.exists() else ""
        return int(text) if text.isdigit() and int(text) > 0 else None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, signal_number: int = signal.SIGTERM, seconds: float = 10) -> Optional[int]:
        """Signals the program and returns its exit code; None if it had to be killed."""
        if self.process.poll() is not None:
            return self.process.returncode
        os.kill(self.process.pid, signal_number)
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None


def start_mrd(directory: Path, name: str, *options: str, listen: str = "127.0.0.1:0",
              drain_seconds: int = 0) -> Program:
    return Program(name, [MRD_BINARY, "--listen", listen, "--workers", str(WORKERS),
                          "--drain-seconds", str(drain_seconds), "--log-level", "warn", *options],
                   directory)


def start_web(directory: Path, name: str, servers: Sequence[str], *options: str) -> Program:
    """mrd-web in front of `servers` (HOST:PORT each), on a port of its own."""
    return Program(name, [WEB_BINARY, "--server", ",".join(servers), "--listen", "127.0.0.1:0",
                          *options], directory)


class Impostor:
    """Not mrd: a TCP server that answers whatever it reads with a frame of status 99, which
    mrd never sends (docs/protocol.md, section 4)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    @staticmethod
    def _answer(connection: socket.socket) -> None:
        with connection:
            try:
                while connection.recv(65536):
                    connection.sendall(bytes([99, 0, 0, 0, 0]))
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self.listener.close()


def write_auth_file(path: Path) -> None:
    """mrd's --auth-file (docs/security.md): ``tenant role sha256-of-token`` per line."""
    lines = ["# tenant role sha256-of-token", ""]
    for token, tenant, role in AUTH_ENTRIES:
        lines.append(f"{tenant}  {role}  {hashlib.sha256(token.encode()).hexdigest()}  # test")
    path.write_text("\n".join(lines) + "\n")


MRD_BINARY = ""
WEB_BINARY = ""
MODULE_START = 0.0
work: Path = Path()
main_mrd: Program
main_web: Program


def setUpModule() -> None:
    """One mrd with test jobs and one mrd-web in front of it, shared by most tests."""
    global MRD_BINARY, WEB_BINARY, MODULE_START, work, main_mrd, main_web
    MRD_BINARY = required_binary("MRD_BINARY")
    WEB_BINARY = required_binary("MRD_WEB_BINARY")
    MODULE_START = time.monotonic()
    directory = tempfile.TemporaryDirectory(prefix="mrd-web-test-")
    unittest.addModuleCleanup(directory.cleanup)
    work = Path(directory.name)
    main_mrd = start_mrd(work, "main-mrd", "--enable-test-jobs")
    unittest.addModuleCleanup(main_mrd.stop)
    main_web = start_web(work, "main-web", [main_mrd.address])
    unittest.addModuleCleanup(main_web.stop)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: email.message.Message
    body: bytes

    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()


# No proxy: the tests talk to 127.0.0.1 whatever http_proxy says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(port: int, method: str, path: str, body: Any = None,
         token: Optional[str] = None) -> Reply:
    """One request with urllib. `body`: bytes as they are, anything else as JSON."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with OPENER.open(request, timeout=HTTP_SECONDS) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


def post_large(port: int, path: str, body: bytes) -> Reply:
    """A POST whose body the server may refuse before reading it all: a failed send is fine."""
    connection = HTTPConnection("127.0.0.1", port, timeout=HTTP_SECONDS)
    try:
        try:
            connection.request("POST", path, body=body,
                               headers={"Content-Type": "application/json"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reply may be there to read all the same
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


METRIC_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
METRIC_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


@dataclass
class Metrics:
    types: Dict[str, str]
    samples: List[Tuple[str, Dict[str, str], float]]

    def values(self, name: str, **labels: str) -> List[float]:
        return [value for sample_name, sample_labels, value in self.samples
                if sample_name == name and all(sample_labels.get(k) == v
                                               for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        found = self.values(name, **labels)
        if len(found) != 1:
            raise AssertionError(f"{len(found)} samples of {name} {labels}, not 1")
        return found[0]


def parse_metrics(text: str) -> Metrics:
    """The Prometheus text format, enough to check values (promtool checks the syntax)."""
    types: Dict[str, str] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            match = METRIC_SAMPLE.match(line)
            if not match:
                raise AssertionError(f"not a sample line: {line!r}")
            name, labels, value = match.groups()
            samples.append((name, dict(METRIC_LABEL.findall(labels or "")), float(value)))
    return Metrics(types, samples)


# --------------------------------------------------------------------------------------------
# The base of every test: HTTP calls with the checks every reply must pass
# --------------------------------------------------------------------------------------------


class WebTestCase(unittest.TestCase):
    maxDiff = 4000

    @property
    def web(self) -> Program:
        return main_web

    # -- replies -------------------------------------------------------------------------------

    def check_json(self, reply: Reply, status: int, what: str) -> Any:
        """A job route's reply: `status`, JSON, ending with a newline; an error has "error"."""
        self.assertEqual(reply.status, status, f"{what}: {reply.body[:600]!r}")
        self.assertEqual(reply.content_type(), "application/json",
                         f"{what}: Content-Type {reply.headers.get('Content-Type')!r}")
        self.assertTrue(reply.body.endswith(b"\n"), f"{what}: no final newline: {reply.body!r}")
        try:
            value = json.loads(reply.body)
        except ValueError as error:
            self.fail(f"{what}: not JSON ({error}): {reply.body[:600]!r}")
        if status >= 400:
            self.assertIsInstance(value, dict, f"{what}: {value!r}")
            self.assertIsInstance(value.get("error"), str, f"{what}: {value!r}")
            self.assertTrue(value["error"].strip(), f"{what}: an empty error message")
        return value

    def call(self, method: str, path: str, body: Any = None, *, expect: int,
             token: Optional[str] = None, web: Optional[Program] = None) -> Any:
        reply = http((web or self.web).port, method, path, body, token)
        return self.check_json(reply, expect, f"{method} {path}")

    def error(self, method: str, path: str, body: Any = None, *, expect: int,
              token: Optional[str] = None, web: Optional[Program] = None) -> str:
        """The error message of a request that must fail with `expect`."""
        return self.call(method, path, body, expect=expect, token=token, web=web)["error"]

    # -- jobs ----------------------------------------------------------------------------------

    def submit(self, job: Dict[str, Any], token: Optional[str] = None,
               web: Optional[Program] = None) -> int:
        reply = http((web or self.web).port, "POST", "/api/jobs", job, token)
        answer = self.check_json(reply, 202, f"POST /api/jobs {json.dumps(job)[:200]}")
        self.assertIsInstance(answer.get("id"), int, answer)
        self.assertGreater(answer["id"], 0, answer)
        self.assertEqual(answer, {"id": answer["id"], "state": "queued"})
        self.assertEqual(reply.headers.get("Location"), f"/api/jobs/{answer['id']}")
        return answer["id"]

    def check_progress(self, progress: Dict[str, Any], job_id: int) -> None:
        self.assertEqual(set(progress), PROGRESS_KEYS, progress)
        self.check_progress_fields(progress, job_id)

    def check_details(self, details: Dict[str, Any], job_id: int) -> None:
        """GET /api/jobs/ID: its progress, then what it is and when each step happened."""
        self.assertEqual(set(details), DETAILS_KEYS, details)
        self.check_progress_fields(details, job_id)
        submitted, started, finished = (details["submitted_ms"], details["started_ms"],
                                        details["finished_ms"])
        now_ms = time.time() * 1000
        self.assertTrue(now_ms - 600_000 < submitted <= now_ms + 1000, details)
        if started:
            self.assertLessEqual(submitted, started, details)
        if finished:
            self.assertLessEqual(max(submitted, started), finished, details)
        self.assertEqual(details["state"] in ("done", "failed", "cancelled"), finished > 0, details)
        self.assertGreater(details["input_bytes"], 0, details)
        self.assertEqual(bool(details["failure"]), details["state"] == "failed", details)

    def check_progress_fields(self, progress: Dict[str, Any], job_id: int) -> None:
        self.assertEqual(progress["id"], job_id, progress)
        self.assertIn(progress["state"], STATES, progress)
        self.assertLessEqual(progress["map_done"], progress["map_total"], progress)
        self.assertLessEqual(progress["reduce_done"], progress["reduce_total"], progress)

    def wait_until_finished(self, job_id: int, token: Optional[str] = None,
                            web: Optional[Program] = None) -> Dict[str, Any]:
        """Polls GET /api/jobs/ID/result: 202 with progress until it is 200; returns that."""
        def finished() -> Optional[Dict[str, Any]]:
            reply = http((web or self.web).port, "GET", f"/api/jobs/{job_id}/result", None, token)
            if reply.status == 202:
                progress = self.check_json(reply, 202, f"GET /api/jobs/{job_id}/result")
                self.check_progress(progress, job_id)
                self.assertIn(progress["state"], UNFINISHED, progress)
                return None
            return self.check_json(reply, 200, f"GET /api/jobs/{job_id}/result")
        return wait_for(f"job {job_id} to finish", finished)

    def run_job(self, job: Dict[str, Any], token: Optional[str] = None) -> Any:
        """Submits `job`, waits for it, and returns its result R."""
        job_id = self.submit(job, token)
        answer = self.wait_until_finished(job_id, token)
        self.assertEqual(set(answer), {"id", "state", "result"}, answer)
        self.assertEqual((answer["id"], answer["state"]), (job_id, "done"), answer)
        return answer["result"]

    def state(self, job_id: int, token: Optional[str] = None) -> str:
        details = self.call("GET", f"/api/jobs/{job_id}", expect=200, token=token)
        self.check_details(details, job_id)
        return details["state"]

    def wait_for_state(self, job_id: int, state: str, token: Optional[str] = None) -> None:
        wait_for(f"job {job_id} to be {state}", lambda: self.state(job_id, token) == state)

    def cancel_when_done(self, job_id: int, token: Optional[str] = None) -> None:
        """At clean-up: a job that may still run is cancelled, so no test leaves one behind."""
        def cancel() -> None:
            http(self.web.port, "DELETE", f"/api/jobs/{job_id}", None, token)
        self.addCleanup(cancel)

    def assert_matrix(self, got: Any, expected: List[List[float]]) -> None:
        self.assertIsInstance(got, list)
        self.assertEqual([len(row) for row in got], [len(row) for row in expected], got)
        for got_row, expected_row in zip(got, expected):
            for value, reference in zip(got_row, expected_row):
                self.assertTrue(math.isclose(value, reference, rel_tol=1e-9, abs_tol=1e-12),
                                f"{got} != {expected}")

    # -- tools ---------------------------------------------------------------------------------

    def tool(self, name: str) -> str:
        path = shutil.which(name)
        if path is None:
            self.fail(f"{name} is not installed: this test needs it (Debian: apt-get install "
                      f"{'prometheus' if name == 'promtool' else name})")
        return path

    def curl(self, *arguments: str) -> Tuple[int, bytes, str]:
        """curl with `arguments`: (HTTP status, body, Content-Type)."""
        finished = subprocess.run(
            [self.tool("curl"), "-sS", "--noproxy", "*", "--max-time", str(HTTP_SECONDS),
             "-w", "\n%{http_code} %{content_type}", *arguments],
            capture_output=True, timeout=HTTP_SECONDS + 10, env=clean_environment())
        self.assertEqual(finished.returncode, 0, finished.stderr.decode(errors="replace"))
        body, _, trailer = finished.stdout.rpartition(b"\n")
        code, _, content_type = trailer.decode().partition(" ")
        return int(code), body, content_type

    def scrape(self, web: Program) -> Tuple[str, Metrics]:
        """GET /metrics with curl; checks it with promtool; returns the text and its samples."""
        status, body, content_type = self.curl(f"http://127.0.0.1:{web.port}/metrics")
        self.assertEqual(status, 200, body[:600])
        self.assertTrue(content_type.startswith("text/plain"), content_type)
        text = body.decode()
        checked = subprocess.run([self.tool("promtool"), "check", "metrics"], input=body,
                                 capture_output=True, timeout=30)
        self.assertEqual(checked.returncode, 0,
                         f"promtool check metrics: {checked.stdout!r} {checked.stderr!r}\n{text}")
        return text, parse_metrics(text)


# --------------------------------------------------------------------------------------------
# 1. POST /api/jobs and the job routes, with results checked against Python
# --------------------------------------------------------------------------------------------

TEXT = ("Don't STOP-me, caf\u00e9! The quick brown fox jumps over the lazy dog. THE END.\n"
        "\u00c9T\u00c9 \u00e9t\u00e9 x86_64 42 tab\tseparated nul\x00and\x01control\r\n"
        "repeat repeat repeat the the THE tHe")
TEXTS = ["to be or not to be\nthat is the question: whether 'tis nobler in the mind",
         "be quick, be quiet; BE done",
         "",
         "question the question"]


class TestJobsApi(WebTestCase):

    def test_words_reducer_defaults_to_sum(self) -> None:
        expected = reference_word_counts([TEXT])
        self.assertIn({"key": "caf\u00e9", "count": 1}, expected)  # the reference itself
        self.assertEqual(self.run_job({"mapper": "words", "text": TEXT}), expected)
        self.assertEqual(self.run_job({"mapper": "words", "reducer": "sum", "text": TEXT}),
                         expected)

    def test_documents_as_objects_and_as_strings(self) -> None:
        expected = reference_word_counts(TEXTS)
        objects = [{"name": f"d{n}.txt", "text": text} for n, text in enumerate(TEXTS)]
        self.assertEqual(self.run_job({"mapper": "words", "documents": objects}), expected)
        self.assertEqual(self.run_job({"mapper": "words", "documents": TEXTS}), expected)

    def test_bigrams(self) -> None:
        expected = reference_bigrams(TEXTS)
        self.assertNotIn("mind be", [entry["key"] for entry in expected])  # not across documents
        objects = [{"name": f"d{n}", "text": text} for n, text in enumerate(TEXTS)]
        self.assertEqual(self.run_job({"mapper": "bigrams", "documents": objects}), expected)
        self.assertEqual(self.run_job({"mapper": "bigrams", "reducer": "sum", "documents": TEXTS}),
                         expected)

    def test_index_with_names_that_need_escaping(self) -> None:
        documents = [("a.txt", "to be or not"), ('quote"back\\slash', "be quick"),
                     ("ctl\x01\ttab\nnl", "not now"), ("caf\u00e9.txt", "Caf\u00e9 or tea"),
                     ("", "the empty name"), ("a.txt", "same name, one document")]
        expected = reference_index(documents)
        self.assertEqual(expected["not"], ["a.txt", "ctl\x01\ttab\nnl"])
        result = self.run_job({"mapper": "index",
                               "documents": [{"name": n, "text": t} for n, t in documents]})
        self.assertEqual(result, expected)

    def test_index_names_plain_strings_1_2_3(self) -> None:
        texts = [f"common w{n}" for n in range(1, 12)]  # eleven: "10" sorts before "2"
        expected = reference_index([(str(n), text) for n, text in enumerate(texts, start=1)])
        self.assertEqual(expected["common"][:4], ["1", "10", "11", "2"])
        self.assertEqual(self.run_job({"mapper": "index", "reducer": "postings",
                                       "documents": texts}), expected)
        self.assertEqual(self.run_job({"mapper": "index", "documents": texts}), expected)

    def assert_statistics(self, result: Dict[str, Any], values: List[float]) -> None:
        expected = reference_statistics(values)
        self.assertEqual(set(result), set(expected), result)
        self.assertEqual(result["count"], expected["count"])
        for field in ("mean", "median", "mode", "min", "max"):
            self.assertTrue(math.isclose(result[field], expected[field], rel_tol=1e-12),
                            f"{field}: {result[field]} != {expected[field]}")

    def test_numbers(self) -> None:
        values = [3, 1.5, 2.5, 2.5, -7, 1e3, 0.1, 2.5, -7]
        self.assert_statistics(self.run_job({"mapper": "numbers", "numbers": values}), values)
        even = [4, 1, 2.5, 10]  # median 3.25; every value once, so the mode is the smallest
        self.assert_statistics(
            self.run_job({"mapper": "numbers", "reducer": "stats", "numbers": even}), even)

    def test_no_numbers(self) -> None:
        # count 0 and every other field NaN, which JSON writes as null (as mrctl --json does).
        self.assertEqual(self.run_job({"mapper": "numbers", "numbers": []}),
                         {"count": 0, "mean": None, "median": None, "mode": None, "min": None,
                          "max": None})

    def test_matmul(self) -> None:
        a = [[1.5, -2, 3], [0.25, 5, 6.125]]
        b = [[7, 8], [-9.5, 10], [11, 0.001]]
        expected = reference_product(a, b)
        for job in ({"mapper": "matmul", "matrix_a": a, "matrix_b": b},
                    {"mapper": "matmul", "reducer": "rows", "matrix_a": a, "matrix_b": b}):
            result = self.run_job(job)
            self.assertEqual(set(result), {"rows", "cols", "values"}, result)
            self.assertEqual((result["rows"], result["cols"]), (2, 2))
            self.assert_matrix(result["values"], expected)

    def test_options_reach_mrd(self) -> None:
        text = " ".join(f"w{n % 7}" for n in range(60))
        job_id = self.submit({"mapper": "words", "text": text,
                              "options": {"chunk_bytes": 16, "partitions": 3,
                                          "task_timeout_ms": 0, "memory_limit_mib": 0}})
        answer = self.wait_until_finished(job_id)
        self.assertEqual(answer["result"], reference_word_counts([text]))
        progress = self.call("GET", f"/api/jobs/{job_id}", expect=200)
        self.check_details(progress, job_id)
        self.assertEqual(progress["state"], "done")
        self.assertGreater(progress["map_total"], 1, "16-byte chunks of 180 bytes")
        self.assertEqual(progress["reduce_total"], 3, progress)

    def test_progress_of_finished_jobs(self) -> None:
        words = self.submit({"mapper": "words", "text": "one two two"})
        self.wait_until_finished(words)
        progress = self.call("GET", f"/api/jobs/{words}", expect=200)
        self.check_details(progress, words)
        self.assertEqual(progress["state"], "done")
        self.assertEqual((progress["mapper"], progress["reducer"], progress["tenant"]),
                         ("words", "sum", ""), progress)
        self.assertGreater(progress["started_ms"], 0, progress)
        self.assertGreaterEqual(progress["map_total"], 1)
        self.assertEqual(progress["map_done"], progress["map_total"])
        self.assertGreaterEqual(progress["reduce_total"], 1)
        self.assertEqual(progress["reduce_done"], progress["reduce_total"])
        matmul = self.submit({"mapper": "matmul", "matrix_a": [[1]], "matrix_b": [[2]]})
        self.wait_until_finished(matmul)
        progress = self.call("GET", f"/api/jobs/{matmul}", expect=200)
        self.assertEqual((progress["state"], progress["reduce_total"]), ("done", 0), progress)

    def test_unfinished_job_answers_202_with_its_progress(self) -> None:
        text = "Slow, slow words: a SLOW job"
        job_id = self.submit(slow_job(1500, text))
        self.cancel_when_done(job_id)
        early = self.call("GET", f"/api/jobs/{job_id}/result", expect=202)
        self.check_progress(early, job_id)
        self.assertIn(early["state"], UNFINISHED)
        course = self.call("GET", f"/result/{job_id}", expect=202)
        self.assertEqual(course["task_id"], job_id, course)
        self.assertIn(course["status"], UNFINISHED, course)
        answer = self.wait_until_finished(job_id)
        self.assertEqual(answer, {"id": job_id, "state": "done",
                                  "result": reference_word_counts([text])})

    def test_cancel(self) -> None:
        job_id = self.submit(HANGING_JOB)
        self.cancel_when_done(job_id)
        self.wait_for_state(job_id, "mapping")
        self.assertEqual(self.call("DELETE", f"/api/jobs/{job_id}", expect=200),
                         {"id": job_id, "state": "cancelled"})
        self.assertEqual(self.call("GET", f"/api/jobs/{job_id}/result", expect=200),
                         {"id": job_id, "state": "cancelled"})
        self.assertEqual(self.state(job_id), "cancelled")

    def test_failed_jobs(self) -> None:
        # test-throw: the mapper refuses its input, an ordinary job error.
        failed = self.wait_until_finished(self.submit(
            {"mapper": "test-throw", "reducer": "sum", "text": "refused"}))
        self.assertEqual(set(failed), {"id", "state", "reason", "error"}, failed)
        self.assertEqual((failed["state"], failed["reason"]), ("failed", "job-failed"))
        self.assertTrue(failed["error"].strip())
        # A task past its deadline 3 times: options.task_timeout_ms reaches mrd.
        timed_out = self.wait_until_finished(self.submit(
            dict(HANGING_JOB, options={"task_timeout_ms": 200})))
        self.assertEqual((timed_out["state"], timed_out["reason"]), ("failed", "job-timed-out"),
                         timed_out)
        self.assertTrue(timed_out["error"].strip())

    def test_matrices_that_do_not_multiply(self) -> None:
        # docs/http.md lists them under 400; docs/protocol.md has mrd accept the job and fail it.
        # Either is an answer; what is not is a result.
        job = {"mapper": "matmul", "matrix_a": [[1, 2], [3, 4]], "matrix_b": [[1, 2]] * 3}
        reply = http(self.web.port, "POST", "/api/jobs", job)
        if reply.status == 400:
            self.check_json(reply, 400, "POST /api/jobs 2x2 times 3x2")
            return
        job_id = self.check_json(reply, 202, "POST /api/jobs 2x2 times 3x2")["id"]
        failed = self.wait_until_finished(job_id)
        self.assertEqual((failed["state"], failed["reason"]), ("failed", "job-failed"), failed)
        self.assertIn("2x2", failed["error"])
        self.assertIn("3x2", failed["error"])

    def test_idempotency_key(self) -> None:
        key = "web-test-" + os.urandom(8).hex()
        job = {"mapper": "words", "text": "once only", "idempotency_key": key}
        first = self.submit(job)
        self.assertEqual(self.submit(job), first, "the same request and key: the same job")
        self.assertNotEqual(self.submit(dict(job, idempotency_key=key + "-2")), first)
        self.assertNotEqual(self.submit({"mapper": "words", "text": "once only"}), first)
        # The same key with another request is mrd's BAD_REQUEST.
        self.error("POST", "/api/jobs", dict(job, text="something else"), expect=400)
        self.assertEqual(self.wait_until_finished(first)["result"],
                         reference_word_counts(["once only"]))

    def test_list(self) -> None:
        job_id = self.submit({"mapper": "words", "text": "listed"})
        self.wait_until_finished(job_id)
        jobs = self.call("GET", "/api/jobs", expect=200)
        self.assertIsInstance(jobs, list)
        self.assertIn({"id": job_id, "state": "done", "tenant": ""}, jobs)
        ids = [job["id"] for job in jobs]
        self.assertEqual(ids, sorted(ids), "by id")
        for job in jobs:
            self.assertEqual(set(job), {"id", "state", "tenant"}, job)
            self.assertIn(job["state"], STATES)
        # details=0, and limit without details=1, change nothing.
        self.assertEqual(self.call("GET", "/api/jobs?details=0&limit=1", expect=200), jobs)
        self.assertEqual(self.call("GET", "/api/jobs?limit=1", expect=200), jobs)

    def test_list_with_details(self) -> None:
        done = [self.submit({"mapper": "words", "text": f"listed with details {i}"})
                for i in range(3)]
        for job_id in done:
            self.wait_until_finished(job_id)
        hanging = self.submit(HANGING_JOB)
        self.cancel_when_done(hanging)
        self.wait_for_state(hanging, "mapping")
        listed = self.call("GET", "/api/jobs?details=1", expect=200)
        self.assertIsInstance(listed, list)
        ids = [job["id"] for job in listed]
        self.assertEqual(ids, sorted(ids, reverse=True), "newest first")
        self.assertEqual(ids[0], hanging, "the newest job is the last submitted")
        everyone = [job["id"] for job in self.call("GET", "/api/jobs", expect=200)]
        self.assertEqual(ids, sorted(everyone, reverse=True)[:50], "the newest 50 of LIST")
        for job in listed:  # other tests' jobs among them
            self.assertEqual(set(job), DETAILS_KEYS, job)
            self.check_progress_fields(job, job["id"])
        by_id = {job["id"]: job for job in listed}
        for job_id in done:  # finished: the same as GET /api/jobs/ID says
            self.assertEqual(by_id[job_id], self.call("GET", f"/api/jobs/{job_id}", expect=200))
        for job_id in done + [hanging]:
            self.check_details(by_id[job_id], job_id)
        self.assertIn(by_id[hanging]["state"], UNFINISHED)
        self.assertEqual(by_id[hanging]["mapper"], "test-hang")

        newest_two = self.call("GET", "/api/jobs?details=1&limit=2", expect=200)
        self.assertEqual([job["id"] for job in newest_two], ids[:2])
        self.assertEqual(newest_two[1], by_id[ids[1]])
        self.assertEqual(len(self.call("GET", "/api/jobs?details=1&limit=1000", expect=200)),
                         min(len(everyone), 1000))
        for query, field in (("details=1&limit=0", "limit"), ("details=1&limit=1001", "limit"),
                             ("details=1&limit=ten", "limit"), ("details=1&limit=", "limit"),
                             ("details=1&limit=-1", "limit"), ("details=yes", "details")):
            with self.subTest(query=query):
                self.assertIn(field, self.error("GET", f"/api/jobs?{query}", expect=400))


# --------------------------------------------------------------------------------------------
# 2. The course routes
# --------------------------------------------------------------------------------------------


class TestCourseRoutes(WebTestCase):
    A = [[1, 2, 3], [4, 5, 6]]
    B = [[7, 8], [9, 10], [11, 12]]

    def wait_for_course_result(self, task_id: int) -> Dict[str, Any]:
        def finished() -> Optional[Dict[str, Any]]:
            status = self.call("GET", f"/status/{task_id}", expect=200)
            self.assertEqual(set(status), {"task_id", "status", "progress"}, status)
            self.assertEqual(status["task_id"], task_id)
            self.assertEqual(set(status["progress"]),
                             {"map_done", "map_total", "reduce_done", "reduce_total"}, status)
            reply = http(self.web.port, "GET", f"/result/{task_id}")
            if reply.status == 202:
                pending = self.check_json(reply, 202, f"GET /result/{task_id}")
                self.assertEqual(pending["task_id"], task_id)
                self.assertIn(pending["status"], UNFINISHED, pending)
                return None
            return self.check_json(reply, 200, f"GET /result/{task_id}")
        return wait_for(f"task {task_id} to finish", finished)

    def test_multiply(self) -> None:
        answer = self.call("POST", "/multiply", {"matrix_a": self.A, "matrix_b": self.B},
                           expect=202)
        self.assertEqual(set(answer), {"task_id", "status"}, answer)
        self.assertEqual(answer["status"], "queued")
        task_id = answer["task_id"]
        result = self.wait_for_course_result(task_id)
        self.assertEqual(result, {"task_id": task_id, "status": "done",
                                  "result": reference_product(self.A, self.B)})
        tasks = self.call("GET", "/tasks", expect=200)
        self.assertEqual(set(tasks), {"tasks"}, tasks)
        self.assertIn({"task_id": task_id, "status": "done"}, tasks["tasks"])

    def test_multiply_with_curl(self) -> None:
        a = [[0.5, -1], [2, 3], [4, 1e-3]]
        b = [[1, 2, 3, 4], [5, 6, 7, 8]]
        status, body, content_type = self.curl(
            "-X", "POST", "-H", "Content-Type: application/json",
            "--data-binary", json.dumps({"matrix_a": a, "matrix_b": b}),
            f"http://127.0.0.1:{self.web.port}/multiply")
        self.assertEqual(status, 202, body)
        self.assertEqual(content_type.split(";")[0], "application/json")
        task_id = json.loads(body)["task_id"]
        result = self.wait_for_course_result(task_id)
        self.assertEqual(result["status"], "done", result)
        self.assert_matrix(result["result"], reference_product(a, b))

    def test_remove(self) -> None:
        task_id = self.submit(slow_job(60000))
        self.cancel_when_done(task_id)
        wait_for(f"task {task_id} to run", lambda: self.call(
            "GET", f"/status/{task_id}", expect=200)["status"] == "mapping")
        self.assertEqual(self.call("DELETE", f"/remove/{task_id}", expect=200),
                         {"task_id": task_id, "status": "cancelled"})
        self.assertEqual(self.call("GET", f"/result/{task_id}", expect=200),
                         {"task_id": task_id, "status": "cancelled"})
        self.assertEqual(self.call("GET", f"/status/{task_id}", expect=200)["status"],
                         "cancelled")

    def test_results_of_other_jobs(self) -> None:
        words = self.submit({"mapper": "words", "documents": TEXTS})
        self.assertEqual(self.wait_for_course_result(words),
                         {"task_id": words, "status": "done",
                          "result": reference_word_counts(TEXTS)})
        failed = self.submit({"mapper": "test-throw", "reducer": "sum", "text": "x"})
        answer = self.wait_for_course_result(failed)
        self.assertEqual((answer["task_id"], answer["status"]), (failed, "failed"), answer)
        self.assertIsInstance(answer.get("error"), str, answer)

    def test_multiply_errors(self) -> None:
        for what, body, field in (
                ("ragged", {"matrix_a": [[1, 2], [3, 4, 5]], "matrix_b": self.B}, "matrix_a"),
                ("not a number", {"matrix_a": self.A, "matrix_b": [[1, 2], ["x", 4]]},
                 "matrix_b"),
                ("no matrix_b", {"matrix_a": self.A}, "matrix_b"),
                ("rows not lists", {"matrix_a": [1, 2], "matrix_b": self.B}, "matrix_a"),
                ("not an object", [self.A, self.B], None)):
            with self.subTest(what):
                message = self.error("POST", "/multiply", body, expect=400)
                if field:
                    self.assertIn(field, message)
        self.error("POST", "/multiply", b'{"matrix_a": [[1]], ', expect=400)


# --------------------------------------------------------------------------------------------
# 3. Errors
# --------------------------------------------------------------------------------------------

# (what, body, a field the message must name or None): 400, each of them.
SHAPE_ERRORS = [
    ("no mapper", {"text": "a b"}, "mapper"),
    ("mapper not a string", {"mapper": 7, "text": "a"}, "mapper"),
    ("reducer not a string", {"mapper": "words", "reducer": ["sum"], "text": "a"}, "reducer"),
    ("text not a string", {"mapper": "words", "text": 5}, "text"),
    ("documents not a list", {"mapper": "words", "documents": "abc"}, "documents"),
    ("a document neither object nor string", {"mapper": "words", "documents": [1]}, "documents"),
    ("a document's text not a string",
     {"mapper": "words", "documents": [{"name": "a", "text": 3}]}, None),
    ("a document's name not a string",
     {"mapper": "words", "documents": [{"name": 1, "text": "a"}]}, None),
    ("numbers not a list", {"mapper": "numbers", "numbers": 3}, "numbers"),
    ("a number that is a string", {"mapper": "numbers", "numbers": [1, "2"]}, "numbers"),
    ("ragged matrix_a", {"mapper": "matmul", "matrix_a": [[1, 2], [3, 4, 5]],
                         "matrix_b": [[1], [2]]}, "matrix_a"),
    ("a string in matrix_b", {"mapper": "matmul", "matrix_a": [[1, 2]],
                              "matrix_b": [[1], ["x"]]}, "matrix_b"),
    ("matrix_a not lists of rows", {"mapper": "matmul", "matrix_a": [1, 2],
                                    "matrix_b": [[1], [2]]}, "matrix_a"),
    ("matrix_a without matrix_b", {"mapper": "matmul", "matrix_a": [[1]]}, "matrix_b"),
    ("two inputs", {"mapper": "words", "text": "a", "documents": ["b"]}, None),
    ("two other inputs", {"mapper": "numbers", "numbers": [1], "matrix_a": [[1]],
                          "matrix_b": [[1]]}, None),
    ("no input", {"mapper": "words"}, None),
    ("options not an object", {"mapper": "words", "text": "a", "options": 3}, "options"),
    ("an option not a number", {"mapper": "words", "text": "a",
                                "options": {"partitions": "x"}}, "partitions"),
    ("a negative option", {"mapper": "words", "text": "a", "options": {"partitions": -1}}, None),
    ("idempotency_key not a string", {"mapper": "words", "text": "a", "idempotency_key": 5},
     "idempotency_key"),
    ("idempotency_key over 64 bytes", {"mapper": "words", "text": "a",
                                       "idempotency_key": "k" * 65}, None),
    ("a list", [{"mapper": "words", "text": "a"}], None),
    ("a string", "words", None),
]


class TestErrors(WebTestCase):
    small_web: Program

    @classmethod
    def setUpClass(cls) -> None:
        # A second mrd-web, with a 1 MiB limit on bodies, in front of the same mrd.
        cls.small_web = start_web(work, "small-web", [main_mrd.address], "--max-body-mib", "1")
        cls.addClassCleanup(cls.small_web.stop)

    def test_a_chunked_body_is_411_and_a_big_form_413_saying_why(self) -> None:
        connection = HTTPConnection("127.0.0.1", self.web.port, timeout=HTTP_SECONDS)
        try:
            body = json.dumps({"mapper": "words", "text": "never parsed"}).encode()
            connection.request("POST", "/api/jobs", body=iter([body]),
                               headers={"Content-Type": "application/json"},
                               encode_chunked=True)
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            connection.close()
        error = self.check_json(reply, 411, "a chunked POST /api/jobs")
        self.assertIn("Content-Length", error["error"])
        # curl -d and urllib send a form unless told otherwise: past 8 KiB, the 413 says so.
        form = urllib.request.Request(
            f"http://127.0.0.1:{self.web.port}/api/jobs", method="POST",
            data=json.dumps({"mapper": "words", "text": "x " * 5000}).encode())
        with self.assertRaises(urllib.error.HTTPError) as refused:
            OPENER.open(form, timeout=HTTP_SECONDS)
        with refused.exception as response:
            reply = Reply(response.code, response.headers, response.read())
        error = self.check_json(reply, 413, "a 10 KB form-encoded POST")
        self.assertIn("Content-Type: application/json", error["error"])

    def test_body_not_json(self) -> None:
        for body in (b"", b"not json", b'{"mapper": "words", "text": ', b"{'mapper': 'words'}"):
            with self.subTest(body=body):
                self.error("POST", "/api/jobs", body, expect=400)
                self.error("POST", "/multiply", body, expect=400)

    def test_bodies_of_the_wrong_shape(self) -> None:
        for what, body, field in SHAPE_ERRORS:
            with self.subTest(what):
                message = self.error("POST", "/api/jobs", body, expect=400)
                if field:
                    self.assertIn(field, message)

    def test_bad_job_from_mrd(self) -> None:
        for job in ({"mapper": "frobnicate", "reducer": "sum", "text": "a"},
                    {"mapper": "Words", "reducer": "sum", "text": "a"},
                    {"mapper": "words", "reducer": "stats", "text": "a"},
                    {"mapper": "numbers", "text": "not numbers"},
                    {"mapper": "words", "text": "a", "options": {"partitions": 100000}}):
            with self.subTest(job=job):
                self.error("POST", "/api/jobs", job, expect=400)

    def test_id_not_a_number(self) -> None:
        for bad in ("abc", "12abc"):
            for method, path in (("GET", f"/api/jobs/{bad}"), ("GET", f"/api/jobs/{bad}/result"),
                                 ("DELETE", f"/api/jobs/{bad}"), ("GET", f"/status/{bad}"),
                                 ("GET", f"/result/{bad}"), ("DELETE", f"/remove/{bad}")):
                with self.subTest(method=method, path=path):
                    self.error(method, path, expect=400)

    def test_no_such_route(self) -> None:
        for method, path in (("GET", "/nope"), ("GET", "/api/nope"), ("POST", "/api/frobnicate"),
                             ("GET", "/api/jobs/1/frobnicate"), ("GET", "/multiply/now")):
            with self.subTest(method=method, path=path):
                self.error(method, path, {} if method == "POST" else None, expect=404)

    def test_no_such_job(self) -> None:
        newest = self.submit({"mapper": "words", "text": "an id"})
        for job_id in (4000000000, newest + 100000):
            for method, path in (("GET", f"/api/jobs/{job_id}"),
                                 ("GET", f"/api/jobs/{job_id}/result"),
                                 ("DELETE", f"/api/jobs/{job_id}"), ("GET", f"/status/{job_id}"),
                                 ("GET", f"/result/{job_id}"), ("DELETE", f"/remove/{job_id}")):
                with self.subTest(method=method, path=path):
                    self.error(method, path, expect=404)

    def test_body_over_max_body_mib(self) -> None:
        words = ("word " * 200000).strip()  # 1,000,000 bytes of text: under 1 MiB
        self.assertEqual(
            self.run_job_on(self.small_web, {"mapper": "words", "text": words}),
            [{"key": "word", "count": 200000}])
        over = json.dumps({"mapper": "words", "text": "x" * (3 << 19)}).encode()  # 1.5 MiB
        reply = post_large(self.small_web.port, "/api/jobs", over)
        self.check_json(reply, 413, "POST /api/jobs of 1.5 MiB, --max-body-mib 1")
        reply = post_large(self.small_web.port, "/multiply", over)
        self.check_json(reply, 413, "POST /multiply of 1.5 MiB, --max-body-mib 1")
        # The default limit (16 MiB) takes it.
        self.assertEqual(self.run_job_on(self.web, json.loads(over)),
                         [{"key": "x" * (3 << 19), "count": 1}])

    def run_job_on(self, web: Program, job: Dict[str, Any]) -> Any:
        job_id = self.submit(job, web=web)
        answer = self.wait_until_finished(job_id, web=web)
        self.assertEqual(answer["state"], "done", answer)
        return answer["result"]


class TestErrorsFromMrd(WebTestCase):
    """The rows of the Errors table that need an mrd in a given state: each test starts its own
    (with --enable-test-jobs), and an mrd-web in front of it."""
    front: Program

    @property
    def web(self) -> Program:
        return self.front

    def start(self, name: str, *options: str, drain_seconds: int = 0) -> Program:
        server = start_mrd(work, name, "--enable-test-jobs", *options,
                           drain_seconds=drain_seconds)
        self.addCleanup(server.stop, signal.SIGKILL)
        self.front = start_web(work, name + "-web", [server.address])
        self.addCleanup(self.front.stop)
        return server

    def test_queue_full_is_429_with_retry_after(self) -> None:
        self.start("full-mrd", "--max-queued-jobs", "1")
        hanging = self.submit(HANGING_JOB)
        self.cancel_when_done(hanging)
        reply = http(self.web.port, "POST", "/api/jobs", {"mapper": "words", "text": "a"})
        self.check_json(reply, 429, "POST /api/jobs with the queue full")
        self.assertEqual(reply.headers.get("Retry-After"), "1")
        reply = http(self.web.port, "POST", "/multiply", {"matrix_a": [[1]], "matrix_b": [[1]]})
        self.check_json(reply, 429, "POST /multiply with the queue full")
        self.assertEqual(reply.headers.get("Retry-After"), "1")
        self.call("DELETE", f"/api/jobs/{hanging}", expect=200)
        self.assertEqual(self.run_job({"mapper": "words", "text": "room again"}),
                         reference_word_counts(["room again"]))

    def test_evicted_result_is_410(self) -> None:
        self.start("forgetful-mrd", "--max-retained-mib", "0")  # keeps the newest result only
        first = self.submit({"mapper": "words", "text": "first"})
        self.wait_until_finished(first)
        self.run_job({"mapper": "words", "text": "second"})
        wait_for(f"job {first} to be evicted", lambda: http(
            self.web.port, "GET", f"/api/jobs/{first}/result").status != 200)
        for method, path in (("GET", f"/api/jobs/{first}/result"), ("GET", f"/result/{first}"),
                             ("GET", f"/api/jobs/{first}"), ("GET", f"/status/{first}")):
            with self.subTest(method=method, path=path):
                self.error(method, path, expect=410)

    def test_shutting_down_is_503(self) -> None:
        # A draining mrd takes no SUBMIT, and answers everything else until its jobs are over.
        server = self.start("draining-mrd", drain_seconds=30)
        hanging = self.submit(HANGING_JOB)
        self.wait_for_state(hanging, "mapping")
        os.kill(server.process.pid, signal.SIGTERM)
        wait_for("mrd to refuse SUBMIT", lambda: http(
            self.web.port, "POST", "/api/jobs", {"mapper": "words", "text": "a"}).status != 202)
        self.error("POST", "/api/jobs", {"mapper": "words", "text": "a"}, expect=503)
        self.error("POST", "/multiply", {"matrix_a": [[1]], "matrix_b": [[1]]}, expect=503)
        self.assertEqual(self.state(hanging), "mapping")
        self.call("DELETE", f"/api/jobs/{hanging}", expect=200)
        self.assertEqual(server.process.wait(timeout=10), 0, "its last job over, mrd stops")

    def test_not_mrd_is_502(self) -> None:
        impostor = Impostor()
        self.addCleanup(impostor.close)
        self.front = start_web(work, "impostor-web", [impostor.address])
        self.addCleanup(self.front.stop)
        for method, path, body in (("POST", "/api/jobs", {"mapper": "words", "text": "a"}),
                                   ("GET", "/api/jobs", None), ("GET", "/api/jobs/1", None),
                                   ("GET", "/result/1", None)):
            with self.subTest(method=method, path=path):
                self.error(method, path, body, expect=502)
        self.assertEqual(http(self.web.port, "GET", "/healthz").status, 503)


# --------------------------------------------------------------------------------------------
# 4. /metrics, /healthz and /api/stats
# --------------------------------------------------------------------------------------------


class TestMetrics(WebTestCase):

    def no_unfinished_jobs(self) -> List[Dict[str, Any]]:
        jobs = self.call("GET", "/api/jobs", expect=200)
        return jobs if not any(job["state"] in UNFINISHED for job in jobs) else []

    def test_metrics(self) -> None:
        # Something to count: a job done, one cancelled, one failed.
        self.wait_until_finished(self.submit({"mapper": "words", "text": "counted"}))
        cancelled = self.submit(HANGING_JOB)
        self.call("DELETE", f"/api/jobs/{cancelled}", expect=200)
        self.wait_until_finished(self.submit({"mapper": "test-throw", "reducer": "sum",
                                              "text": "x"}))
        # Every test cancels what it leaves running; then mrd's figures stand still.
        jobs = wait_for("every job to be finished", self.no_unfinished_jobs)
        kept = collections.Counter(job["state"] for job in jobs)
        self.assertGreaterEqual(kept["done"], 1)

        _, metrics = self.scrape(self.web)
        server = main_mrd.address
        for name, kind in METRIC_TYPES.items():
            with self.subTest(metric=name):
                self.assertEqual(metrics.types.get(name), kind)
                self.assertTrue(metrics.values(name, server=server), f"no {name}")
        for name, labels, _ in metrics.samples:
            self.assertEqual(labels.get("server"), server, f"{name} {labels}")
        self.assertEqual(metrics.value("mrd_up", server=server), 1)
        for state in STATES:
            self.assertEqual(metrics.value("mrd_jobs", server=server, state=state), kept[state],
                             state)
        self.assertEqual(len(metrics.values("mrd_jobs", server=server)), len(STATES))
        self.assertGreaterEqual(metrics.value("mrd_jobs_done_total", server=server), kept["done"])
        self.assertGreaterEqual(metrics.value("mrd_jobs_failed_total", server=server),
                                max(kept["failed"], 1))
        self.assertGreaterEqual(metrics.value("mrd_jobs_cancelled_total", server=server),
                                max(kept["cancelled"], 1))
        self.assertGreaterEqual(metrics.value("mrd_jobs_submitted_total", server=server),
                                len(jobs))
        self.assertEqual(metrics.value("mrd_jobs_unfinished", server=server), 0)
        self.assertEqual(metrics.value("mrd_workers", server=server), WORKERS)
        self.assertGreater(metrics.value("mrd_retained_result_bytes", server=server), 0)
        self.assertGreaterEqual(metrics.value("mrd_connections_open", server=server), 0)
        self.assertGreaterEqual(metrics.value("mrd_requests_rejected_total", server=server), 0)
        self.assertGreaterEqual(metrics.value("mrd_jobs_expired_total", server=server), 0)
        self.assertGreaterEqual(metrics.value("mrd_worker_restarts_total", server=server), 0)
        uptime = metrics.value("mrd_uptime_seconds", server=server)
        self.assertGreater(uptime, 0)
        self.assertLess(uptime, time.monotonic() - MODULE_START + 5, "mrd started with the module")
        duration = metrics.value("mrd_scrape_duration_seconds", server=server)
        self.assertTrue(0 <= duration < HTTP_SECONDS, duration)
        # The latency histograms: cumulative buckets in seconds, +Inf last and equal to _count.
        for name in ("mrd_task_duration_seconds", "mrd_job_duration_seconds"):
            with self.subTest(histogram=name):
                self.assertEqual(metrics.types.get(name), "histogram")
                buckets = [(labels["le"], value) for sample_name, labels, value in metrics.samples
                           if sample_name == name + "_bucket"]
                self.assertEqual(buckets[-1][0], "+Inf", buckets)
                bounds = [float(le) for le, _ in buckets[:-1]]
                self.assertEqual(bounds, sorted(bounds), buckets)
                counts = [value for _, value in buckets]
                self.assertEqual(counts, sorted(counts), "cumulative")
                self.assertEqual(counts[-1], metrics.value(name + "_count", server=server))
                self.assertGreaterEqual(metrics.value(name + "_sum", server=server), 0)
        self.assertGreaterEqual(metrics.value("mrd_job_duration_seconds_count", server=server),
                                metrics.value("mrd_jobs_done_total", server=server))
        self.assertEqual(metrics.value("mrd_task_duration_seconds_count", server=server),
                         metrics.value("mrd_tasks_done_total", server=server))
        self.assertEqual(metrics.value("mrd_workers_busy", server=server), 0, "nothing runs")

        # Each scrape asks mrd afresh, on a new connection.
        again = self.metrics_with_urllib()
        for counter in ("mrd_connections_total", "mrd_requests_total"):
            self.assertGreater(again.value(counter, server=server),
                               metrics.value(counter, server=server), counter)
        # The same figures as /api/stats (nothing runs now, so they stand still).
        stats = self.call("GET", "/api/stats", expect=200)["servers"][0]["stats"]
        for key in ("jobs_submitted", "jobs_done", "jobs_failed", "jobs_cancelled",
                    "jobs_expired", "jobs_unfinished", "workers"):
            name = "mrd_" + key + ("" if key in ("jobs_unfinished", "workers") else "_total")
            self.assertEqual(stats[key], again.value(name, server=server), key)
        self.assertGreaterEqual(stats["uptime_ms"] / 1000,
                                again.value("mrd_uptime_seconds", server=server))

    def metrics_with_urllib(self) -> Metrics:
        reply = http(self.web.port, "GET", "/metrics")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.content_type(), "text/plain")
        return parse_metrics(reply.body.decode())

    def test_healthz(self) -> None:
        reply = http(self.web.port, "GET", "/healthz")
        self.assertEqual((reply.status, reply.body.strip()), (200, b"ok"))
        self.assertEqual(reply.content_type(), "text/plain")

    def test_api_stats(self) -> None:
        answer = self.call("GET", "/api/stats", expect=200)
        self.assertEqual(set(answer), {"servers"}, answer)
        self.assertEqual(len(answer["servers"]), 1, answer)
        entry = answer["servers"][0]
        self.assertEqual(set(entry), {"server", "up", "stats"}, entry)
        self.assertEqual((entry["server"], entry["up"]), (main_mrd.address, True))
        self.assertEqual(set(entry["stats"]), STATS_KEYS | HISTOGRAM_KEYS)
        for key, value in entry["stats"].items():
            if key in HISTOGRAM_KEYS:
                counts = [bucket["count"] for bucket in value["buckets"]]
                self.assertEqual(counts, sorted(counts), f"{key}: cumulative")
                self.assertIsNone(value["buckets"][-1]["le"], f"{key}: +Inf last")
                continue
            self.assertIsInstance(value, int, key)
            self.assertGreaterEqual(value, 0, key)
        self.assertEqual(entry["stats"]["workers"], WORKERS)
        self.assertGreater(entry["stats"]["uptime_ms"], 0)


# --------------------------------------------------------------------------------------------
# 5. mrd stops and comes back; two servers behind one mrd-web
# --------------------------------------------------------------------------------------------


class TestServerDownAndBack(WebTestCase):
    """An mrd of its own (taking SUBMIT bodies up to 1 MiB), first of two behind an mrd-web."""
    mrd: Program
    front: Program

    @classmethod
    def setUpClass(cls) -> None:
        cls.options = ("--max-frame-mib", "1")
        cls.mrd = start_mrd(work, "restarted-mrd", *cls.options)
        cls.addClassCleanup(lambda: cls.mrd.stop())
        cls.front = start_web(work, "two-servers-web", [cls.mrd.address, main_mrd.address])
        cls.addClassCleanup(cls.front.stop)

    @property
    def web(self) -> Program:
        return self.front

    def multiply_works(self) -> None:
        answer = self.call("POST", "/multiply", {"matrix_a": [[1, 2], [3, 4]],
                                                 "matrix_b": [[5, 6], [7, 8]]}, expect=202)
        task_id = answer["task_id"]

        def finished() -> Optional[Dict[str, Any]]:
            reply = http(self.web.port, "GET", f"/result/{task_id}")
            return None if reply.status == 202 else self.check_json(reply, 200, "GET /result")
        self.assertEqual(wait_for(f"task {task_id} to finish", finished),
                         {"task_id": task_id, "status": "done", "result": [[19, 22], [43, 50]]})

    def test_frame_too_large_for_mrd(self) -> None:
        # Under mrd-web's 16 MiB, over this mrd's --max-frame-mib 1.
        text = "y" * (3 << 19)
        self.error("POST", "/api/jobs", {"mapper": "words", "text": text}, expect=413)
        self.multiply_works()  # and the next request is served as usual

    def test_mrd_down_then_back(self) -> None:
        down, up = self.mrd.address, main_mrd.address
        self.multiply_works()
        self.assertEqual(http(self.web.port, "GET", "/healthz").status, 200)

        self.assertEqual(self.mrd.stop(), 0)
        for method, path, body in (("POST", "/api/jobs", {"mapper": "words", "text": "a"}),
                                   ("POST", "/multiply", {"matrix_a": [[1]], "matrix_b": [[1]]}),
                                   ("GET", "/api/jobs", None), ("GET", "/api/jobs/1", None),
                                   ("GET", "/tasks", None), ("GET", "/result/1", None),
                                   ("DELETE", "/api/jobs/1", None)):
            with self.subTest(method=method, path=path):
                self.error(method, path, body, expect=503)

        health = http(self.web.port, "GET", "/healthz")
        self.assertEqual(health.status, 503, health.body)
        lines = health.body.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, f"one line per server down: {lines}")
        self.assertIn(down, lines[0])
        self.assertNotIn(up, lines[0])

        _, metrics = self.scrape(self.web)  # promtool passes with a server down, too
        self.assertEqual(metrics.value("mrd_up", server=down), 0)
        self.assertEqual(metrics.value("mrd_up", server=up), 1)
        left = {name for name, labels, _ in metrics.samples if labels.get("server") == down}
        self.assertEqual(left - {"mrd_scrape_duration_seconds"}, {"mrd_up"},
                         "a server that did not answer has no other series")
        self.assertEqual(len(metrics.values("mrd_jobs", server=up)), len(STATES))

        servers = self.call("GET", "/api/stats", expect=200)["servers"]
        self.assertEqual([entry["server"] for entry in servers], [down, up])
        self.assertIs(servers[0]["up"], False)
        self.assertIsInstance(servers[0].get("error"), str, servers[0])
        self.assertNotIn("stats", servers[0])
        self.assertIs(servers[1]["up"], True)
        self.assertEqual(set(servers[1]["stats"]), STATS_KEYS | HISTOGRAM_KEYS)

        # Back on the same port: mrd-web carries on without a restart of its own.
        type(self).mrd = start_mrd(work, "restarted-mrd", *self.options, listen=down)
        self.assertEqual(self.mrd.address, down)
        self.multiply_works()
        self.assertEqual(http(self.web.port, "GET", "/healthz").status, 200)
        _, metrics = self.scrape(self.web)
        self.assertEqual(metrics.value("mrd_up", server=down), 1)
        self.assertEqual(metrics.value("mrd_jobs_submitted_total", server=down), 1,
                         "a new mrd: the one job just submitted")


# --------------------------------------------------------------------------------------------
# 6. Tokens and tenants
# --------------------------------------------------------------------------------------------


class TestTenants(WebTestCase):
    """An mrd with --auth-file; one mrd-web without a token, one with ops's (admin) token."""
    mrd: Program
    front: Program
    admin_front: Program

    @classmethod
    def setUpClass(cls) -> None:
        auth_file, token_file = work / "tokens", work / "ops.token"
        write_auth_file(auth_file)
        token_file.write_text(OPS_TOKEN + "\n")
        cls.mrd = start_mrd(work, "auth-mrd", "--auth-file", str(auth_file), "--enable-test-jobs")
        cls.addClassCleanup(cls.mrd.stop)
        cls.front = start_web(work, "auth-web", [cls.mrd.address])
        cls.addClassCleanup(cls.front.stop)
        cls.admin_front = start_web(work, "auth-web-admin", [cls.mrd.address],
                                    "--token-file", str(token_file))
        cls.addClassCleanup(cls.admin_front.stop)

    @property
    def web(self) -> Program:
        return self.front

    def assert_401(self, method: str, path: str, body: Any = None, token: Optional[str] = None,
                   web: Optional[Program] = None) -> None:
        reply = http((web or self.web).port, method, path, body, token)
        self.check_json(reply, 401, f"{method} {path} with token {token!r}")
        self.assertTrue((reply.headers.get("WWW-Authenticate") or "").startswith("Bearer"),
                        reply.headers.get("WWW-Authenticate"))

    def test_no_token_or_an_unknown_one_is_401(self) -> None:
        job_id = self.submit({"mapper": "words", "text": "mine"}, ALICE_TOKEN)
        for token in (None, "not-a-token"):
            for method, path, body in (("POST", "/api/jobs", {"mapper": "words", "text": "a"}),
                                       ("POST", "/multiply", {"matrix_a": [[1]],
                                                              "matrix_b": [[1]]}),
                                       ("GET", "/api/jobs", None), ("GET", "/tasks", None),
                                       ("GET", "/api/jobs?details=1", None),
                                       ("GET", f"/api/jobs/{job_id}", None),
                                       ("GET", f"/api/jobs/{job_id}/result", None),
                                       ("DELETE", f"/api/jobs/{job_id}", None)):
                with self.subTest(token=token, method=method, path=path):
                    self.assert_401(method, path, body, token)
        self.assertEqual(self.wait_until_finished(job_id, ALICE_TOKEN)["state"], "done",
                         "nobody cancelled it")

    def test_tenants_see_their_own_jobs_only(self) -> None:
        hanging = self.submit(HANGING_JOB, BOB_TOKEN)
        self.addCleanup(lambda: http(self.web.port, "DELETE", f"/api/jobs/{hanging}", None,
                                     BOB_TOKEN))
        bobs = self.submit({"mapper": "words", "text": "bob's words"}, BOB_TOKEN)
        self.assertEqual(self.wait_until_finished(bobs, BOB_TOKEN)["result"],
                         reference_word_counts(["bob's words"]))
        alices = self.submit({"mapper": "words", "text": "alice's words"}, ALICE_TOKEN)
        self.wait_until_finished(alices, ALICE_TOKEN)

        for job_id in (hanging, bobs):
            for method, path in (("GET", f"/api/jobs/{job_id}"),
                                 ("GET", f"/api/jobs/{job_id}/result"),
                                 ("DELETE", f"/api/jobs/{job_id}"),
                                 ("GET", f"/status/{job_id}"), ("GET", f"/result/{job_id}"),
                                 ("DELETE", f"/remove/{job_id}")):
                with self.subTest(job=job_id, method=method, path=path):
                    # mrd answers another tenant's job as it answers an evicted one (JOB_EXPIRED),
                    # so that nobody learns which ids are others': 410, as docs/http.md says.
                    self.error(method, path, expect=410, token=ALICE_TOKEN)
        self.assertIn(self.state(hanging, BOB_TOKEN), UNFINISHED, "alice's DELETE did nothing")

        alice_list = self.call("GET", "/api/jobs", expect=200, token=ALICE_TOKEN)
        self.assertIn({"id": alices, "state": "done", "tenant": "alice"}, alice_list)
        self.assertEqual({job["tenant"] for job in alice_list}, {"alice"})
        alice_tasks = [task["task_id"]
                       for task in self.call("GET", "/tasks", expect=200,
                                             token=ALICE_TOKEN)["tasks"]]
        self.assertIn(alices, alice_tasks)
        self.assertNotIn(bobs, alice_tasks)
        alice_details = self.call("GET", "/api/jobs?details=1", expect=200, token=ALICE_TOKEN)
        self.assertEqual([job["id"] for job in alice_details],
                         sorted((job["id"] for job in alice_list), reverse=True))
        self.assertEqual({job["tenant"] for job in alice_details}, {"alice"})
        bob_list = self.call("GET", "/api/jobs", expect=200, token=BOB_TOKEN)
        self.assertIn({"id": bobs, "state": "done", "tenant": "bob"}, bob_list)
        self.assertNotIn(alices, [job["id"] for job in bob_list])

        # ops, an admin, sees everyone's; its token is the request's own here.
        every = self.call("GET", "/api/jobs", expect=200, token=OPS_TOKEN)
        every_details = self.call("GET", "/api/jobs?details=1&limit=1000", expect=200,
                                  token=OPS_TOKEN)
        self.assertEqual({job["tenant"] for job in every_details} & {"alice", "bob"},
                         {"alice", "bob"})
        self.assertIn({"id": alices, "state": "done", "tenant": "alice"}, every)
        self.assertIn({"id": bobs, "state": "done", "tenant": "bob"}, every)
        self.assertEqual(self.state(bobs, OPS_TOKEN), "done")

        self.assertEqual(self.call("DELETE", f"/api/jobs/{hanging}", expect=200, token=BOB_TOKEN),
                         {"id": hanging, "state": "cancelled"})

    def test_idempotency_keys_are_per_tenant(self) -> None:
        job = {"mapper": "words", "text": "one key", "idempotency_key": "shared-key"}
        alices, bobs = self.submit(job, ALICE_TOKEN), self.submit(job, BOB_TOKEN)
        self.assertNotEqual(alices, bobs)
        self.assertEqual(self.submit(job, ALICE_TOKEN), alices)

    def test_the_metrics_token_is_not_lent(self) -> None:
        self.assertEqual(http(self.admin_front.port, "GET", "/healthz").status, 200)
        _, metrics = self.scrape(self.admin_front)
        self.assertEqual(metrics.value("mrd_up", server=self.mrd.address), 1)
        stats = self.call("GET", "/api/stats", expect=200, web=self.admin_front)
        self.assertIs(stats["servers"][0]["up"], True, stats)
        # The job routes act as the request, never as mrd-web's own (admin) token.
        self.assert_401("GET", "/api/jobs", web=self.admin_front)
        self.assert_401("POST", "/api/jobs", {"mapper": "words", "text": "a"},
                        web=self.admin_front)
        alices = self.call("GET", "/api/jobs", expect=200, token=ALICE_TOKEN,
                           web=self.admin_front)
        self.assertEqual({job["tenant"] for job in alices} - {"alice"}, set())


# --------------------------------------------------------------------------------------------
# 7. Stopping
# --------------------------------------------------------------------------------------------


class TestStopping(WebTestCase):

    def test_sigterm_and_sigint_exit_0(self) -> None:
        for number, signal_number in enumerate((signal.SIGTERM, signal.SIGINT)):
            with self.subTest(signal=signal_number.name):
                web = start_web(work, f"stopped-web-{number}", [main_mrd.address])
                self.addCleanup(web.stop, signal.SIGKILL)
                self.assertEqual(http(web.port, "GET", "/healthz").status, 200)
                self.call("GET", "/api/jobs", expect=200, web=web)
                self.assertEqual(web.stop(signal_number), 0, web.log_tail())
                with self.assertRaises(OSError, msg="it no longer listens"):
                    socket.create_connection(("127.0.0.1", web.port), timeout=5).close()


class TestHttps(WebTestCase):
    """HTTPS with a certificate made here by openssl, and plain HTTP refused off loopback."""

    def test_https_serves_with_the_certificate_given(self) -> None:
        openssl = shutil.which("openssl")
        self.assertIsNotNone(openssl, "openssl is needed to make the test's certificate")
        directory = Path(tempfile.mkdtemp(dir=work))
        cert, key = directory / "cert.pem", directory / "key.pem"
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        web = start_web(work, "https-web", [main_mrd.address], "--https-cert-file", str(cert),
                        "--https-key-file", str(key))
        self.addCleanup(web.stop, signal.SIGKILL)
        url = f"https://127.0.0.1:{web.port}"
        # urllib, trusting only the test's certificate: a product through the course routes.
        context = ssl.create_default_context(cafile=str(cert))
        request = urllib.request.Request(
            url + "/multiply", method="POST",
            data=json.dumps({"matrix_a": [[1, 2]], "matrix_b": [[3], [4]]}).encode())
        with urllib.request.urlopen(request, context=context, timeout=HTTP_SECONDS) as reply:
            self.assertEqual(reply.status, 202)
            task = json.loads(reply.read())["task_id"]

        def result() -> Optional[Any]:
            with urllib.request.urlopen(f"{url}/result/{task}", context=context,
                                        timeout=HTTP_SECONDS) as reply:
                body = json.loads(reply.read())
                return body if body["status"] == "done" else None

        self.assertEqual(wait_for("the product over HTTPS", result)["result"], [[11]])
        # curl agrees, and refuses a server it cannot check.
        ok = subprocess.run(["curl", "-sS", "--cacert", str(cert), url + "/healthz"],
                            capture_output=True, timeout=HTTP_SECONDS)
        self.assertEqual(ok.stdout, b"ok\n", ok.stderr)
        unchecked = subprocess.run(["curl", "-sS", url + "/healthz"], capture_output=True,
                                   timeout=HTTP_SECONDS)
        self.assertNotEqual(unchecked.returncode, 0, "curl trusted a certificate it was not given")
        # Plain HTTP on the HTTPS port gets no answer in the clear.
        with self.assertRaises((OSError, http_client.HTTPException)):
            http(web.port, "GET", "/healthz")

    def test_plain_http_off_loopback_is_refused(self) -> None:
        refused = subprocess.run([WEB_BINARY, "--server", main_mrd.address,
                                  "--listen", "0.0.0.0:0"],
                                 capture_output=True, timeout=HTTP_SECONDS, env=clean_environment())
        self.assertEqual(refused.returncode, 2, refused.stderr)
        self.assertIn(b"refusing to serve plain HTTP on 0.0.0.0", refused.stderr)
        self.assertIn(b"--insecure", refused.stderr)


# --------------------------------------------------------------------------------------------
# 8. The page's files (the page itself, in a browser: tests/web_page_test.py)
# --------------------------------------------------------------------------------------------


class TestPageFiles(WebTestCase):

    def test_served_with_their_types_and_never_cached_unasked(self) -> None:
        for path, content_type in (("/", "text/html; charset=utf-8"),
                                   ("/page.js", "text/javascript; charset=utf-8"),
                                   ("/page.css", "text/css; charset=utf-8")):
            with self.subTest(path=path):
                reply = http(self.web.port, "GET", path)
                self.assertEqual(reply.status, 200, reply.body[:300])
                self.assertEqual(reply.headers.get("Content-Type"), content_type)
                self.assertEqual(reply.headers.get("Cache-Control"), "no-cache")
                self.assertEqual(reply.headers.get("X-Content-Type-Options"), "nosniff")
                self.assertIn("default-src 'self'",
                              reply.headers.get("Content-Security-Policy") or "")
                self.assertGreater(len(reply.body), 500)
                # Nothing from another site: no address but the SVG namespace's name.
                addresses = set(re.findall(rb"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]+",
                                           reply.body))
                self.assertLessEqual(addresses, {b"http://www.w3.org"}, addresses)
        page = http(self.web.port, "GET", "/").body
        self.assertEqual(set(re.findall(rb'(?:src|href)="(/[^"]*)"', page)),
                         {b"/page.js", b"/page.css"})
        self.error("GET", "/pagexjs", expect=404)  # a name, not a pattern
        self.error("GET", "/index.html", expect=404)

    def test_every_answer_has_a_date(self) -> None:
        """RFC 9110's Date, which the page reckons ages by: on pages, JSON and errors."""
        for path in ("/", "/api/jobs", "/api/stats", "/no-such-route", "/api/jobs/x"):
            with self.subTest(path=path):
                reply = http(self.web.port, "GET", path)
                date = email.utils.parsedate_to_datetime(reply.headers.get("Date"))
                self.assertLess(abs(date.timestamp() - time.time()), 5, reply.headers.get("Date"))
                self.assertTrue(reply.headers.get("Date").endswith(" GMT"))


if __name__ == "__main__":
    unittest.main()
