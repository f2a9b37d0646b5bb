"""Tests of the Python mrd client, against docs/protocol.md and a real mrd.

Environment:
  MRD_PROTOCOL_DOC  docs/protocol.md (default: ../../docs/protocol.md from this file)
  MRD_BINARY        the mrd server; tests that need a server are skipped without it
  MRCTL_BINARY      the C++ mrctl; the CLI comparisons are skipped without it

Run: python3 -m unittest -v test_mrd_client
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import mrctl
import mrd_client as mrd
from mrd_client import (AuthReply, DetailedStats, Document, Hello, HelloReply, Histogram,
                        JobDetails, JobEntry, JobState, Matrix, MatrixPair, Numbers, Opcode,
                        Progress, Role, ServerStats, Status, SubmitRequest)

HERE = Path(__file__).resolve().parent
PROTOCOL_DOC = Path(os.environ.get("MRD_PROTOCOL_DOC", HERE / ".." / ".." / "docs" / "protocol.md"))
MRD_BINARY = os.environ.get("MRD_BINARY")
MRCTL_BINARY = os.environ.get("MRCTL_BINARY")
MRCTL_PY = HERE / "mrctl.py"

SERVER_START_SECONDS = 15


# --------------------------------------------------------------------------------------------
# Reading docs/protocol.md
# --------------------------------------------------------------------------------------------

EXAMPLE_BLOCK = re.compile(r"<!-- example: ([\w-]+) -->\s*```[^\n]*\n(.*?)```", re.DOTALL)
RECIPE_BLOCK = re.compile(r"<!-- recipe -->\s*```sh\n(.*?)\n```\s*```\n(.*?)```", re.DOTALL)


def read_doc() -> str:
    return PROTOCOL_DOC.read_text(encoding="utf-8")


def doc_examples() -> Dict[str, bytes]:
    """Every ``<!-- example: NAME -->`` hex block of the document, as bytes."""
    return {name: bytes.fromhex("".join(block.split()))
            for name, block in EXAMPLE_BLOCK.findall(read_doc())}


def printf_bytes(text: str) -> bytes:
    """What bash's printf makes of a format with only literal characters and \\xHH escapes."""
    out, index = bytearray(), 0
    while index < len(text):
        if text.startswith("\\x", index):
            out.append(int(text[index + 2:index + 4], 16))
            index += 4
        else:
            out += text[index].encode()
            index += 1
    return bytes(out)


def recipe_request(command: str) -> bytes:
    """The bytes a recipe's shell command sends."""
    printf = re.match(r"printf '([^']*)'", command)
    if printf:
        return printf_bytes(printf.group(1))
    echo = re.match(r"echo '([0-9a-f ]*)' \| xxd -r -p", command)
    if echo:
        return bytes.fromhex(echo.group(1).replace(" ", ""))
    raise ValueError(f"unrecognised recipe: {command}")


def xxd_bytes(dump: str) -> bytes:
    """The bytes of an ``xxd -g1`` dump (16 groups of 'hh ' after 'offset: ')."""
    data = bytearray()
    for line in dump.strip().splitlines():
        hex_part = line.split(": ", 1)[1][:48]
        data += bytes.fromhex("".join(hex_part.split()))
    return bytes(data)


def doc_recipes() -> List[Tuple[bytes, bytes]]:
    """``(request bytes, reply bytes)`` of every recipe in section 9."""
    return [(recipe_request(command), xxd_bytes(output))
            for command, output in RECIPE_BLOCK.findall(read_doc())]


# --------------------------------------------------------------------------------------------
# Reference computations (section 7), independent of the client code
# --------------------------------------------------------------------------------------------


def reference_words(text: bytes) -> List[bytes]:
    """Maximal runs of [A-Za-z0-9] or bytes >= 0x80; ASCII lower-cased."""
    return [word.lower() for word in re.findall(rb"[A-Za-z0-9\x80-\xff]+", text)]


def sorted_counts(counter: collections.Counter) -> List[Tuple[bytes, int]]:
    """Most frequent first, ties by key in byte order (section 8, kind 0)."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def reference_word_counts(documents: List[Document]) -> List[Tuple[bytes, int]]:
    counter = collections.Counter()
    for document in documents:
        counter.update(reference_words(mrd.as_bytes(document.text)))
    return sorted_counts(counter)


def reference_bigrams(documents: List[Document]) -> List[Tuple[bytes, int]]:
    counter = collections.Counter()
    for document in documents:
        words = reference_words(mrd.as_bytes(document.text))
        counter.update(first + b" " + second for first, second in zip(words, words[1:]))
    return sorted_counts(counter)


def reference_index(documents: List[Document]) -> List[Tuple[bytes, List[bytes]]]:
    postings: Dict[bytes, set] = collections.defaultdict(set)
    for document in documents:
        for word in reference_words(mrd.as_bytes(document.text)):
            postings[word].add(mrd.as_bytes(document.name))
    return [(word, sorted(names)) for word, names in sorted(postings.items())]


def reference_statistics(values: List[float]) -> mrd.StatisticsResult:
    ordered = sorted(values)
    count = len(ordered)
    middle = count // 2
    median = ordered[middle] if count % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    frequency = collections.Counter(ordered)
    mode = min(frequency, key=lambda value: (-frequency[value], value))
    return mrd.StatisticsResult(count, math.fsum(ordered) / count, median, mode,
                                ordered[0], ordered[-1])


def reference_product(a: Matrix, b: Matrix) -> Matrix:
    values = [math.fsum(a.at(r, k) * b.at(k, c) for k in range(a.cols))
              for r in range(a.rows) for c in range(b.cols)]
    return Matrix(a.rows, b.cols, values)


SAMPLE_TEXTS = [
    b"Don't STOP-me, caf\xc3\xa9! The quick brown fox jumps over the lazy dog. THE END.",
    b"to be or not to be\nthat is the question: whether 'tis nobler in the mind to suffer",
    b"tab\tseparated\x00nul\x01bytes, digits 42 and x86_64 and \xff\xfe high bytes\r\n",
    b"",
    b"repeat " * 50 + b"the the THE tHe",
]


def sample_documents() -> List[Document]:
    return [Document(f"doc{number}.txt", text) for number, text in enumerate(SAMPLE_TEXTS)]


# --------------------------------------------------------------------------------------------
# The real server, shared by every test that needs it
# --------------------------------------------------------------------------------------------



def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends on `sock` until it closes the connection."""
    stream = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return stream
        stream += chunk


class ServerProcess:
    """An mrd on an ephemeral port, started once and stopped at the end by its PID."""

    def __init__(self, binary: str, *options: str):
        self.directory = tempfile.TemporaryDirectory(prefix="mrd-pytest-")
        port_file = Path(self.directory.name) / "port"
        self.log = open(Path(self.directory.name) / "mrd.log", "wb")
        self.process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--port-file", str(port_file), "--workers", "2",
             "--log-level", "warn", *options],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = self._wait_for_port(port_file)

    def _wait_for_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mrd exited with {self.process.returncode} at start")
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text.isdigit():
                return int(text)
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("mrd did not write its port file in time")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connect(self, timeout: float = 30.0) -> mrd.Connection:
        return mrd.Connection.connect("127.0.0.1", self.port, timeout)

    def raw_socket(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        self.directory.cleanup()


_server: Optional[ServerProcess] = None


def shared_server() -> ServerProcess:
    global _server
    if not MRD_BINARY:
        raise unittest.SkipTest("MRD_BINARY is not set")
    if _server is None:
        _server = ServerProcess(MRD_BINARY)
    return _server


# The tokens of the server started with --auth-file: (token, tenant, role).
USER_TOKEN = "py-user-token-4b1e"
OTHER_USER_TOKEN = "py-other-user-token-d52a"
ADMIN_TOKEN = "py-admin-token-90c7"
AUTH_FILE_ENTRIES = ((USER_TOKEN, "alice", Role.USER), (OTHER_USER_TOKEN, "bob", Role.USER),
                     (ADMIN_TOKEN, "ops.team-1", Role.ADMIN))

_auth_server: Optional[ServerProcess] = None
_auth_directory: Optional[tempfile.TemporaryDirectory] = None


def write_auth_file(path: Path, entries) -> None:
    """mrd's --auth-file: ``tenant role sha256-of-token`` per line; the tokens stay here."""
    lines = ["# tenant  role  SHA-256 of the token"]
    for token, tenant, role in entries:
        lines.append(f"{tenant} {role.label} {hashlib.sha256(token.encode()).hexdigest()}")
    path.write_text("\n".join(lines) + "\n")


def shared_auth_server() -> ServerProcess:
    """A second mrd, started with --auth-file holding AUTH_FILE_ENTRIES (protocol versions 2
    and 3: tokens, and the tenants they make), and with --enable-test-jobs."""
    global _auth_server, _auth_directory
    if not MRD_BINARY:
        raise unittest.SkipTest("MRD_BINARY is not set")
    if _auth_server is None:
        _auth_directory = tempfile.TemporaryDirectory(prefix="mrd-auth-pytest-")
        auth_file = Path(_auth_directory.name) / "tokens"
        write_auth_file(auth_file, AUTH_FILE_ENTRIES)
        _auth_server = ServerProcess(MRD_BINARY, "--auth-file", str(auth_file),
                                     "--enable-test-jobs")  # for HANGING_JOB
    return _auth_server


_test_jobs_server: Optional[ServerProcess] = None


def shared_test_jobs_server() -> ServerProcess:
    """A third mrd, started with --enable-test-jobs: a job of its test-hang mapper never
    finishes, so it is provably still running until the test cancels it."""
    global _test_jobs_server
    if not MRD_BINARY:
        raise unittest.SkipTest("MRD_BINARY is not set")
    if _test_jobs_server is None:
        _test_jobs_server = ServerProcess(MRD_BINARY, "--enable-test-jobs")
    return _test_jobs_server


HANGING_JOB = ("test-hang", "sum", [Document("h", "x")])  # one map task, which never returns


def tearDownModule() -> None:
    if _server is not None:
        _server.stop()
    if _test_jobs_server is not None:
        _test_jobs_server.stop()
    if _auth_server is not None:
        _auth_server.stop()
    if _auth_directory is not None:
        _auth_directory.cleanup()


class ServerTestCase(unittest.TestCase):
    """Gives each test ``self.server`` and an open ``self.connection``."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = shared_server()

    def setUp(self) -> None:
        self.connection = self.server.connect()
        self.addCleanup(self.connection.close)

    def run_job(self, mapper: str, reducer: str, job_input, **options) -> mrd.Result:
        job_id = self.connection.submit(mapper, reducer, job_input, **options)
        return self.connection.wait_for_result(job_id)

    def assert_refused(self, status: Status, call, *args, **kwargs) -> mrd.ServerError:
        with self.assertRaises(mrd.ServerError) as caught:
            call(*args, **kwargs)
        self.assertEqual(caught.exception.status, status, caught.exception.message)
        self.assertTrue(caught.exception.message)  # every error body carries a message
        return caught.exception

    def wait_until_finished(self, job_id: int) -> Progress:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            progress = self.connection.status(job_id)
            if progress.state.finished:
                return progress
            time.sleep(0.01)
        self.fail(f"job {job_id} did not finish")

    def wait_until_started(self, job_id: int) -> JobDetails:
        """STATUS with details until the job's first task went to a worker (started_ms set)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            details = self.connection.status(job_id, details=True)
            if details.started_ms:
                return details
            time.sleep(0.01)
        self.fail(f"job {job_id} did not start")

    def assert_job_times(self, details: JobDetails, before: float, after: float,
                         submitted_first: bool = True) -> None:
        """submitted_ms <= started_ms <= finished_ms (those not 0: a step not reached), all
        within the test's own window [before, after] of time.time() seconds: the server's clock
        is this machine's. ``submitted_first=False`` leaves out submitted_ms <= started_ms (see
        test_details_of_a_large_submit)."""
        low = math.floor(before * 1000) - CLOCK_SLACK_MS
        high = math.ceil(after * 1000) + CLOCK_SLACK_MS
        times = (details.submitted_ms, details.started_ms, details.finished_ms)
        reached = [ms for ms in times if ms]
        self.assertTrue(all(low <= ms <= high for ms in reached), (low, times, high))
        self.assertNotEqual(details.submitted_ms, 0, times)
        in_order = reached if submitted_first else [ms for ms in times[1:] if ms]
        self.assertEqual(in_order, sorted(in_order), times)


# The server stamps times in whole milliseconds of the same clock as time.time(); this covers
# rounding on either side.
CLOCK_SLACK_MS = 1


def submit_body_length(mapper: str, reducer: str, job_input, **options) -> int:
    """The length of the SUBMIT body Connection.submit sends: a job's ``input_bytes``."""
    return len(mrd.encode_submit(SubmitRequest(mapper, reducer, job_input, **options)))


def cumulative_count_below(histogram: Histogram, micros: int) -> int:
    """How many durations the histogram proves were under ``micros``: the cumulative count of
    its largest bound below ``micros`` (0 if none)."""
    return max([count for bound, count in histogram.buckets if bound < micros], default=0)


def big_documents(copies: int = 4) -> List[Document]:
    """Enough input, in small chunks, that a job stays unfinished for a while."""
    text = b"alpha beta gamma delta " * 50_000
    return [Document(f"big{number}", text) for number in range(copies)]


# --------------------------------------------------------------------------------------------
# 1. The document's examples, byte for byte
# --------------------------------------------------------------------------------------------

EXAMPLE_STATS_INPUT = Numbers([1.5, 2.5])
EXAMPLE_MATRICES = MatrixPair(Matrix(1, 2, [1.0, 2.0]), Matrix(2, 1, [3.0, 4.0]))

# Version 4's examples, as the document describes them in words. Job 7, words/sum of alice,
# 66 bytes, accepted at 1764576000000 (2025-12-01 08:00:00 UTC), started 12 ms later, done
# 250 ms after it was accepted:
EXAMPLE_ACCEPTED_MS = 1_764_576_000_000
EXAMPLE_DETAILS = JobDetails(Progress(7, JobState.DONE, 4, 4, 2, 2), "words", "sum", "alice", 66,
                             EXAMPLE_ACCEPTED_MS, EXAMPLE_ACCEPTED_MS + 12,
                             EXAMPLE_ACCEPTED_MS + 250, "")
# Two buckets each: 3 tasks (2 of them in at most 10 us), 46 us in all; 1 job, 60 us. The
# counters are the example's own (the prose does not give them).
EXAMPLE_DETAILED_STATS = DetailedStats(
    uptime_ms=120_000, connections_open=1, connections_total=9, requests_total=40,
    requests_rejected=2, jobs_submitted=4, jobs_done=1, jobs_failed=0, jobs_cancelled=0,
    jobs_expired=0, jobs_unfinished=3, workers=2, worker_restarts=0, retained_result_bytes=4096,
    workers_busy=1, tasks_done=3,
    task_us=Histogram([(10, 2), (math.inf, 3)], 46), job_us=Histogram([(10, 0), (math.inf, 1)], 60))


def expected_example_frames() -> Dict[str, bytes]:
    """Each example of the document, built from values with this client's encoders."""
    ok, pending = Status.OK, Status.PENDING
    return {
        "hello-v3-request": mrd.hello_frame(Hello(3, "")),
        "hello-v3-reply": mrd.encode_frame(ok, mrd.encode_hello_reply(
            HelloReply(3, "mrd 0.1.0", mrd.HELLO_AUTH_REQUIRED))),
        "hello-request": mrd.hello_frame(Hello(1, "")),
        "hello-reply": mrd.encode_frame(ok, mrd.encode_hello_reply(HelloReply(1, "mrd 0.1.0"))),
        "auth-request": mrd.auth_frame("s3cret"),
        "auth-reply": mrd.encode_frame(ok, mrd.encode_auth_reply(AuthReply("alice", Role.USER))),
        "auth-failed-reply": mrd.encode_frame(
            Status.AUTH_FAILED, mrd.encode_error("auth: the token is not valid")),
        "submit-words-request": mrd.submit_frame(
            SubmitRequest("words", "sum", [Document("a.txt", "to be or not to be")])),
        "submit-stats-request": mrd.submit_frame(
            SubmitRequest("numbers", "stats", EXAMPLE_STATS_INPUT)),
        "submit-matmul-request": mrd.submit_frame(
            SubmitRequest("matmul", "rows", EXAMPLE_MATRICES)),
        "submit-reply": mrd.encode_frame(ok, mrd.encode_job_id(7)),
        "fetch-request": mrd.fetch_frame(7),
        "fetch-pending-reply": mrd.encode_frame(
            pending, mrd.encode_progress(Progress(7, JobState.MAPPING, 1, 4, 0, 2))),
        "unknown-job-reply": mrd.encode_frame(Status.UNKNOWN_JOB, mrd.encode_error("no job 9")),
        "unavailable-reply": mrd.encode_frame(Status.UNAVAILABLE, mrd.encode_error(
            "fetch: this node cannot reach the cluster's Redis at redis:6379/0 "
            "(Connection refused); nothing was done; try again, or another node")),
        "status-request": mrd.status_frame(7),
        "status-reply": mrd.encode_frame(
            ok, mrd.encode_progress(Progress(7, JobState.DONE, 4, 4, 2, 2))),
        "status-details-request": mrd.status_frame(7, mrd.STATUS_WITH_DETAILS),
        "status-details-reply": mrd.encode_frame(ok, mrd.encode_job_details(EXAMPLE_DETAILS)),
        "cancel-request": mrd.cancel_frame(7),
        "cancel-reply": mrd.encode_frame(ok),
        "list-request": mrd.list_frame(None),
        "list-reply": mrd.encode_frame(ok, mrd.encode_job_list(
            [JobEntry(7, JobState.DONE), JobEntry(8, JobState.QUEUED)], with_tenants=False)),
        "list-tenants-request": mrd.list_frame(mrd.LIST_WITH_TENANTS),
        "list-tenants-reply": mrd.encode_frame(ok, mrd.encode_job_list(
            [JobEntry(7, JobState.DONE, "alice"), JobEntry(8, JobState.QUEUED, "bob")])),
        "stats-request": mrd.stats_frame(),
        "stats-details-request": mrd.stats_frame(mrd.STATS_WITH_DETAILS),
        "stats-details-reply": mrd.encode_frame(
            ok, mrd.encode_detailed_stats(EXAMPLE_DETAILED_STATS)),
        "fetch-words-reply": mrd.encode_frame(ok, mrd.encode_result(mrd.CountsResult(
            [(b"be", 2), (b"to", 2), (b"not", 1), (b"or", 1)]))),
        "fetch-index-reply": mrd.encode_frame(ok, mrd.encode_result(mrd.PostingsResult(
            [(b"be", [b"a.txt", b"b.txt"])]))),
        "fetch-matmul-reply": mrd.encode_frame(ok, mrd.encode_result(Matrix(1, 1, [11.0]))),
        "fetch-stats-reply": mrd.encode_frame(ok, mrd.encode_result(mrd.StatisticsResult(
            2, 2.0, 2.0, 1.5, 1.5, 2.5))),
    }


# How to decode (and re-encode) the body of a frame, by what it answers or asks. (The OK to
# LIST, STATUS and STATS also depends on the request's options: see reply_round_trip.)
OK_BODY_CODECS = {
    Opcode.HELLO: (mrd.decode_hello_reply, mrd.encode_hello_reply),
    Opcode.AUTH: (mrd.decode_auth_reply, mrd.encode_auth_reply),
    Opcode.SUBMIT: (mrd.decode_job_id, mrd.encode_job_id),
    Opcode.FETCH: (mrd.decode_result, mrd.encode_result),
    Opcode.STATUS: (mrd.decode_progress, mrd.encode_progress),
    Opcode.CANCEL: (lambda body: mrd.decode_empty(body), lambda _: b""),
    Opcode.LIST: (mrd.decode_job_list, mrd.encode_job_list),
    Opcode.STATS: (mrd.decode_server_stats, mrd.encode_server_stats),
}
REQUEST_BODY_CODECS = {
    Opcode.HELLO: (mrd.decode_hello, mrd.encode_hello),
    Opcode.AUTH: (mrd.decode_auth, mrd.encode_auth),
    Opcode.SUBMIT: (mrd.decode_submit, mrd.encode_submit),
    Opcode.FETCH: (mrd.decode_job_id, mrd.encode_job_id),
    Opcode.STATUS: (mrd.decode_status_request, lambda request: mrd.encode_status_request(*request)),
    Opcode.CANCEL: (mrd.decode_job_id, mrd.encode_job_id),
    Opcode.LIST: (mrd.decode_list_request, mrd.encode_list_request),
    Opcode.STATS: (mrd.decode_stats_request, mrd.encode_stats_request),
}


def reply_round_trip(opcode: int, request_body: bytes, status: int, body: bytes) -> bytes:
    """Decode a reply body as what the request ``opcode``, ``request_body`` gets with
    ``status``, and encode it again."""
    if status == Status.OK and opcode == Opcode.LIST:
        with_tenants = mrd.list_reply_has_tenants(mrd.decode_list_request(request_body))
        return mrd.encode_job_list(mrd.decode_job_list(body, with_tenants), with_tenants)
    if status == Status.OK and opcode == Opcode.STATUS:
        _, options = mrd.decode_status_request(request_body)
        if mrd.status_reply_has_details(options):
            return mrd.encode_job_details(mrd.decode_job_details(body))
    if status == Status.OK and opcode == Opcode.STATS:
        if mrd.stats_reply_has_details(mrd.decode_stats_request(request_body)):
            return mrd.encode_detailed_stats(mrd.decode_detailed_stats(body))
    if status == Status.OK:
        decode, encode = OK_BODY_CODECS[Opcode(opcode)]
        return encode(decode(body))
    if status == Status.PENDING:
        return mrd.encode_progress(mrd.decode_progress(body))
    return mrd.encode_error(mrd.decode_error(body))


class TestDocumentExamples(unittest.TestCase):
    """The hex examples of docs/protocol.md, produced and decoded by this client."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.examples = doc_examples()
        cls.expected = expected_example_frames()

    def test_the_document_has_examples(self) -> None:
        self.assertGreaterEqual(len(self.examples), 20, PROTOCOL_DOC)

    def test_every_example_is_checked_here(self) -> None:
        # A new example in the document should get a line in expected_example_frames().
        self.assertEqual(sorted(self.examples), sorted(self.expected))

    def test_encoders_produce_the_examples(self) -> None:
        for name, frame in self.expected.items():
            with self.subTest(example=name):
                self.assertIn(name, self.examples)
                self.assertEqual(frame.hex(" "), self.examples[name].hex(" "))

    def test_decoders_read_the_examples(self) -> None:
        decoded = {name: mrd.split_frames(frame) for name, frame in self.examples.items()}
        for name, (frames, rest) in decoded.items():
            with self.subTest(example=name):
                self.assertEqual(rest, b"", "an example is exactly one frame")
                self.assertEqual(len(frames), 1)
        words = mrd.decode_submit(decoded["submit-words-request"][0][0][1])
        self.assertEqual((words.mapper, words.reducer), (b"words", b"sum"))
        self.assertEqual(words.input, [Document(b"a.txt", b"to be or not to be")])
        self.assertEqual(mrd.decode_submit(decoded["submit-stats-request"][0][0][1]).input,
                         EXAMPLE_STATS_INPUT)
        self.assertEqual(mrd.decode_submit(decoded["submit-matmul-request"][0][0][1]).input,
                         EXAMPLE_MATRICES)
        self.assertEqual(mrd.decode_progress(decoded["fetch-pending-reply"][0][0][1]),
                         Progress(7, JobState.MAPPING, 1, 4, 0, 2))
        self.assertEqual(mrd.decode_error(decoded["unknown-job-reply"][0][0][1]), "no job 9")
        self.assertEqual(mrd.decode_result(decoded["fetch-stats-reply"][0][0][1]),
                         mrd.StatisticsResult(2, 2.0, 2.0, 1.5, 1.5, 2.5))
        self.assertEqual(mrd.decode_job_list(decoded["list-reply"][0][0][1], with_tenants=False),
                         [JobEntry(7, JobState.DONE), JobEntry(8, JobState.QUEUED)])
        # Version 3: LIST with tenants.
        self.assertEqual(mrd.decode_list_request(decoded["list-tenants-request"][0][0][1]),
                         mrd.LIST_WITH_TENANTS)
        self.assertEqual(mrd.decode_job_list(decoded["list-tenants-reply"][0][0][1]),
                         [JobEntry(7, JobState.DONE, "alice"), JobEntry(8, JobState.QUEUED, "bob")])
        # Versions 2 and 3: HELLO's reply with its flags, version 1's without; AUTH both ways.
        self.assertEqual(mrd.decode_hello(decoded["hello-v3-request"][0][0][1]), Hello(3, ""))
        hello = mrd.decode_hello_reply(decoded["hello-v3-reply"][0][0][1])
        self.assertEqual((hello.version, hello.software, hello.auth_required),
                         (3, "mrd 0.1.0", True))
        hello = mrd.decode_hello_reply(decoded["hello-reply"][0][0][1])
        self.assertEqual((hello.version, hello.flags, hello.auth_required), (1, 0, False))
        self.assertEqual(mrd.decode_auth(decoded["auth-request"][0][0][1]), b"s3cret")
        self.assertEqual(mrd.decode_auth_reply(decoded["auth-reply"][0][0][1]),
                         AuthReply("alice", Role.USER))
        status, body = decoded["auth-failed-reply"][0][0]
        self.assertEqual((status, mrd.decode_error(body)),
                         (Status.AUTH_FAILED, "auth: the token is not valid"))
        # Version 4: STATUS and STATS with details.
        self.assertEqual(decoded["status-details-request"][0][0][0], Opcode.STATUS)
        self.assertEqual(mrd.decode_status_request(decoded["status-details-request"][0][0][1]),
                         (7, mrd.STATUS_WITH_DETAILS))
        status, body = decoded["status-details-reply"][0][0]
        self.assertEqual(status, Status.OK)
        self.assertEqual(mrd.decode_job_details(body), EXAMPLE_DETAILS)
        self.assertEqual(decoded["stats-details-request"][0][0][0], Opcode.STATS)
        self.assertEqual(mrd.decode_stats_request(decoded["stats-details-request"][0][0][1]),
                         mrd.STATS_WITH_DETAILS)
        status, body = decoded["stats-details-reply"][0][0]
        self.assertEqual(status, Status.OK)
        stats = mrd.decode_detailed_stats(body)
        self.assertEqual(stats, EXAMPLE_DETAILED_STATS)
        self.assertEqual(len(body), 112 + 16 + 2 * (8 + 2 * 16 + 8))
        # What the prose says of the example: 3 tasks, 2 in at most 10 us, 46 us in all; 1 job.
        self.assertEqual((stats.task_us.count, stats.task_us.sum_us), (3, 46))
        self.assertEqual(stats.task_us.buckets[0], (10, 2))
        self.assertEqual((stats.job_us.count, stats.job_us.sum_us), (1, 60))
        self.assertEqual(stats.tasks_done, stats.task_us.count)
        self.assertIs(stats.task_us.buckets[-1][0], math.inf)

    def test_every_request_example_round_trips_with_its_reply(self) -> None:
        # A reply's layout can depend on the request's options (LIST, STATUS, STATS): decode
        # each reply example as the answer to its request example, and encode it again.
        pairs = {name: name[:-len("-reply")] + "-request" for name in self.examples
                 if name.endswith("-reply") and name[:-len("-reply")] + "-request" in self.examples}
        self.assertIn("status-details-reply", pairs)
        self.assertIn("stats-details-reply", pairs)
        for reply_name, request_name in pairs.items():
            with self.subTest(example=reply_name):
                [(opcode, request_body)], _ = mrd.split_frames(self.examples[request_name])
                [(status, body)], _ = mrd.split_frames(self.examples[reply_name])
                decode, encode = REQUEST_BODY_CODECS[Opcode(opcode)]
                self.assertEqual(encode(decode(request_body)), request_body)
                self.assertEqual(reply_round_trip(opcode, request_body, status, body), body)

    def test_progress_is_21_bytes_and_stats_112(self) -> None:
        self.assertEqual(len(mrd.encode_progress(Progress(1, JobState.QUEUED, 0, 0, 0, 0))), 21)
        stats = mrd.ServerStats(*range(14))
        self.assertEqual(len(mrd.encode_server_stats(stats)), 112)
        self.assertEqual(mrd.decode_server_stats(mrd.encode_server_stats(stats)), stats)


class TestDocumentRecipes(unittest.TestCase):
    """The shell recipes of section 9: their requests and replies decode and re-encode."""

    def test_recipe_frames_round_trip(self) -> None:
        recipes = doc_recipes()
        self.assertGreaterEqual(len(recipes), 10)
        for number, (request, reply) in enumerate(recipes, start=1):
            with self.subTest(recipe=number):
                requests, _ = mrd.split_frames(request)
                replies, reply_rest = mrd.split_frames(reply)
                for opcode, body in requests:
                    if opcode in REQUEST_BODY_CODECS:
                        decode, encode = REQUEST_BODY_CODECS[Opcode(opcode)]
                        self.assertEqual(encode(decode(body)), body)
                # A request without a complete frame (4 GiB header) still gets its reply.
                requests_answered = requests or [(request[0], b"")]
                # One reply each (the STATS recipe's is cut to its header: no whole frame).
                self.assertEqual(len(replies), 0 if reply_rest else len(requests_answered))
                for (opcode, request_body), (status, body) in zip(requests_answered, replies):
                    self.assertIn(status, set(Status))
                    self.assertEqual(reply_round_trip(opcode, request_body, status, body), body)
                if reply_rest:  # only the STATS recipe cuts its reply (head -c 5)
                    self.assertEqual(reply_rest[:1], b"\x00")

    def test_recipe_requests_match_the_encoders(self) -> None:
        requests = {request for request, _ in doc_recipes()}
        words = mrd.submit_frame(
            SubmitRequest("words", "sum", [Document("a.txt", "to be or not to be")]))
        for frame in (mrd.hello_frame(Hello(1, "")), mrd.fetch_frame(9), words, mrd.fetch_frame(1),
                      mrd.status_frame(1), mrd.list_frame(None), mrd.stats_frame(),
                      mrd.cancel_frame(1) + mrd.fetch_frame(1)):
            self.assertIn(frame, requests)


# --------------------------------------------------------------------------------------------
# 2. The codec on its own
# --------------------------------------------------------------------------------------------


class TestCodec(unittest.TestCase):
    def test_primitives_are_little_endian_without_padding(self) -> None:
        body = mrd.BodyWriter().u8(1).u16(2).u32(3).u64(4).f64(1.0).string("ab").getvalue()
        self.assertEqual(body.hex(), "01" "0200" "03000000" "0400000000000000"
                                     "000000000000f03f" "0200000000000000" "6162")

    def test_submit_round_trip_with_every_option(self) -> None:
        request = SubmitRequest(b"words", b"sum", [Document(b"\xff", b"x" * 300)], 1 << 40,
                                1024, 5000, 256, b"0123456789abcdef")
        self.assertEqual(mrd.decode_submit(mrd.encode_submit(request)), request)

    def test_result_round_trips(self) -> None:
        for result in (mrd.CountsResult([]), mrd.CountsResult([(b"a b", 3)]),
                       mrd.PostingsResult([(b"w", [b"", b"d"])]), Matrix(0, 3, []),
                       Matrix(2, 1, [0.5, -0.0]),
                       mrd.StatisticsResult(3, 1.0, float("inf"), -1.0, -1.0, float("inf"))):
            with self.subTest(result=result):
                self.assertEqual(mrd.decode_result(mrd.encode_result(result)), result)

    def test_trailing_bytes_are_refused(self) -> None:
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_job_id(b"\x01\x00\x00\x00\x00")
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_result(mrd.encode_result(mrd.CountsResult([])) + b"\x00")
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_empty(b"\x00")

    def test_truncated_bodies_are_refused(self) -> None:
        body = mrd.encode_result(mrd.PostingsResult([(b"word", [b"doc"])]))
        for length in range(len(body)):
            with self.assertRaises(mrd.ProtocolError):
                mrd.decode_result(body[:length])

    def test_a_lying_count_is_refused_before_allocating(self) -> None:
        huge = struct.pack("<Q", 1 << 62)
        for body in (b"\x00" + huge,                      # counts
                     b"\x01" + huge,                      # postings
                     b"\x02" + struct.pack("<QQ", 2, 2) + huge,  # matrix values
                     ):
            with self.assertRaises(mrd.ProtocolError):
                mrd.decode_result(body)
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_error(huge)
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_job_list(huge)

    def test_unknown_kinds_and_states_are_refused(self) -> None:
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_result(b"\x04")
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_progress(struct.pack("<IBIIII", 1, 6, 0, 0, 0, 0))
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_job_list(struct.pack("<QIB", 1, 1, 9))

    def test_a_matrix_must_match_its_shape(self) -> None:
        body = b"\x02" + struct.pack("<QQQd", 1, 2, 1, 1.0)
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_result(body)
        with self.assertRaises(ValueError):
            Matrix(2, 2, [1.0])

    def test_hello_replies_of_every_version(self) -> None:
        for reply in (HelloReply(1, "mrd x"), HelloReply(2, "mrd x", 0), HelloReply(2, "", 1),
                      HelloReply(3, "mrd x", 1), HelloReply(4, "mrd x", 0),
                      HelloReply(4, "mrd x", 1)):
            with self.subTest(reply=reply):
                body = mrd.encode_hello_reply(reply)
                self.assertEqual(len(body), 2 + 8 + len(reply.software) + (reply.version >= 2))
                self.assertEqual(mrd.decode_hello_reply(body), reply)
        with self.assertRaises(mrd.ProtocolError):  # version 2 without its flags byte
            mrd.decode_hello_reply(struct.pack("<HQ", 2, 0))
        with self.assertRaises(mrd.ProtocolError):  # version 1 with a flags byte
            mrd.decode_hello_reply(struct.pack("<HQB", 1, 0, 1))
        for version in (3, 4):  # versions 3 and 4 share version 2's layout
            with self.assertRaises(mrd.ProtocolError):
                mrd.decode_hello_reply(struct.pack("<HQ", version, 0))
        with self.assertRaises(mrd.ProtocolError):  # a version this client does not speak
            mrd.decode_hello_reply(struct.pack("<HQB", 5, 0, 0))
        self.assertEqual(mrd.PROTOCOL_VERSION, 4)
        self.assertEqual(mrd.hello_frame().hex(" "), "06 0a 00 00 00 04 00" + " 00" * 8)
        with self.assertRaises(ValueError):
            mrd.encode_hello_reply(HelloReply(1, "", mrd.HELLO_AUTH_REQUIRED))

    def test_list_requests(self) -> None:
        # Version 3: one options byte, bit 0 asking for tenants; version 1: no body at all.
        self.assertEqual(mrd.list_frame().hex(" "), "04 01 00 00 00 01")
        self.assertEqual(mrd.list_frame(0).hex(" "), "04 01 00 00 00 00")
        self.assertEqual(mrd.list_frame(None).hex(" "), "04 00 00 00 00")
        self.assertEqual(mrd.decode_list_request(b"\x01"), mrd.LIST_WITH_TENANTS)
        self.assertEqual(mrd.decode_list_request(b"\x00"), 0)
        self.assertIsNone(mrd.decode_list_request(b""))
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_list_request(b"\x01\x00")
        self.assertEqual([mrd.list_reply_has_tenants(options) for options in (None, 0, 1, 3)],
                         [False, False, True, True])

    def test_list_reply_with_tenants(self) -> None:
        jobs = [JobEntry(7, JobState.DONE, "alice"), JobEntry(300, JobState.QUEUED, "")]
        body = mrd.encode_job_list(jobs)
        self.assertEqual(body.hex(" "),
                         "02 00 00 00 00 00 00 00"                        # two jobs
                         " 07 00 00 00 03 05 00 00 00 00 00 00 00 61 6c 69 63 65"  # 7 done alice
                         " 2c 01 00 00 00 00 00 00 00 00 00 00 00")       # 300 queued, no tenant
        self.assertEqual(mrd.decode_job_list(body), jobs)
        self.assertEqual(mrd.decode_job_list(body, with_tenants=True), jobs)
        # Version 1's layout: no tenant after the state.
        plain = mrd.encode_job_list([JobEntry(7, JobState.DONE)], with_tenants=False)
        self.assertEqual(plain.hex(" "), "01 00 00 00 00 00 00 00 07 00 00 00 03")
        self.assertEqual(mrd.decode_job_list(plain, with_tenants=False),
                         [JobEntry(7, JobState.DONE)])
        # A body of one layout does not decode as the other, except the empty list.
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_job_list(plain)
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_job_list(body, with_tenants=False)
        empty = mrd.encode_job_list([])
        self.assertEqual(empty, mrd.encode_job_list([], with_tenants=False))
        self.assertEqual(mrd.decode_job_list(empty), [])
        with self.assertRaises(ValueError):  # a tenant the layout has no room for
            mrd.encode_job_list(jobs, with_tenants=False)

    def test_list_reply_limits(self) -> None:
        def row(tenant: bytes) -> bytes:
            return struct.pack("<QIB", 1, 1, 3) + mrd.BodyWriter().string(tenant).getvalue()
        self.assertEqual(mrd.decode_job_list(row(b"t" * mrd.MAX_TENANT_BYTES))[0].tenant,
                         "t" * mrd.MAX_TENANT_BYTES)
        with self.assertRaises(mrd.ProtocolError):  # a tenant over 64 bytes
            mrd.decode_job_list(row(b"t" * (mrd.MAX_TENANT_BYTES + 1)))
        with self.assertRaises(mrd.ProtocolError):  # 5 bytes per job fit, 13 do not
            mrd.decode_job_list(struct.pack("<Q", 2) + bytes(10))
        with self.assertRaises(mrd.ProtocolError):  # the tenant cut short
            mrd.decode_job_list(row(b"alice")[:-1])

    def test_status_requests(self) -> None:
        # Version 1: the id alone; version 4: then an options byte, bit 0 asking for details.
        self.assertEqual(mrd.status_frame(7).hex(" "), "02 04 00 00 00 07 00 00 00")
        self.assertEqual(mrd.status_frame(7, 0).hex(" "), "02 05 00 00 00 07 00 00 00 00")
        self.assertEqual(mrd.status_frame(0x01020304, mrd.STATUS_WITH_DETAILS).hex(" "),
                         "02 05 00 00 00 04 03 02 01 01")
        self.assertEqual(mrd.decode_status_request(b"\x07\x00\x00\x00"), (7, None))
        self.assertEqual(mrd.decode_status_request(b"\x07\x00\x00\x00\x00"), (7, 0))
        for bad in (b"\x07\x00\x00", b"\x07\x00\x00\x00\x01\x00"):  # short; two option bytes
            with self.assertRaises(mrd.ProtocolError):
                mrd.decode_status_request(bad)
        self.assertEqual([mrd.status_reply_has_details(options) for options in (None, 0, 1, 3)],
                         [False, False, True, True])

    def test_stats_requests(self) -> None:
        self.assertEqual(mrd.stats_frame().hex(" "), "05 00 00 00 00")
        self.assertEqual(mrd.stats_frame(0).hex(" "), "05 01 00 00 00 00")
        self.assertEqual(mrd.stats_frame(mrd.STATS_WITH_DETAILS).hex(" "), "05 01 00 00 00 01")
        self.assertIsNone(mrd.decode_stats_request(b""))
        self.assertEqual(mrd.decode_stats_request(b"\x01"), mrd.STATS_WITH_DETAILS)
        with self.assertRaises(mrd.ProtocolError):
            mrd.decode_stats_request(b"\x01\x00")
        self.assertEqual([mrd.stats_reply_has_details(options) for options in (None, 0, 1, 3)],
                         [False, False, True, True])

    def test_job_details_round_trip(self) -> None:
        for details in (EXAMPLE_DETAILS,
                        JobDetails(Progress(9, JobState.FAILED, 1, 3, 0, 0), "numbers", "stats",
                                   "", 81, 5, 0, 6, "map task 2 of 3 failed: NaN caf\u00e9"),
                        JobDetails(Progress(1, JobState.QUEUED, 0, 0, 0, 0), "m" * 64, "r" * 64,
                                   "t" * 64, 1 << 40, 1, 0, 0)):
            with self.subTest(details=details):
                body = mrd.encode_job_details(details)
                self.assertEqual(mrd.decode_job_details(body), details)
                self.assertEqual(len(body), 21 + 4 * 8 + 4 * 8 + sum(
                    len(text.encode()) for text in (details.mapper, details.reducer,
                                                    details.tenant, details.failure)))
        # The Progress comes first, as in version 1's reply.
        body = mrd.encode_job_details(EXAMPLE_DETAILS)
        self.assertEqual(body[:21], mrd.encode_progress(EXAMPLE_DETAILS.progress))

    def test_job_details_strictness(self) -> None:
        body = mrd.encode_job_details(EXAMPLE_DETAILS)
        for length in range(len(body)):
            with self.subTest(truncated_to=length), self.assertRaises(mrd.ProtocolError):
                mrd.decode_job_details(body[:length])
        with self.assertRaises(mrd.ProtocolError):  # trailing bytes
            mrd.decode_job_details(body + b"\x00")
        with self.assertRaises(mrd.ProtocolError):  # a version 1 Progress is not Details
            mrd.decode_job_details(body[:21])
        with self.assertRaises(mrd.ProtocolError):  # an undefined state
            mrd.decode_job_details(body[:4] + b"\x06" + body[5:])
        with self.assertRaises(mrd.ProtocolError):  # a string length the body cannot hold
            mrd.decode_job_details(body[:21] + struct.pack("<Q", 1 << 62) + body[29:])
        for field, limit in (("mapper", mrd.MAX_NAME_BYTES), ("reducer", mrd.MAX_NAME_BYTES),
                             ("tenant", mrd.MAX_TENANT_BYTES)):
            with self.subTest(field=field):
                at_limit = dataclasses.replace(EXAMPLE_DETAILS, **{field: "x" * limit})
                self.assertEqual(mrd.decode_job_details(mrd.encode_job_details(at_limit)),
                                 at_limit)
                over = dataclasses.replace(EXAMPLE_DETAILS, **{field: "x" * (limit + 1)})
                with self.assertRaises(mrd.ProtocolError):
                    mrd.decode_job_details(mrd.encode_job_details(over))

    def test_detailed_stats_round_trip(self) -> None:
        bounds = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                  300000, math.inf]
        task_us = Histogram([(bound, min(index, 9)) for index, bound in enumerate(bounds)], 1234)
        job_us = Histogram([(bound, 0) for bound in bounds], 0)
        stats = DetailedStats(*range(14), 2, 9, task_us, job_us)
        body = mrd.encode_detailed_stats(stats)
        self.assertEqual(len(body), 112 + 16 + 2 * (8 + 17 * 16 + 8))
        self.assertEqual(body[:112], mrd.encode_server_stats(ServerStats(*range(14))))
        job_ms_at = len(body) - (8 + 17 * 16 + 8)  # count, 17 buckets, sum
        last_bound_at = job_ms_at + 8 + 16 * 16
        self.assertEqual(body[last_bound_at:last_bound_at + 8], b"\xff" * 8)  # +Inf
        decoded = mrd.decode_detailed_stats(body)
        self.assertEqual(decoded, stats)
        self.assertIsInstance(decoded, ServerStats)
        self.assertEqual(decoded.counters(), ServerStats(*range(14)))
        self.assertEqual((decoded.task_us.count, decoded.job_us.count), (9, 0))
        one = Histogram([(math.inf, 0)], 0)  # the least a histogram can be: one +Inf bucket
        self.assertEqual(mrd.decode_detailed_stats(mrd.encode_detailed_stats(
            DetailedStats(*([0] * 16), one, one))).job_us, one)

    def test_histogram_helpers(self) -> None:
        histogram = Histogram([(10, 2), (100, 2), (1000, 5), (math.inf, 6)], 4321)
        self.assertEqual(histogram.count, 6)
        self.assertEqual(histogram.per_bucket(), [(10, 2), (100, 0), (1000, 3), (math.inf, 1)])
        self.assertEqual(Histogram([], 0).count, 0)

    def test_detailed_stats_strictness(self) -> None:
        def body_with(task_buckets: bytes, count: Optional[int] = None) -> bytes:
            number = len(task_buckets) // 16 if count is None else count
            job = struct.pack("<QQQQ", 1, mrd.HISTOGRAM_NO_BOUND, 0, 0)
            return (bytes(112) + struct.pack("<QQ", 0, 0) + struct.pack("<Q", number)
                    + task_buckets + struct.pack("<Q", 0) + job)

        inf = mrd.HISTOGRAM_NO_BOUND
        good = struct.pack("<QQQQ", 10, 1, inf, 2)
        self.assertEqual(mrd.decode_detailed_stats(body_with(good)).task_us,
                         Histogram([(10, 1), (math.inf, 2)], 0))
        for name, body in (
                ("a bucket count the body cannot hold", body_with(good, 1 << 60)),
                ("one bucket more than there are", body_with(good, 3)),
                ("no bucket at all", body_with(b"")),
                ("no +Inf bucket", body_with(struct.pack("<QQQQ", 10, 1, 20, 2))),
                ("a bucket after +Inf", body_with(struct.pack("<QQQQ", inf, 1, 20, 2))),
                ("bounds not increasing", body_with(struct.pack("<QQQQQQ", 20, 1, 10, 1, inf, 2))),
                ("equal bounds", body_with(struct.pack("<QQQQQQ", 10, 1, 10, 1, inf, 2))),
                ("counts decreasing", body_with(struct.pack("<QQQQ", 10, 3, inf, 2))),
                ("trailing bytes", body_with(good) + b"\x00"),
                ("the 112 bytes of version 1", bytes(112)),
                ("truncated", body_with(good)[:-1])):
            with self.subTest(name), self.assertRaises(mrd.ProtocolError):
                mrd.decode_detailed_stats(body)
        body = body_with(good)
        for length in range(len(body)):
            with self.assertRaises(mrd.ProtocolError):
                mrd.decode_detailed_stats(body[:length])
        for bound in (-1, 1.5, float("nan"), mrd.HISTOGRAM_NO_BOUND, None):
            with self.subTest(bound=bound), self.assertRaises(ValueError):
                mrd.encode_detailed_stats(DetailedStats(*([0] * 16), Histogram([(bound, 0)], 0),
                                                        Histogram([(math.inf, 0)], 0)))

    def test_auth_bodies(self) -> None:
        self.assertEqual(mrd.encode_auth(b"\x00\xff"), struct.pack("<Q", 2) + b"\x00\xff")
        self.assertEqual(mrd.decode_auth(mrd.encode_auth("t" * mrd.MAX_TOKEN_BYTES)),
                         b"t" * mrd.MAX_TOKEN_BYTES)
        self.assertEqual(len(mrd.encode_auth("t" * mrd.MAX_TOKEN_BYTES)), mrd.MAX_AUTH_BODY)
        admin = AuthReply("ops.team-1", Role.ADMIN)
        self.assertEqual(mrd.decode_auth_reply(mrd.encode_auth_reply(admin)), admin)
        self.assertEqual(Role.ADMIN.label, "admin")
        with self.assertRaises(mrd.ProtocolError):  # an undefined role
            mrd.decode_auth_reply(struct.pack("<Q", 1) + b"a" + b"\x02")
        with self.assertRaises(mrd.ProtocolError):  # no role at all
            mrd.decode_auth_reply(struct.pack("<Q", 1) + b"a")

    def test_server_addresses(self) -> None:
        self.assertEqual(mrd.parse_server_address("example.org:99"), ("example.org", 99))
        self.assertEqual(mrd.parse_server_address("example.org"), ("example.org", 1936))
        self.assertEqual(mrd.parse_server_address("[::1]:7"), ("::1", 7))
        self.assertEqual(mrd.parse_server_address("[::1]"), ("::1", 1936))
        for bad in ("host:", ":80", "host:x", "host:70000", "[::1"):
            with self.assertRaises(ValueError):
                mrd.parse_server_address(bad)

    def test_server_lists(self) -> None:
        self.assertEqual(mrd.parse_server_list("a.example:1936,b.example:1937,10.0.0.3"),
                         [("a.example", 1936), ("b.example", 1937), ("10.0.0.3", 1936)])
        # IPv6 literals hold no comma: in brackets or bare, they are items like any other.
        self.assertEqual(mrd.parse_server_list("[::1]:1936,[fe80::1],::2,host"),
                         [("::1", 1936), ("fe80::1", 1936), ("::2", 1936), ("host", 1936)])
        self.assertEqual(mrd.parse_server_list("example.org:99"), [("example.org", 99)])
        for bad, words in (("a:1,,b:2", "item 2 is empty"), ("a:1,", "item 2 is empty"),
                           (",a:1", "item 1 is empty"), ("a:1,b:0", "from 1 to 65535"),
                           ("a:1,b:x", "'b:x'"), ("a:1,[::1", "'[::1'"), ("a:1,:80", "no host"),
                           ("host:", "from 1 to 65535")):
            with self.subTest(bad=bad), self.assertRaisesRegex(ValueError, re.escape(words)):
                mrd.parse_server_list(bad)
        self.assertEqual(mrd.format_server_address("::1", 7), "[::1]:7")
        self.assertEqual(mrd.format_server_address("a", 7), "a:7")


class ScriptedServer:
    """A one-shot listener that reads one request frame (kept in ``request``), sends fixed bytes
    to whoever connects, then closes."""

    def __init__(self, reply: bytes):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.request = b""
        self.thread = threading.Thread(target=self._serve, args=(reply,), daemon=True)
        self.thread.start()

    def _serve(self, reply: bytes) -> None:
        peer, _ = self.listener.accept()
        with peer:
            while not mrd.split_frames(self.request)[0]:  # the frame may come in pieces
                chunk = peer.recv(65536)
                if not chunk:
                    break
                self.request += chunk
            peer.sendall(reply)
        self.listener.close()

    def connect(self) -> mrd.Connection:
        return mrd.Connection.connect("127.0.0.1", self.port, timeout=10)


class TestConnectionAgainstBadReplies(unittest.TestCase):
    """What the client does with replies no correct server sends."""

    def exchange(self, reply: bytes, call: str, *args, **kwargs):
        with ScriptedServer(reply).connect() as connection:
            return getattr(connection, call)(*args, **kwargs)

    def test_an_undefined_status_is_a_protocol_error(self) -> None:
        with self.assertRaises(mrd.ProtocolError):
            self.exchange(mrd.encode_frame(max(Status) + 1, mrd.encode_error("?")), "list")

    def test_a_header_promising_4_gib_then_closing(self) -> None:
        with self.assertRaises(mrd.ConnectionLost):
            self.exchange(b"\x00\xff\xff\xff\xff" + b"\x00" * 10, "list")

    def test_an_ok_reply_with_the_wrong_body(self) -> None:
        with self.assertRaises(mrd.ProtocolError):
            self.exchange(mrd.encode_frame(Status.OK, b"\x01\x02"), "stats")
        with self.assertRaises(mrd.ProtocolError):
            self.exchange(mrd.encode_frame(Status.OK, b"\x00"), "cancel", 1)

    def test_pending_is_not_a_valid_answer_to_status(self) -> None:
        body = mrd.encode_progress(Progress(1, JobState.MAPPING, 0, 1, 0, 1))
        with self.assertRaises(mrd.ProtocolError):
            self.exchange(mrd.encode_frame(Status.PENDING, body), "status", 1)

    def test_list_asks_for_tenants_and_reads_them(self) -> None:
        jobs = [JobEntry(3, JobState.MAPPING, "alice"), JobEntry(4, JobState.DONE, "")]
        scripted = ScriptedServer(mrd.encode_frame(Status.OK, mrd.encode_job_list(jobs)))
        with scripted.connect() as connection:
            self.assertEqual(connection.list(), jobs)
        scripted.thread.join()
        self.assertEqual(scripted.request.hex(" "), "04 01 00 00 00 01")

    def test_list_without_tenants_sends_version_1s_request(self) -> None:
        jobs = [JobEntry(3, JobState.MAPPING)]
        scripted = ScriptedServer(
            mrd.encode_frame(Status.OK, mrd.encode_job_list(jobs, with_tenants=False)))
        with scripted.connect() as connection:
            self.assertEqual(connection.list(with_tenants=False), jobs)
        scripted.thread.join()
        self.assertEqual(scripted.request.hex(" "), "04 00 00 00 00")

    def test_a_list_reply_in_the_layout_not_asked_for(self) -> None:
        plain = mrd.encode_job_list([JobEntry(3, JobState.DONE)], with_tenants=False)
        with self.assertRaises(mrd.ProtocolError):
            self.exchange(mrd.encode_frame(Status.OK, plain), "list")

    def scripted(self, reply_body: bytes, call: str, *args, **kwargs):
        """``(what the call returned, the request bytes it sent)`` against an OK reply."""
        scripted = ScriptedServer(mrd.encode_frame(Status.OK, reply_body))
        with scripted.connect() as connection:
            returned = getattr(connection, call)(*args, **kwargs)
        scripted.thread.join()
        return returned, scripted.request

    def test_status_sends_version_1s_request_unless_asked_for_details(self) -> None:
        progress = EXAMPLE_DETAILS.progress
        self.assertEqual(self.scripted(mrd.encode_progress(progress), "status", 7),
                         (progress, bytes.fromhex("02 04 00 00 00 07 00 00 00")))
        self.assertEqual(
            self.scripted(mrd.encode_job_details(EXAMPLE_DETAILS), "status", 7, details=True),
            (EXAMPLE_DETAILS, bytes.fromhex("02 05 00 00 00 07 00 00 00 01")))

    def test_stats_sends_version_1s_request_unless_asked_for_details(self) -> None:
        counters = EXAMPLE_DETAILED_STATS.counters()
        self.assertEqual(self.scripted(mrd.encode_server_stats(counters), "stats"),
                         (counters, bytes.fromhex("05 00 00 00 00")))
        self.assertEqual(
            self.scripted(mrd.encode_detailed_stats(EXAMPLE_DETAILED_STATS), "stats",
                          details=True),
            (EXAMPLE_DETAILED_STATS, bytes.fromhex("05 01 00 00 00 01")))

    def test_a_reply_in_the_layout_not_asked_for(self) -> None:
        # Version 1's replies to requests for details, and the other way round.
        for reply, call, args, kwargs in (
                (mrd.encode_progress(EXAMPLE_DETAILS.progress), "status", (7,), {"details": True}),
                (mrd.encode_job_details(EXAMPLE_DETAILS), "status", (7,), {}),
                (mrd.encode_server_stats(EXAMPLE_DETAILED_STATS), "stats", (), {"details": True}),
                (mrd.encode_detailed_stats(EXAMPLE_DETAILED_STATS), "stats", (), {})):
            with self.subTest(call=call, kwargs=kwargs), self.assertRaises(mrd.ProtocolError):
                self.exchange(mrd.encode_frame(Status.OK, reply), call, *args, **kwargs)

    def test_an_error_reply_raises_with_its_status(self) -> None:
        with self.assertRaises(mrd.ServerError) as caught:
            self.exchange(mrd.encode_frame(Status.QUEUE_FULL, mrd.encode_error("full")),
                          "submit", "words", "sum", [])
        self.assertEqual((caught.exception.status, caught.exception.message),
                         (Status.QUEUE_FULL, "full"))

    def test_unavailable_is_status_21_and_a_try_again(self) -> None:
        # A cluster node (mrd --redis) whose Redis is down: nothing was done; mrctl.py exits 3,
        # as for a lost connection, and says to try again or another node.
        with self.assertRaises(mrd.ServerError) as caught:
            self.exchange(mrd.encode_frame(21, mrd.encode_error("cannot reach Redis")),
                          "submit", "words", "sum", [])
        error = caught.exception
        self.assertEqual((error.status, error.message), (Status.UNAVAILABLE, "cannot reach Redis"))
        self.assertEqual(error.status.name, "UNAVAILABLE")
        self.assertFalse(error.job_failed)
        self.assertEqual(mrctl.exit_code_for_server_error(error), mrctl.EXIT_CONNECTION)
        self.assertIn("try again, or another node", mrctl.STATUS_DESCRIPTIONS[Status.UNAVAILABLE])


class ScriptedNode:
    """A server for one connection, as the C++ tests' ScriptedServer: for each scripted reply it
    reads one whole request (kept in ``requests``) and sends the reply's bytes (``b""``: none),
    then closes. It stops listening once it has accepted, so a second connection is refused, as
    by a node that is gone."""

    def __init__(self, *replies: bytes):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = ("127.0.0.1", self.listener.getsockname()[1])
        self.requests: List[bytes] = []
        self.thread = threading.Thread(target=self._serve, args=(replies,), daemon=True)
        self.thread.start()

    def _serve(self, replies) -> None:
        peer, _ = self.listener.accept()
        self.listener.close()
        with peer:
            pending = b""
            for reply in replies:
                frames, pending = mrd.split_frames(pending)
                while not frames:
                    chunk = peer.recv(65536)
                    if not chunk:
                        return
                    frames, pending = mrd.split_frames(pending + chunk)
                code, body = frames[0]
                pending = b"".join(mrd.encode_frame(c, b) for c, b in frames[1:]) + pending
                self.requests.append(mrd.encode_frame(code, body))
                peer.sendall(reply)

    def join(self) -> List[bytes]:
        self.thread.join(10)
        return self.requests


def refused_address() -> Tuple[str, int]:
    """An address nobody listens on: a port that was free a moment ago."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return ("127.0.0.1", probe.getsockname()[1])


HELLO_OK = mrd.encode_frame(Status.OK, mrd.encode_hello_reply(HelloReply(4, "mrd 9", 0)))


def refused_reason(address: Tuple[str, int]) -> str:
    return f"cannot connect to {address[0]}:{address[1]}: Connection refused"


class TestFailover(unittest.TestCase):
    """FailoverConnection: the nodes of a cluster, against scripted nodes and refused ports."""

    def failover_to(self, *servers, attempts: int = 3) -> mrd.FailoverConnection:
        """Short pauses (1 ms, up to 2); each move recorded in ``self.moves``."""
        self.moves = []
        connection = mrd.FailoverConnection(
            servers, timeout=10, attempts_per_server=attempts, first_pause=0.001,
            longest_pause=0.002,
            on_failover=lambda error, address, pause: self.moves.append((str(error), address,
                                                                         pause)))
        self.addCleanup(connection.close)
        return connection

    def test_what_moves_a_request_to_another_node(self) -> None:
        lost = mrd.ConnectionLost("the server closed the connection")
        for opcode in Opcode:
            with self.subTest(opcode=opcode):
                self.assertTrue(mrd.should_fail_over(lost, opcode))
                for status in (Status.SERVER_BUSY, Status.UNAVAILABLE):
                    self.assertTrue(mrd.should_fail_over(mrd.ServerError(status, ""), opcode))
                self.assertEqual(
                    mrd.should_fail_over(mrd.ServerError(Status.SHUTTING_DOWN, ""), opcode),
                    opcode == Opcode.SUBMIT)
        for status in (Status.QUEUE_FULL, Status.BAD_JOB, Status.UNKNOWN_JOB, Status.JOB_FAILED,
                       Status.FRAME_TOO_LARGE, Status.AUTH_FAILED, Status.SERVER_ERROR,
                       Status.VERSION_MISMATCH):
            self.assertFalse(mrd.should_fail_over(mrd.ServerError(status, ""), Opcode.SUBMIT))
        self.assertFalse(mrd.should_fail_over(mrd.ProtocolError("?"), Opcode.LIST))

    def test_the_first_server_that_answers(self) -> None:
        jobs = [JobEntry(4, JobState.DONE, "")]
        live = ScriptedNode(HELLO_OK, mrd.encode_frame(Status.OK, mrd.encode_job_list(jobs)))
        dead = refused_address()
        servers = self.failover_to(dead, live.address)
        self.assertEqual(servers.address, dead)
        self.assertEqual(servers.list(), jobs)
        self.assertEqual(servers.address, live.address)
        self.assertEqual(self.moves, [(refused_reason(dead), live.address, 0.0)])
        self.assertEqual(len(live.join()), 2)  # HELLO, LIST

    def test_every_server_down_names_each_and_why(self) -> None:
        a, c = refused_address(), refused_address()
        hangs_up = ScriptedNode(b"")  # reads HELLO, closes without a word
        b = hangs_up.address
        servers = self.failover_to(a, b, c, attempts=2)
        with self.assertRaises(mrd.FailoverExhausted) as caught:
            servers.list()
        self.assertIsInstance(caught.exception, mrd.ConnectionLost)
        self.assertEqual(str(caught.exception).splitlines(), [
            "list: gave up after trying each of the 3 servers 2 times:",
            f"  127.0.0.1:{a[1]}: {refused_reason(a)}",
            f"  127.0.0.1:{b[1]}: {refused_reason(b)}",  # gone after its one connection
            f"  127.0.0.1:{c[1]}: {refused_reason(c)}"])
        self.assertEqual([server for server, _ in caught.exception.failures], [a, b, c])
        # Six attempts in list order, five moves, a pause after the first full round.
        self.assertEqual([(address, pause) for _, address, pause in self.moves],
                         [(b, 0.0), (c, 0.0), (a, 0.001), (b, 0.0), (c, 0.0)])
        self.assertRegex(self.moves[1][0], r"^the server closed the connection")
        # mrctl.py exits 3 with that message, having said each move on the way.
        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            code = mrctl.main(["--server", f"127.0.0.1:{a[1]},127.0.0.1:{c[1]}", "list"])
        self.assertEqual(code, mrctl.EXIT_CONNECTION)
        lines = said.getvalue().splitlines()
        self.assertEqual(lines[0], f"mrctl.py: {refused_reason(a)}; trying 127.0.0.1:{c[1]}")
        self.assertEqual(lines[1], f"mrctl.py: {refused_reason(c)}; trying 127.0.0.1:{a[1]} "
                                   f"in 100 ms")
        self.assertEqual(lines[-3:], [
            "mrctl.py: list: gave up after trying each of the 2 servers 3 times:",
            f"  127.0.0.1:{a[1]}: {refused_reason(a)}", f"  127.0.0.1:{c[1]}: {refused_reason(c)}"])

    def test_pauses_double_after_each_failed_round(self) -> None:
        servers = self.failover_to(refused_address(), refused_address())
        with self.assertRaises(mrd.FailoverExhausted):
            servers.stats()
        self.assertEqual([pause for _, _, pause in self.moves], [0.0, 0.001, 0.0, 0.002, 0.0])

    def test_busy_and_unavailable_nodes_are_left_for_the_next(self) -> None:
        result = mrd.CountsResult([(b"a", 2)])
        busy = ScriptedNode(mrd.encode_frame(Status.SERVER_BUSY,
                                             mrd.encode_error("too many connections")))
        unavailable = ScriptedNode(HELLO_OK, mrd.encode_frame(
            Status.UNAVAILABLE, mrd.encode_error("cannot reach Redis")))
        live = ScriptedNode(HELLO_OK, mrd.encode_frame(Status.OK, mrd.encode_result(result)))
        servers = self.failover_to(busy.address, unavailable.address, live.address)
        self.assertEqual(servers.fetch(5).result, result)
        self.assertEqual([(why, address) for why, address, _ in self.moves], [
            ("SERVER_BUSY: too many connections", unavailable.address),
            ("UNAVAILABLE: cannot reach Redis", live.address)])

    def test_a_submit_lost_on_one_node_goes_to_the_next_with_the_same_key(self) -> None:
        lost = ScriptedNode(HELLO_OK, b"")  # takes the SUBMIT, closes without an answer
        stopping = ScriptedNode(HELLO_OK, mrd.encode_frame(Status.SHUTTING_DOWN,
                                                           mrd.encode_error("draining")))
        live = ScriptedNode(HELLO_OK, mrd.encode_frame(Status.OK, mrd.encode_job_id(42)))
        servers = self.failover_to(lost.address, stopping.address, live.address)
        self.assertEqual(servers.submit("words", "sum", [Document("a", "b c")]), 42)
        self.assertEqual(len(self.moves), 2)
        submits = [node.join()[1] for node in (lost, stopping, live)]
        self.assertEqual(len(set(submits)), 1, "the very same SUBMIT frame to every node")
        key = mrd.decode_submit(mrd.split_frames(submits[0])[0][0][1]).idempotency_key
        self.assertEqual(len(key), 16)  # none was given: a random one

    def test_what_any_node_would_answer_is_not_retried(self) -> None:
        # The next node is refused: trying it would end in FailoverExhausted instead.
        refuses = ScriptedNode(HELLO_OK, mrd.encode_frame(Status.BAD_JOB,
                                                          mrd.encode_error("unknown mapper")))
        servers = self.failover_to(refuses.address, refused_address())
        with self.assertRaises(mrd.ServerError) as caught:
            servers.submit("x", "sum", [], idempotency_key="k")
        self.assertEqual(caught.exception.status, Status.BAD_JOB)
        stopping = ScriptedNode(HELLO_OK, mrd.encode_frame(Status.SHUTTING_DOWN,
                                                           mrd.encode_error("draining")))
        servers = self.failover_to(stopping.address, refused_address())
        with self.assertRaises(mrd.ServerError):
            servers.cancel(3)  # SHUTTING_DOWN moves a SUBMIT only
        self.assertEqual(self.moves, [])

    def test_waiting_goes_on_on_another_node(self) -> None:
        mapping = Progress(5, JobState.MAPPING, 1, 2, 0, 1)
        reducing = Progress(5, JobState.REDUCING, 2, 2, 0, 1)
        result = mrd.CountsResult([(b"a", 2)])
        dies = ScriptedNode(HELLO_OK, mrd.encode_frame(Status.PENDING,
                                                       mrd.encode_progress(mapping)), b"")
        live = ScriptedNode(HELLO_OK,
                            mrd.encode_frame(Status.PENDING, mrd.encode_progress(reducing)),
                            mrd.encode_frame(Status.OK, mrd.encode_result(result)))
        servers = self.failover_to(dies.address, live.address)
        seen = []
        self.assertEqual(servers.wait_for_result(5, on_progress=seen.append), result)
        self.assertEqual(seen, [mapping, reducing])
        self.assertEqual([address for _, address, _ in self.moves], [live.address])
        self.assertEqual(len(live.join()), 3)  # HELLO, FETCH, FETCH

    def test_one_server_fails_as_a_connection_does(self) -> None:
        dead = refused_address()
        servers = self.failover_to(dead)
        with self.assertRaises(mrd.ConnectionLost) as caught:
            servers.list()
        self.assertNotIsInstance(caught.exception, mrd.FailoverExhausted)
        self.assertEqual(str(caught.exception), refused_reason(dead))
        unavailable = ScriptedNode(HELLO_OK, mrd.encode_frame(Status.UNAVAILABLE,
                                                              mrd.encode_error("no Redis")))
        servers = self.failover_to(unavailable.address)
        with self.assertRaises(mrd.ServerError) as caught:
            servers.fetch(1)
        self.assertEqual(caught.exception.status, Status.UNAVAILABLE)
        self.assertEqual(self.moves, [])
        with self.assertRaises(ValueError):
            mrd.FailoverConnection([])


# --------------------------------------------------------------------------------------------
# 3. Against the real server
# --------------------------------------------------------------------------------------------


class ForwardingNode:
    """A stand-in for a node of a cluster in front of a real server: it forwards one connection,
    request by request, and stops listening once it has accepted it. With ``lose_submit_reply``
    the first SUBMIT reaches the server but its reply is dropped and the connection closed (a
    node that died before answering); ``die()`` closes the connection at once."""

    def __init__(self, target_port: int, lose_submit_reply: bool = False):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = ("127.0.0.1", self.listener.getsockname()[1])
        self.target_port = target_port
        self.lose_submit_reply = lose_submit_reply
        self.requests: List[int] = []  # the opcodes forwarded
        self.client: Optional[socket.socket] = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address_text(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def _serve(self) -> None:
        self.client, _ = self.listener.accept()
        self.listener.close()
        upstream = mrd.Connection.connect("127.0.0.1", self.target_port, timeout=30)
        with self.client, upstream:
            pending = b""
            while True:
                frames, rest = mrd.split_frames(pending)
                if not frames:
                    try:
                        chunk = self.client.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    pending += chunk
                    continue
                code, body = frames[0]
                pending = pending[mrd.HEADER_SIZE + len(body):]
                self.requests.append(code)
                reply = upstream.request(mrd.encode_frame(code, body))
                if code == Opcode.SUBMIT and self.lose_submit_reply:
                    return  # the job was accepted; its id goes nowhere
                self.client.sendall(mrd.encode_frame(reply.status, reply.body))

    def die(self) -> None:
        try:
            self.client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone


class TestFailoverToARealServer(unittest.TestCase):
    def test_waiting_goes_on_on_another_node(self) -> None:
        # test-slow sleeps 200 ms in each map task of the document named 200; --chunk-bytes 1
        # makes a task of each word. The node polled dies at the first PENDING.
        server = shared_test_jobs_server()
        with server.connect() as connection:
            job_id = connection.submit("test-slow", "sum", [Document("200", "slow a slow b")],
                                       chunk_bytes=1)
        node = ForwardingNode(server.port)
        live = ("127.0.0.1", server.port)
        moves = []
        with mrd.FailoverConnection([node.address, live], timeout=30,
                                    on_failover=lambda error, to, pause: moves.append(to)) \
                as servers:
            result = servers.wait_for_result(job_id, on_progress=lambda _: node.die())
            self.assertEqual(servers.address, live)
        self.assertEqual(result.entries, [(b"slow", 2), (b"a", 1), (b"b", 1)])
        self.assertEqual(moves, [live])
        self.assertEqual(node.requests[:2], [Opcode.HELLO, Opcode.FETCH])

    def test_a_lost_submit_is_sent_to_the_next_node_with_its_key(self) -> None:
        server = shared_server()
        with server.connect() as connection:
            before = connection.stats().jobs_submitted
            node = ForwardingNode(server.port, lose_submit_reply=True)
            with mrd.FailoverConnection([node.address, ("127.0.0.1", server.port)],
                                        timeout=30) as servers:
                job_id = servers.submit("words", "sum", [Document("a", "x y x")])
                self.assertEqual(servers.wait_for_result(job_id).entries,
                                 [(b"x", 2), (b"y", 1)])
            self.assertEqual(node.requests, [Opcode.HELLO, Opcode.SUBMIT])
            self.assertEqual(connection.stats().jobs_submitted, before + 1)


class TestOpcodes(ServerTestCase):
    def test_hello(self) -> None:
        hello = self.connection.hello()
        self.assertEqual(hello.version, mrd.PROTOCOL_VERSION)
        self.assertTrue(hello.software.startswith("mrd "), hello.software)
        self.assertFalse(hello.auth_required)  # started without --auth-file

    def test_hello_with_another_version_keeps_the_connection(self) -> None:
        for version in (0, mrd.PROTOCOL_VERSION + 1, 99):
            with self.subTest(version=version):
                error = self.assert_refused(Status.VERSION_MISMATCH, self.connection.hello,
                                            version)
                self.assertEqual(error.message, f"this server speaks protocol versions 1 to "
                                                f"{mrd.PROTOCOL_VERSION}, the client {version}")
        self.assertEqual(self.connection.hello().version, mrd.PROTOCOL_VERSION)

    def test_hello_of_versions_2_and_3_gets_the_same_layout_as_version_4(self) -> None:
        replies = [self.connection.request(mrd.hello_frame(Hello(version, "")))
                   for version in (2, 3, 4)]
        self.assertEqual([reply.status for reply in replies], [Status.OK] * 3)
        hellos = [mrd.decode_hello_reply(reply.body) for reply in replies]
        self.assertEqual([hello.version for hello in hellos], [2, 3, 4])  # each echoes its own
        for reply in replies[:2]:
            self.assertEqual(reply.body[2:], replies[2].body[2:])  # the rest: the same bytes
        self.assertEqual((hellos[0].flags, hellos[0].software), (0, hellos[2].software))

    def test_hello_of_version_1_gets_version_1s_layout(self) -> None:
        reply = self.connection.request(mrd.hello_frame(Hello(1, "")))
        self.assertEqual(reply.status, Status.OK)
        hello = mrd.decode_hello_reply(reply.body)
        self.assertEqual((hello.version, hello.flags), (1, 0))
        self.assertEqual(len(reply.body), 2 + 8 + len(hello.software.encode()))  # no flags
        self.assertEqual(self.connection.hello(1).version, 1)

    def test_auth_on_a_server_without_tokens(self) -> None:
        # A server that takes no tokens fails every AUTH, and goes on answering.
        self.assert_refused(Status.AUTH_FAILED, self.connection.auth, "anything")
        self.assertIsInstance(self.connection.list(), list)

    def test_submit_fetch_status(self) -> None:
        job_id = self.connection.submit("words", "sum", [Document("a.txt", "to be or not to be")])
        self.assertGreater(job_id, 0)
        result = self.connection.wait_for_result(job_id)
        self.assertEqual(result.entries, [(b"be", 2), (b"to", 2), (b"not", 1), (b"or", 1)])
        progress = self.connection.status(job_id)
        self.assertEqual((progress.id, progress.state), (job_id, JobState.DONE))
        self.assertEqual(progress.map_done, progress.map_total)
        self.assertEqual(progress.reduce_done, progress.reduce_total)
        outcome = self.connection.fetch(job_id)  # a result can be fetched again
        self.assertTrue(outcome.done)
        self.assertEqual(outcome.result, result)

    def test_ids_increase(self) -> None:
        first = self.connection.submit("words", "sum", [])
        second = self.connection.submit("words", "sum", [])
        self.assertGreater(second, first)

    def test_cancel(self) -> None:
        job_id = self.connection.submit("words", "sum", big_documents(), chunk_bytes=4096)
        self.connection.cancel(job_id)
        self.assertEqual(self.connection.fetch(job_id).status, Status.JOB_CANCELLED)
        self.assertEqual(self.connection.status(job_id).state, JobState.CANCELLED)
        self.connection.cancel(job_id)  # cancelling again is OK

    def test_cancel_releases_a_finished_result(self) -> None:
        job_id = self.connection.submit("words", "sum", [Document("a", "x")])
        self.connection.wait_for_result(job_id)
        self.connection.cancel(job_id)
        outcome = self.connection.fetch(job_id)
        self.assertEqual(outcome.status, Status.JOB_CANCELLED)
        self.assertTrue(outcome.message)

    def test_list(self) -> None:
        job_id = self.connection.submit("words", "sum", [Document("a", "x")])
        self.connection.wait_for_result(job_id)
        jobs = self.connection.list()
        ids = [job.id for job in jobs]
        self.assertEqual(ids, sorted(ids))
        self.assertIn(JobEntry(job_id, JobState.DONE), jobs)  # without tokens: no tenant
        self.assertEqual({job.tenant for job in jobs}, {""})
        self.assertIn(JobEntry(job_id, JobState.DONE), self.connection.list(with_tenants=False))

    def test_list_options(self) -> None:
        job_id = self.connection.submit("words", "sum", [Document("a", "x")])
        self.connection.wait_for_result(job_id)
        # Options 0 and an empty body: version 1's layout; options 1: with (empty) tenants.
        for options, with_tenants in ((None, False), (0, False), (1, True)):
            with self.subTest(options=options):
                reply = self.connection.request(mrd.list_frame(options))
                self.assertEqual(reply.status, Status.OK)
                jobs = mrd.decode_job_list(reply.body, with_tenants)
                self.assertIn(JobEntry(job_id, JobState.DONE), jobs)

    def test_list_refuses_unknown_options(self) -> None:
        for options in (0x02, 0x03, 0x80):
            with self.subTest(options=options):
                reply = self.connection.request(mrd.list_frame(options))
                self.assertEqual((reply.status, reply.error_message()),
                                 (Status.BAD_REQUEST, f"list: unknown option bits {options}; "
                                                      f"this server knows 1 (with tenants)"))
        for size in (2, 64):  # more than the options byte
            with self.subTest(body_bytes=size):
                reply = self.connection.request(mrd.encode_frame(Opcode.LIST, b"\x01" * size))
                self.assertEqual(reply.status, Status.BAD_REQUEST)
                self.assertTrue(reply.error_message().startswith("list: "))
        self.assertIsInstance(self.connection.list(), list)  # the connection stays usable

    def test_stats(self) -> None:
        before = self.connection.stats()
        self.connection.wait_for_result(self.connection.submit("words", "sum", []))
        after = self.connection.stats()
        self.assertGreaterEqual(after.connections_open, 1)
        self.assertEqual(after.jobs_submitted, before.jobs_submitted + 1)
        self.assertGreater(after.requests_total, before.requests_total)
        self.assertGreaterEqual(after.uptime_ms, before.uptime_ms)
        self.assertGreaterEqual(after.workers, 1)

    def test_idempotent_submit(self) -> None:
        documents = [Document("a", "idempotent")]
        key = "py-" + os.urandom(8).hex()
        first = self.connection.submit("words", "sum", documents, idempotency_key=key)
        again = self.connection.submit("words", "sum", documents, idempotency_key=key)
        self.assertEqual(first, again, "the same key must give the same job")
        other = self.connection.submit("words", "sum", documents)
        self.assertNotEqual(first, other)


class TestRunningJobs(ServerTestCase):
    """Jobs that cannot finish until the test cancels them."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = shared_test_jobs_server()

    def test_progress_while_running(self) -> None:
        job_id = self.connection.submit(*HANGING_JOB)
        seen: List[Progress] = []
        canceller = self.server.connect()
        self.addCleanup(canceller.close)
        self.addCleanup(canceller.cancel, job_id)  # (again, if the test failed first)

        def on_progress(progress: Progress) -> None:
            seen.append(progress)
            if len(seen) == 3:  # the job never finishes: only this ends the wait
                canceller.cancel(job_id)

        with self.assertRaises(mrd.ServerError) as caught:
            self.connection.wait_for_result(job_id, on_progress=on_progress)
        self.assertEqual(caught.exception.status, Status.JOB_CANCELLED)
        self.assertEqual(len(seen), 3)
        for progress in seen:
            self.assertEqual(progress.id, job_id)
            self.assertIn(progress.state, (JobState.QUEUED, JobState.MAPPING))
            self.assertEqual((progress.map_done, progress.reduce_done), (0, 0))
            self.assertLessEqual(progress.map_done, progress.map_total)
            self.assertLessEqual(progress.reduce_done, progress.reduce_total)


class TestDetailsOfTestJobs(ServerTestCase):
    """STATUS with details of jobs that hang, sleep, crash or time out (--enable-test-jobs)."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = shared_test_jobs_server()

    def test_details_of_an_unfinished_job_then_cancelled(self) -> None:
        before = time.time()
        job_id = self.connection.submit(*HANGING_JOB)
        self.addCleanup(self.connection.cancel, job_id)  # (again, if the test failed first)
        running = self.wait_until_started(job_id)
        now = time.time()
        self.assertEqual(running.progress.state, JobState.MAPPING)
        self.assertEqual((running.mapper, running.reducer, running.tenant),
                         ("test-hang", "sum", ""))
        self.assertEqual(running.input_bytes, submit_body_length(*HANGING_JOB))
        self.assertEqual((running.finished_ms, running.failure), (0, ""))
        self.assert_job_times(running, before, now)
        self.connection.cancel(job_id)
        cancelled = self.connection.status(job_id, details=True)
        self.assertEqual(cancelled.progress.state, JobState.CANCELLED)
        self.assertEqual(cancelled.failure, "")  # cancelled is not failed
        self.assertEqual((cancelled.submitted_ms, cancelled.started_ms),
                         (running.submitted_ms, running.started_ms))
        self.assertNotEqual(cancelled.finished_ms, 0)
        self.assert_job_times(cancelled, before, time.time())

    def test_details_of_a_slow_job(self) -> None:
        sleep_ms = 150  # test-slow sleeps as many milliseconds as its document's name says
        job = ("test-slow", "sum", [Document(str(sleep_ms), "slow words")])
        before = time.time()
        job_id = self.connection.submit(*job)
        self.connection.wait_for_result(job_id)
        after = time.time()
        details = self.connection.status(job_id, details=True)
        self.assertEqual(details.input_bytes, submit_body_length(*job))
        self.assert_job_times(details, before, after)
        self.assertGreaterEqual(details.finished_ms - details.started_ms,
                                sleep_ms - CLOCK_SLACK_MS)

    def test_failure_is_what_fetch_says(self) -> None:
        for mapper, options, status in (("test-crash", {}, Status.JOB_CRASHED),
                                        ("test-hang", {"task_timeout_ms": 100},
                                         Status.JOB_TIMED_OUT)):
            with self.subTest(mapper=mapper):
                job_input = [Document("f", "x")]
                before = time.time()
                job_id = self.connection.submit(mapper, "sum", job_input, **options)
                self.wait_until_finished(job_id)
                after = time.time()
                outcome = self.connection.fetch(job_id)
                self.assertEqual(outcome.status, status, outcome.message)
                details = self.connection.status(job_id, details=True)
                self.assertEqual(details.progress.state, JobState.FAILED)
                self.assertEqual(details.failure, outcome.message)
                self.assertEqual(details.input_bytes,
                                 submit_body_length(mapper, "sum", job_input, **options))
                self.assertNotEqual(details.started_ms, 0)
                self.assert_job_times(details, before, after)


class TestJobDetails(ServerTestCase):
    """STATUS with details (version 4), on the shared server, which takes no tokens."""

    def assert_finished_job_details(self, mapper: str, reducer: str, job_input,
                                    submitted_first: bool = True, **options) -> JobDetails:
        before = time.time()
        job_id = self.connection.submit(mapper, reducer, job_input, **options)
        self.connection.wait_for_result(job_id)
        after = time.time()
        details = self.connection.status(job_id, details=True)
        self.assertIsInstance(details, JobDetails)
        self.assertEqual(details.progress, self.connection.status(job_id))
        self.assertEqual(details.progress.state, JobState.DONE)
        self.assertEqual((details.mapper, details.reducer, details.tenant, details.failure),
                         (mapper, reducer, "", ""))
        self.assertEqual(details.input_bytes,
                         submit_body_length(mapper, reducer, job_input, **options))
        self.assertNotEqual(details.started_ms, 0, "a job with a task has started")
        self.assertNotEqual(details.finished_ms, 0)
        self.assert_job_times(details, before, after, submitted_first)
        # Asking again changes nothing.
        self.assertEqual(self.connection.status(job_id, details=True), details)
        return details

    def test_details_of_finished_jobs(self) -> None:
        for mapper, reducer, job_input, options in (
                ("words", "sum", [Document("a.txt", "to be or not to be")], {}),
                ("words", "sum", sample_documents(), {"chunk_bytes": 64, "partitions": 3}),
                ("numbers", "stats", Numbers([1.5, 2.5]), {"idempotency_key": os.urandom(8).hex()}),
                ("matmul", "rows", EXAMPLE_MATRICES, {})):
            with self.subTest(mapper=mapper, options=sorted(options)):
                self.assert_finished_job_details(mapper, reducer, job_input, **options)

    def test_details_of_a_large_submit(self) -> None:
        # Over 64 KiB, the server receives the SUBMIT into a memory file. Known discrepancy
        # (reported): with a body of a megabyte or more, today's server stamps submitted_ms
        # about when it answers the SUBMIT, after the job's first task went to a worker, so
        # started_ms can come before it (by up to some tens of ms), which "when the server
        # accepted it" does not allow; job_us counts from that late stamp too. Everything else
        # is checked; restore submitted_first once the server or the document is mended.
        for copies in (1, 4):
            with self.subTest(mib=copies * 1.1):
                self.assert_finished_job_details("words", "sum", big_documents(copies),
                                                 submitted_first=False, chunk_bytes=65536,
                                                 partitions=3)

    def test_details_of_failed_jobs(self) -> None:
        for mapper, reducer, job_input in (
                ("matmul", "rows", MatrixPair(Matrix(1, 2, [1, 2]), Matrix(1, 1, [3]))),
                ("numbers", "stats", Numbers([1.0, float("nan")]))):
            with self.subTest(mapper=mapper):
                before = time.time()
                job_id = self.connection.submit(mapper, reducer, job_input)
                self.wait_until_finished(job_id)
                after = time.time()
                outcome = self.connection.fetch(job_id)
                self.assertEqual(outcome.status, Status.JOB_FAILED)
                details = self.connection.status(job_id, details=True)
                self.assertEqual(details.progress.state, JobState.FAILED)
                self.assertTrue(details.failure)
                self.assertEqual(details.failure, outcome.message)  # "as FETCH says"
                self.assertEqual((details.mapper, details.reducer), (mapper, reducer))
                self.assertEqual(details.input_bytes,
                                 submit_body_length(mapper, reducer, job_input))
                self.assertNotEqual(details.finished_ms, 0)
                self.assert_job_times(details, before, after)

    def test_details_of_a_result_released_by_cancel(self) -> None:
        job_id = self.connection.submit("words", "sum", [Document("a", "x")])
        self.connection.wait_for_result(job_id)
        done = self.connection.status(job_id, details=True)
        self.connection.cancel(job_id)
        cancelled = self.connection.status(job_id, details=True)
        self.assertEqual(cancelled.progress.state, JobState.CANCELLED)
        self.assertEqual(cancelled.failure, "")
        self.assertEqual((cancelled.mapper, cancelled.input_bytes, cancelled.submitted_ms,
                          cancelled.started_ms),
                         (done.mapper, done.input_bytes, done.submitted_ms, done.started_ms))
        # "when it was done, failed or cancelled": the document does not say which of the two
        # a job that was done and then cancelled keeps; either way, not before it was done.
        self.assertGreaterEqual(cancelled.finished_ms, done.finished_ms)

    def test_options_00_is_version_1s_request(self) -> None:
        job_id = self.connection.submit("words", "sum", [Document("a", "x")])
        self.connection.wait_for_result(job_id)
        plain, zero = self.connection.pipeline([mrd.status_frame(job_id),
                                                mrd.status_frame(job_id, 0)])
        self.assertEqual((plain.status, zero.status), (Status.OK, Status.OK))
        self.assertEqual(zero.body, plain.body)
        self.assertEqual(len(zero.body), 21)
        reply = self.connection.request(mrd.stats_frame(0))
        self.assertEqual((reply.status, len(reply.body)), (Status.OK, 112))
        mrd.decode_server_stats(reply.body)

    def test_unknown_option_bits_are_bad_requests(self) -> None:
        job_id = self.connection.submit("words", "sum", [Document("a", "x")])
        self.connection.wait_for_result(job_id)
        frames = []
        for options in (0x02, 0x03, 0x80, 0xFF):
            frames += [mrd.status_frame(job_id, options), mrd.stats_frame(options)]
        frames += [mrd.encode_frame(Opcode.STATUS, mrd.encode_job_id(job_id) + b"\x01\x00"),
                   mrd.encode_frame(Opcode.STATS, b"\x01\x00"),
                   mrd.encode_frame(Opcode.STATUS, b"\x01" * 64),
                   mrd.encode_frame(Opcode.STATS, b"\x01" * 64)]
        for frame, reply in zip(frames, self.connection.pipeline(frames)):
            with self.subTest(request=frame.hex(" ")[:60]):
                self.assertEqual(reply.status, Status.BAD_REQUEST)
                self.assertTrue(reply.error_message())
        # The connection stays usable.
        self.assertEqual(self.connection.status(job_id, details=True).progress.id, job_id)

    def test_details_of_jobs_that_do_not_exist(self) -> None:
        for job_id in (0xFFFF_FFF0, 0):
            with self.subTest(job_id=job_id):
                self.assert_refused(Status.UNKNOWN_JOB, self.connection.status, job_id,
                                    details=True)

    def test_stats_with_details(self) -> None:
        before = self.connection.stats(details=True)
        job_id = self.connection.submit("words", "sum", sample_documents(), chunk_bytes=64,
                                        partitions=2)
        self.connection.wait_for_result(job_id)
        progress = self.connection.status(job_id)
        after = self.connection.stats(details=True)
        for stats in (before, after):
            self.assertIsInstance(stats, DetailedStats)
            self.assertLessEqual(stats.workers_busy, stats.workers)
            for histogram in (stats.task_us, stats.job_us):
                counts = [count for _, count in histogram.buckets]
                self.assertEqual(counts, sorted(counts), "cumulative")
                self.assertIs(histogram.buckets[-1][0], math.inf)
        self.assertEqual(after.jobs_submitted, before.jobs_submitted + 1)
        tasks = progress.map_total + progress.reduce_total
        self.assertGreaterEqual(tasks, 2)
        self.assertGreaterEqual(after.tasks_done, before.tasks_done + tasks)
        self.assertGreaterEqual(after.task_us.count, before.task_us.count + tasks)
        self.assertGreaterEqual(after.job_us.count, before.job_us.count + 1)
        self.assertGreaterEqual(after.task_us.sum_us, before.task_us.sum_us)
        self.assertGreaterEqual(after.job_us.sum_us, before.job_us.sum_us)


class TestBuiltInJobs(ServerTestCase):
    """Each built-in job against a reference computed here from section 7."""

    def test_words(self) -> None:
        documents = sample_documents()
        result = self.run_job("words", "sum", documents)
        self.assertIsInstance(result, mrd.CountsResult)
        self.assertEqual(result.entries, reference_word_counts(documents))
        self.assertIn((b"caf\xc3\xa9", 1), result.entries)  # bytes >= 0x80 are kept

    def test_words_do_not_depend_on_chunks_or_partitions(self) -> None:
        documents = sample_documents()
        result = self.run_job("words", "sum", documents, chunk_bytes=7, partitions=5)
        self.assertEqual(result.entries, reference_word_counts(documents))

    def test_bigrams(self) -> None:
        documents = sample_documents()
        result = self.run_job("bigrams", "sum", documents)
        self.assertEqual(result.entries, reference_bigrams(documents))

    def test_bigrams_stay_within_a_document(self) -> None:
        result = self.run_job("bigrams", "sum", [Document("a", "x y"), Document("b", "z")])
        self.assertEqual(result.entries, [(b"x y", 1)])

    def test_index(self) -> None:
        documents = sample_documents() + [Document("doc0.txt", "repeated name")]
        result = self.run_job("index", "postings", documents)
        self.assertIsInstance(result, mrd.PostingsResult)
        self.assertEqual(result.entries, reference_index(documents))

    def test_statistics(self) -> None:
        rng = random.Random(7)
        for values in ([1.5, 2.5], [3.0], [2.0, 1.0, 2.0, 1.0, 5.0],
                       [rng.uniform(-1e6, 1e6) for _ in range(1001)] + [42.0, 42.0],
                       [float("inf"), 1.0, 2.0]):
            with self.subTest(count=len(values)):
                result = self.run_job("numbers", "stats", Numbers(values))
                expected = reference_statistics(values)
                self.assertEqual(result.count, expected.count)
                for name in ("median", "mode", "min", "max"):
                    self.assertEqual(getattr(result, name), getattr(expected, name), name)
                self.assertTrue(math.isclose(result.mean, expected.mean, rel_tol=1e-12),
                                (result.mean, expected.mean))

    def test_statistics_of_nothing(self) -> None:
        result = self.run_job("numbers", "stats", Numbers([]))
        self.assertEqual(result.count, 0)
        for name in ("mean", "median", "mode", "min", "max"):
            self.assertTrue(math.isnan(getattr(result, name)), name)

    def test_matmul(self) -> None:
        rng = random.Random(3)
        for n, k, m in ((1, 2, 1), (3, 4, 5), (8, 8, 8), (1, 1, 1)):
            with self.subTest(shape=(n, k, m)):
                a = Matrix(n, k, [rng.uniform(-1, 1) for _ in range(n * k)])
                b = Matrix(k, m, [rng.uniform(-1, 1) for _ in range(k * m)])
                result = self.run_job("matmul", "rows", MatrixPair(a, b))
                expected = reference_product(a, b)
                self.assertEqual((result.rows, result.cols), (n, m))
                for got, want in zip(result.values, expected.values):
                    self.assertAlmostEqual(got, want, delta=1e-12 * k)

    def test_matmul_has_no_reduce_step(self) -> None:
        job_id = self.connection.submit("matmul", "rows", EXAMPLE_MATRICES)
        self.assertEqual(self.connection.wait_for_result(job_id), Matrix(1, 1, [11.0]))
        self.assertEqual(self.connection.status(job_id).reduce_total, 0)


class TestErrors(ServerTestCase):
    def test_unknown_job(self) -> None:
        never = 0xFFFF_FFF0
        self.assertEqual(self.connection.fetch(never).status, Status.UNKNOWN_JOB)
        self.assertEqual(self.connection.fetch(0).status, Status.UNKNOWN_JOB)  # 0 is never a job
        self.assert_refused(Status.UNKNOWN_JOB, self.connection.status, never)
        self.assert_refused(Status.UNKNOWN_JOB, self.connection.cancel, never)

    def test_bad_job(self) -> None:
        documents = [Document("a", "x")]
        for mapper, reducer, job_input, options in (
                ("nope", "sum", documents, {}),
                ("words", "postings", documents, {}),
                ("words", "sum", Numbers([1.0]), {}),
                ("matmul", "rows", documents, {}),
                ("words", "sum", documents, {"partitions": 1025})):
            with self.subTest(mapper=mapper, reducer=reducer, options=options):
                self.assert_refused(Status.BAD_JOB, self.connection.submit, mapper, reducer,
                                    job_input, **options)
        self.connection.submit("words", "sum", documents, partitions=1024)  # the limit itself

    def test_jobs_that_fail_after_submit(self) -> None:
        for mapper, reducer, job_input in (
                ("matmul", "rows", MatrixPair(Matrix(1, 2, [1, 2]), Matrix(1, 1, [3]))),
                ("numbers", "stats", Numbers([1.0, float("nan")]))):
            with self.subTest(mapper=mapper):
                job_id = self.connection.submit(mapper, reducer, job_input)
                self.assertEqual(self.wait_until_finished(job_id).state, JobState.FAILED)
                outcome = self.connection.fetch(job_id)
                self.assertEqual(outcome.status, Status.JOB_FAILED)
                self.assertTrue(outcome.message)
                with self.assertRaises(mrd.ServerError) as caught:
                    self.connection.wait_for_result(job_id)
                self.assertTrue(caught.exception.job_failed)

    def bad_request(self, frame: bytes) -> str:
        reply = self.connection.request(frame)
        self.assertEqual(reply.status, Status.BAD_REQUEST)
        return reply.error_message()

    def test_bad_request_keeps_the_connection(self) -> None:
        submit = mrd.encode_submit(SubmitRequest("words", "sum", [Document("a", "x")]))
        self.bad_request(mrd.encode_frame(Opcode.SUBMIT, submit + b"\x00"))  # trailing byte
        self.bad_request(mrd.encode_frame(Opcode.SUBMIT, submit[:-1]))       # truncated
        self.bad_request(mrd.encode_frame(Opcode.FETCH, b"\x01\x00\x00"))    # short id
        self.bad_request(mrd.encode_frame(Opcode.FETCH, b"\x01\x00\x00\x00\x00"))
        self.bad_request(mrd.encode_frame(Opcode.HELLO, b""))
        self.assertEqual(self.connection.hello().version, mrd.PROTOCOL_VERSION)

    def test_bad_request_limits(self) -> None:
        documents = [Document("a", "x")]
        for request in (SubmitRequest("m" * 65, "sum", documents),
                        SubmitRequest("words", "sum", [Document("n" * 4097, "x")]),
                        SubmitRequest("words", "sum", documents, idempotency_key="k" * 65)):
            with self.subTest(request=str(request)[:60]):
                self.bad_request(mrd.submit_frame(request))
        self.connection.submit("words", "sum", [Document("n" * 4096, "x")],
                               idempotency_key="k" * 64)

    def test_bad_request_matrices_and_input_kind(self) -> None:
        head = mrd.encode_submit(SubmitRequest("matmul", "rows", []))[:-9]  # up to input_kind
        def matrix(rows, cols, values):
            packed_values = struct.pack(f"<{len(values)}d", *values)
            return struct.pack("<QQQ", rows, cols, len(values)) + packed_values
        one = matrix(1, 1, [1.0])
        for body in (head + b"\x02" + matrix(1, 2, [1.0]) + one,          # values vs shape
                     head + b"\x02" + matrix(1_048_577, 1, []) + one,     # over the side limit
                     head + b"\x02" + matrix(1 << 20, 1 << 20, []) + one,
                     head + b"\x03"):                                     # undefined kind
            with self.subTest(body=body[-40:].hex()):
                self.bad_request(mrd.encode_frame(Opcode.SUBMIT, body))

    def test_unknown_opcode_keeps_the_connection(self) -> None:
        reply = self.connection.request(mrd.encode_frame(42, b"\x00" * 64))
        self.assertEqual(reply.status, Status.UNKNOWN_OPCODE)
        self.assertTrue(reply.error_message())
        self.assertIsInstance(self.connection.list(), list)

    def assert_too_large_then_closed(self, frame: bytes) -> None:
        with self.server.raw_socket() as sock:
            sock.sendall(frame)
            stream = read_until_closed(sock)
        frames, rest = mrd.split_frames(stream)
        self.assertEqual(rest, b"")
        self.assertEqual(len(frames), 1, "FRAME_TOO_LARGE, then the connection is closed")
        self.assertEqual(frames[0][0], Status.FRAME_TOO_LARGE)
        self.assertTrue(mrd.decode_error(frames[0][1]))

    def test_frame_too_large(self) -> None:
        self.assert_too_large_then_closed(b"\x00\xff\xff\xff\xff")            # SUBMIT, 4 GiB
        self.assert_too_large_then_closed(struct.pack("<BI", Opcode.FETCH, 65) + b"\x00" * 65)
        self.assert_too_large_then_closed(struct.pack("<BI", 42, 65))         # undefined opcode


class TestPipelining(ServerTestCase):
    def test_replies_come_in_request_order(self) -> None:
        documents = [Document("a.txt", "to be or not to be")]
        replies = self.connection.pipeline([
            mrd.hello_frame(),
            mrd.submit_frame(SubmitRequest("words", "sum", documents)),
            mrd.status_frame(0xFFFF_FFF0),
            mrd.encode_frame(42),
            mrd.list_frame(),
            mrd.stats_frame(),
            mrd.submit_frame(SubmitRequest("nope", "sum", documents)),
        ])
        self.assertEqual([reply.status for reply in replies],
                         [Status.OK, Status.OK, Status.UNKNOWN_JOB, Status.UNKNOWN_OPCODE,
                          Status.OK, Status.OK, Status.BAD_JOB])
        job_id = mrd.decode_job_id(replies[1].body)
        self.assertIn(job_id, [job.id for job in mrd.decode_job_list(replies[4].body)])
        self.assertEqual(mrd.decode_server_stats(replies[5].body).connections_open >= 1, True)

    def test_version_1_and_version_4_requests_in_one_write(self) -> None:
        job_id = self.connection.submit("words", "sum", [Document("a", "x")])
        self.connection.wait_for_result(job_id)
        replies = self.connection.pipeline([
            mrd.status_frame(job_id, mrd.STATUS_WITH_DETAILS), mrd.stats_frame(),
            mrd.status_frame(job_id), mrd.stats_frame(mrd.STATS_WITH_DETAILS)])
        self.assertEqual([reply.status for reply in replies], [Status.OK] * 4)
        details = mrd.decode_job_details(replies[0].body)
        self.assertEqual(mrd.decode_progress(replies[2].body), details.progress)
        plain = mrd.decode_server_stats(replies[1].body)
        detailed = mrd.decode_detailed_stats(replies[3].body)
        self.assertEqual((detailed.jobs_submitted, detailed.workers),
                         (plain.jobs_submitted, plain.workers))

    def test_many_jobs_in_one_write(self) -> None:
        count = 50
        frames = [mrd.submit_frame(SubmitRequest("words", "sum", [Document("d", f"w{n} w{n} x")]))
                  for n in range(count)]
        job_ids = [mrd.decode_job_id(reply.body) for reply in self.connection.pipeline(frames)]
        self.assertEqual(job_ids, sorted(job_ids))
        self.assertEqual(len(set(job_ids)), count)
        for n, job_id in enumerate(job_ids):
            result = self.connection.wait_for_result(job_id)
            self.assertEqual(result.entries, [(f"w{n}".encode(), 2), (b"x", 1)])
        fetches = self.connection.pipeline([mrd.fetch_frame(job_id) for job_id in job_ids])
        self.assertEqual([reply.status for reply in fetches], [Status.OK] * count)

    def test_half_close_still_gets_every_reply(self) -> None:
        with self.server.raw_socket() as sock:
            sock.sendall(mrd.list_frame() + mrd.hello_frame() + mrd.stats_frame())
            sock.shutdown(socket.SHUT_WR)
            stream = read_until_closed(sock)
        frames, rest = mrd.split_frames(stream)
        self.assertEqual((len(frames), rest), (3, b""))
        self.assertEqual(mrd.decode_hello_reply(frames[1][1]).version, mrd.PROTOCOL_VERSION)


class TestServerLimits(unittest.TestCase):
    """QUEUE_FULL, JOB_EXPIRED, SERVER_BUSY and the SUBMIT size limit, on a server of its own."""

    MAX_FRAME_MIB = 1

    @classmethod
    def setUpClass(cls) -> None:
        if not MRD_BINARY:
            raise unittest.SkipTest("MRD_BINARY is not set")
        cls.server = ServerProcess(MRD_BINARY, "--max-queued-jobs", "1", "--max-retained-mib", "0",
                                   "--max-connections", "2",
                                   "--max-frame-mib", str(cls.MAX_FRAME_MIB))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def setUp(self) -> None:
        self.connection = self.connect_when_not_busy()
        self.addCleanup(self.connection.close)

    def connect_when_not_busy(self) -> mrd.Connection:
        """A connection, once the server has let go of those of earlier tests."""
        deadline = time.monotonic() + 10
        while True:
            connection = self.server.connect()
            try:
                connection.hello()
                return connection
            except mrd.ServerError as error:
                connection.close()
                if error.status != Status.SERVER_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def test_oversized_frame_in_a_pipeline(self) -> None:
        limit = self.MAX_FRAME_MIB << 20
        oversized = struct.pack("<BI", Opcode.SUBMIT, limit + 1) + bytes(limit + 1)
        with self.assertRaises(mrd.PipelineBroken) as caught:
            self.connection.pipeline([mrd.list_frame(), oversized, mrd.list_frame()])
        self.assertEqual([reply.status for reply in caught.exception.replies],
                         [Status.OK, Status.FRAME_TOO_LARGE])

    def test_queue_full(self) -> None:
        slow = SubmitRequest("words", "sum", [Document("slow", b"alpha beta " * 40_000)],
                             chunk_bytes=100)
        first, second = self.connection.pipeline([mrd.submit_frame(slow)] * 2)
        self.assertEqual((first.status, second.status), (Status.OK, Status.QUEUE_FULL))
        self.assertTrue(second.error_message())
        self.connection.cancel(mrd.decode_job_id(first.body))

    def test_expired_results(self) -> None:
        # With no room for results, the newest finished job is still kept, until the next one
        # finishes: then it expires.
        job_id = self.connection.submit("words", "sum", [Document("a", "x")])
        self.connection.wait_for_result(job_id)
        self.connection.wait_for_result(
            self.connection.submit("words", "sum", [Document("b", "y")]))
        with self.assertRaises(mrd.ServerError) as caught:
            self.connection.wait_for_result(job_id)
        self.assertEqual(caught.exception.status, Status.JOB_EXPIRED)
        self.assertTrue(caught.exception.job_failed)
        with self.assertRaises(mrd.ServerError) as caught:
            self.connection.status(job_id)
        self.assertEqual(caught.exception.status, Status.JOB_EXPIRED)
        with self.assertRaises(mrd.ServerError) as caught:
            self.connection.status(job_id, details=True)
        self.assertEqual(caught.exception.status, Status.JOB_EXPIRED)
        self.assertNotIn(job_id, [job.id for job in self.connection.list()])

    def test_server_busy(self) -> None:
        with self.connect_when_not_busy() as second:
            with self.server.connect() as third:
                with self.assertRaises(mrd.ServerError) as caught:
                    third.hello()
                self.assertEqual(caught.exception.status, Status.SERVER_BUSY)

    def test_submit_size_limit(self) -> None:
        limit = self.MAX_FRAME_MIB << 20
        at_limit = self.connection.request(struct.pack("<BI", Opcode.SUBMIT, limit) + bytes(limit))
        self.assertEqual(at_limit.status, Status.BAD_REQUEST)  # decoded, and found wrong
        with self.connect_when_not_busy() as other:
            over = other.request(struct.pack("<BI", Opcode.SUBMIT, limit + 1) + bytes(limit + 1))
            self.assertEqual(over.status, Status.FRAME_TOO_LARGE)


class TestAuthentication(ServerTestCase):
    """Protocol version 2's tokens, against a server started with --auth-file."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = shared_auth_server()

    def test_hello_says_auth_is_required(self) -> None:
        hello = self.connection.hello()
        self.assertEqual((hello.version, hello.flags, hello.auth_required),
                         (4, mrd.HELLO_AUTH_REQUIRED, True))
        three = self.connection.hello(3)  # versions 3 and 2 get the same layout
        self.assertEqual((three.version, three.flags), (3, mrd.HELLO_AUTH_REQUIRED))
        older = self.connection.hello(2)
        self.assertEqual((older.version, older.flags, older.auth_required),
                         (2, mrd.HELLO_AUTH_REQUIRED, True))
        old = self.connection.hello(1)  # version 1's layout: no flags to tell
        self.assertEqual((old.version, old.flags), (1, 0))

    def test_a_version_2_client_still_works(self) -> None:
        # What a version 2 client sends: HELLO 2, AUTH, and LIST with an empty body.
        self.assertTrue(self.connection.hello(2).auth_required)
        self.assertEqual(self.connection.auth(USER_TOKEN).tenant, "alice")
        job_id = self.connection.submit("words", "sum", [Document("v2", "version two")])
        self.connection.wait_for_result(job_id)
        self.assertIn(JobEntry(job_id, JobState.DONE), self.connection.list(with_tenants=False))

    def test_good_tokens_name_their_tenant_and_role(self) -> None:
        self.assertEqual(self.connection.auth(USER_TOKEN), AuthReply("alice", Role.USER))
        self.assertIsInstance(self.connection.list(), list)
        job_id = self.connection.submit("words", "sum", [Document("a", "to be or not to be")])
        self.assertEqual(self.connection.wait_for_result(job_id).entries[:2],
                         [(b"be", 2), (b"to", 2)])
        with self.server.connect() as admin:
            self.assertEqual(admin.auth(ADMIN_TOKEN), AuthReply("ops.team-1", Role.ADMIN))
            self.assertGreaterEqual(admin.stats().connections_open, 2)

    def test_wrong_token(self) -> None:
        error = self.assert_refused(Status.AUTH_FAILED, self.connection.auth, "not-a-token")
        self.assertIn("not valid", error.message)
        # The connection stays usable, and still unauthenticated, until a good AUTH.
        self.assert_refused(Status.NOT_AUTHENTICATED, self.connection.list)
        self.assertEqual(self.connection.auth(USER_TOKEN).tenant, "alice")
        self.assertIsInstance(self.connection.list(), list)

    def test_the_third_failed_auth_closes_the_connection(self) -> None:
        for attempt in range(3):
            error = self.assert_refused(Status.AUTH_FAILED, self.connection.auth, f"bad{attempt}")
        self.assertTrue(error.message.endswith("closing the connection"), error.message)
        with self.assertRaises(mrd.ConnectionLost):
            self.connection.list()

    def test_requests_before_auth(self) -> None:
        for call, args in ((self.connection.list, ()), (self.connection.stats, ()),
                           (self.connection.status, (1,)), (self.connection.fetch, (1,)),
                           (self.connection.cancel, (1,))):
            with self.subTest(request=call.__name__):
                self.assert_refused(Status.NOT_AUTHENTICATED, call, *args)
        self.assertTrue(self.connection.hello().auth_required)  # HELLO is always answered
        self.connection.auth(USER_TOKEN)
        self.assertIsInstance(self.connection.list(), list)

    def test_submit_before_auth_is_refused_from_its_header_and_closes(self) -> None:
        with self.server.raw_socket() as sock:
            # A header announcing a body that never comes: the server does not wait for it.
            sock.sendall(struct.pack("<BI", Opcode.SUBMIT, 100))
            stream = read_until_closed(sock)
        frames, rest = mrd.split_frames(stream)
        self.assertEqual((len(frames), rest), (1, b""), "NOT_AUTHENTICATED, then close")
        self.assertEqual(frames[0][0], Status.NOT_AUTHENTICATED)
        self.assertTrue(mrd.decode_error(frames[0][1]))

    def test_details_before_auth_and_with_a_users_token(self) -> None:
        self.assert_refused(Status.NOT_AUTHENTICATED, self.connection.status, 1, details=True)
        self.assert_refused(Status.NOT_AUTHENTICATED, self.connection.stats, details=True)
        self.connection.auth(USER_TOKEN)
        self.assert_refused(Status.FORBIDDEN, self.connection.stats, details=True)
        job_id = self.connection.submit("words", "sum", [Document("d", "details")])
        self.connection.wait_for_result(job_id)
        self.assertEqual(self.connection.status(job_id, details=True).tenant, "alice")
        self.connection.auth(ADMIN_TOKEN)
        stats = self.connection.stats(details=True)
        self.assertLessEqual(stats.workers_busy, stats.workers)
        self.assertGreaterEqual(stats.job_us.count, 1)

    def test_a_version_3_client_still_works(self) -> None:
        # What a version 3 client sends: HELLO 3, and STATUS and STATS without options.
        self.assertEqual(self.connection.hello(3).version, 3)
        self.connection.auth(ADMIN_TOKEN)
        job_id = self.connection.submit("words", "sum", [Document("v3", "version three")])
        self.connection.wait_for_result(job_id)
        self.assertEqual(self.connection.status(job_id).state, JobState.DONE)
        self.assertIsInstance(self.connection.stats(), ServerStats)
        self.assertIn(job_id, [job.id for job in self.connection.list()])

    def test_stats_needs_an_admin_token(self) -> None:
        self.connection.auth(USER_TOKEN)
        self.assert_refused(Status.FORBIDDEN, self.connection.stats)
        self.assertIsInstance(self.connection.list(), list)  # FORBIDDEN keeps the connection

    def test_a_later_auth_changes_the_identity_a_failed_one_does_not(self) -> None:
        self.connection.auth(ADMIN_TOKEN)
        self.assert_refused(Status.AUTH_FAILED, self.connection.auth, "wrong")
        self.assertGreaterEqual(self.connection.stats().connections_open, 1)  # still admin
        self.connection.auth(USER_TOKEN)
        self.assert_refused(Status.FORBIDDEN, self.connection.stats)

    def test_hello_auth_and_a_request_pipelined(self) -> None:
        replies = self.connection.pipeline(
            [mrd.hello_frame(), mrd.auth_frame(USER_TOKEN), mrd.list_frame()])
        self.assertEqual([reply.status for reply in replies], [Status.OK] * 3)
        self.assertTrue(mrd.decode_hello_reply(replies[0].body).auth_required)
        self.assertEqual(mrd.decode_auth_reply(replies[1].body).role, Role.USER)


class TestTenants(ServerTestCase):
    """Protocol version 3's tenants: a job belongs to the tenant whose token submitted it."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = shared_auth_server()

    def connect_as(self, token: str) -> mrd.Connection:
        connection = self.server.connect()
        self.addCleanup(connection.close)
        connection.auth(token)
        return connection

    def finished_job(self, connection: mrd.Connection, text: str) -> int:
        job_id = connection.submit("words", "sum", [Document("t", text)])
        connection.wait_for_result(job_id)
        return job_id

    def test_a_user_lists_its_own_jobs_an_admin_every_job(self) -> None:
        alice, bob = self.connect_as(USER_TOKEN), self.connect_as(OTHER_USER_TOKEN)
        admin = self.connect_as(ADMIN_TOKEN)
        alices, bobs = self.finished_job(alice, "alice's job"), self.finished_job(bob, "bob's job")
        for connection, tenant, own, other in ((alice, "alice", alices, bobs),
                                               (bob, "bob", bobs, alices)):
            with self.subTest(tenant=tenant):
                jobs = connection.list()
                self.assertIn(JobEntry(own, JobState.DONE, tenant), jobs)
                self.assertNotIn(other, [job.id for job in jobs])
                self.assertEqual({job.tenant for job in jobs}, {tenant})
                # Version 1's LIST sees the same jobs, without their tenants.
                plain = connection.list(with_tenants=False)
                self.assertEqual([job.id for job in plain], [job.id for job in jobs])
        everything = admin.list()
        self.assertIn(JobEntry(alices, JobState.DONE, "alice"), everything)
        self.assertIn(JobEntry(bobs, JobState.DONE, "bob"), everything)
        ids = [job.id for job in everything]
        self.assertEqual(ids, sorted(ids))

    def test_another_tenants_job_looks_expired_and_is_left_alone(self) -> None:
        alice, bob = self.connect_as(USER_TOKEN), self.connect_as(OTHER_USER_TOKEN)
        job_id = alice.submit("words", "sum", [Document("a", "to be or not to be")])
        result = alice.wait_for_result(job_id)
        expired = mrd.encode_frame(Status.JOB_EXPIRED, mrd.encode_error(
            f"job {job_id} expired: its result was evicted (or it is not yours)"))
        for frame in (mrd.fetch_frame(job_id), mrd.status_frame(job_id),
                      mrd.cancel_frame(job_id)):
            with self.subTest(opcode=Opcode(frame[0]).name):
                reply = bob.request(frame)
                self.assertEqual(mrd.encode_frame(reply.status, reply.body), expired)
        # Had bob's CANCEL counted, alice's result would now be released (JOB_CANCELLED).
        self.assertEqual(alice.fetch(job_id).result, result)
        self.assertEqual(alice.status(job_id).state, JobState.DONE)

    def test_details_name_the_tenant_and_hide_other_tenants_jobs(self) -> None:
        alice, bob = self.connect_as(USER_TOKEN), self.connect_as(OTHER_USER_TOKEN)
        admin = self.connect_as(ADMIN_TOKEN)
        documents = [Document("a", "alice's details")]
        before = time.time()
        job_id = alice.submit("words", "sum", documents)
        alice.wait_for_result(job_id)
        after = time.time()
        mine = alice.status(job_id, details=True)
        self.assertEqual((mine.tenant, mine.mapper, mine.reducer, mine.input_bytes),
                         ("alice", "words", "sum", submit_body_length("words", "sum", documents)))
        self.assert_job_times(mine, before, after)
        self.assertEqual(admin.status(job_id, details=True), mine)  # an admin sees every job
        # To bob, alice's job is one that is no longer remembered: the same bytes.
        expired = mrd.encode_frame(Status.JOB_EXPIRED, mrd.encode_error(
            f"job {job_id} expired: its result was evicted (or it is not yours)"))
        reply = bob.request(mrd.status_frame(job_id, mrd.STATUS_WITH_DETAILS))
        self.assertEqual(mrd.encode_frame(reply.status, reply.body), expired)
        bobs = self.finished_job(bob, "bob's details")
        self.assertEqual(bob.status(bobs, details=True).tenant, "bob")
        self.assertEqual(admin.status(bobs, details=True).tenant, "bob")

    def test_another_tenant_cannot_cancel_an_unfinished_job(self) -> None:
        alice, bob = self.connect_as(USER_TOKEN), self.connect_as(OTHER_USER_TOKEN)
        job_id = alice.submit(*HANGING_JOB)  # unfinished until alice cancels it
        self.addCleanup(alice.cancel, job_id)
        self.assert_refused(Status.JOB_EXPIRED, bob.cancel, job_id)
        self.assertIn(alice.status(job_id).state, (JobState.QUEUED, JobState.MAPPING))
        self.assertTrue(alice.fetch(job_id).pending)
        alice.cancel(job_id)
        self.assertEqual(alice.fetch(job_id).status, Status.JOB_CANCELLED)

    def test_idempotency_keys_are_per_tenant(self) -> None:
        alice, bob = self.connect_as(USER_TOKEN), self.connect_as(OTHER_USER_TOKEN)
        key = "py-tenants-" + os.urandom(8).hex()
        documents = [Document("k", "one key, two tenants")]
        alices = alice.submit("words", "sum", documents, idempotency_key=key)
        bobs = bob.submit("words", "sum", documents, idempotency_key=key)
        self.assertNotEqual(alices, bobs, "the same key from two tenants makes two jobs")
        self.assertEqual(alice.submit("words", "sum", documents, idempotency_key=key), alices)
        self.assertEqual(bob.submit("words", "sum", documents, idempotency_key=key), bobs)
        tenants = {job.id: job.tenant for job in self.connect_as(ADMIN_TOKEN).list()}
        self.assertEqual((tenants[alices], tenants[bobs]), ("alice", "bob"))


class TestStatsDetails(unittest.TestCase):
    """STATS with details (version 4) on a server of its own, started with --enable-test-jobs:
    every job on it is this class's, and each test waits for its jobs, so counts are exact."""

    @classmethod
    def setUpClass(cls) -> None:
        if not MRD_BINARY:
            raise unittest.SkipTest("MRD_BINARY is not set")
        cls.server = ServerProcess(MRD_BINARY, "--enable-test-jobs")
        with cls.server.connect() as connection:
            cls.fresh = connection.stats(details=True)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def setUp(self) -> None:
        self.connection = self.server.connect()
        self.addCleanup(self.connection.close)

    def settled_stats(self) -> DetailedStats:
        """STATS with details once no job is unfinished and no worker busy (a worker may be
        released a moment after its job's result is in)."""
        deadline = time.monotonic() + 10
        while True:
            stats = self.connection.stats(details=True)
            if stats.jobs_unfinished == 0 and stats.workers_busy == 0:
                return stats
            if time.monotonic() > deadline:
                self.fail(f"the server did not settle: {stats}")
            time.sleep(0.01)

    def assert_consistent(self, stats: DetailedStats) -> None:
        """What holds in any reply: the histograms count exactly what the counters count."""
        self.assertLessEqual(stats.workers_busy, stats.workers)
        self.assertEqual(stats.task_us.count, stats.tasks_done, "task_us counts those tasks")
        # Finished jobs, done or failed (cancelled ones are not counted); no job here is
        # cancelled after it finished.
        self.assertEqual(stats.job_us.count, stats.jobs_done + stats.jobs_failed)

    def test_a_fresh_server_has_counted_nothing(self) -> None:
        fresh = self.fresh
        self.assertEqual((fresh.tasks_done, fresh.workers_busy, fresh.jobs_submitted), (0, 0, 0))
        for histogram in (fresh.task_us, fresh.job_us):
            self.assertEqual(histogram.sum_us, 0)
            self.assertEqual({count for _, count in histogram.buckets}, {0})
            self.assertIs(histogram.buckets[-1][0], math.inf)
        self.assert_consistent(fresh)

    def timed_job(self, mapper: str, reducer: str, job_input, **options):
        """Run a job to its end; ``(its id, its Progress, its JobDetails, the seconds from
        before SUBMIT to after the test saw it finished)``."""
        started = time.monotonic()
        job_id = self.connection.submit(mapper, reducer, job_input, **options)
        while not self.connection.status(job_id).state.finished:
            time.sleep(0.005)
        seconds = time.monotonic() - started
        details = self.connection.status(job_id, details=True)
        return job_id, details.progress, details, seconds

    def test_finished_jobs_are_counted(self) -> None:
        sleep_ms = 120
        before = self.settled_stats()
        jobs = [self.timed_job("test-slow", "sum", [Document(str(sleep_ms), "a slow job")]),
                self.timed_job("words", "sum", sample_documents(), chunk_bytes=64, partitions=3),
                self.timed_job("numbers", "stats", Numbers([1.0, float("nan")]))]
        after = self.settled_stats()
        self.assertEqual([details.progress.state for _, _, details, _ in jobs],
                         [JobState.DONE, JobState.DONE, JobState.FAILED])
        self.assert_consistent(after)
        self.assertEqual((after.jobs_done - before.jobs_done,
                          after.jobs_failed - before.jobs_failed), (2, 1))
        self.assertEqual(after.job_us.count - before.job_us.count, 3)
        # Tasks whose output was taken in: every map task a job's progress counts as done, and
        # at most one reduce task per reduce partition done. (The document does not say that
        # each partition is a task of its own: today's server reduces the partitions of a job
        # with one map task without reduce tasks.)
        map_tasks = sum(progress.map_done for _, progress, _, _ in jobs)
        tasks = [progress.map_done + progress.reduce_done for _, progress, _, _ in jobs]
        self.assertGreaterEqual(map_tasks, 1 + 2)  # the slow job's, and several for the words
        self.assertGreaterEqual(after.tasks_done - before.tasks_done, map_tasks)
        self.assertLessEqual(after.tasks_done - before.tasks_done, sum(tasks))
        # The slow job's map task, and the job, took at least sleep_ms: at least one of each
        # is in a bucket above every bound under sleep_ms.
        sleep_us = sleep_ms * 1000
        self.assertLess(cumulative_count_below(after.task_us, sleep_us), after.task_us.count)
        self.assertLess(cumulative_count_below(after.job_us, sleep_us), after.job_us.count)
        task_sum = after.task_us.sum_us - before.task_us.sum_us
        job_sum = after.job_us.sum_us - before.job_us.sum_us
        self.assertGreaterEqual(task_sum, sleep_us - 1)  # (1: the server's rounding)
        self.assertGreaterEqual(job_sum, sleep_us - 1)
        # Nothing took longer than the test watched it: a job at most its window, a task at
        # most its job's (each rounded to whole microseconds on the server: one more each).
        windows = [math.ceil(seconds * 1e6) + 1 for _, _, _, seconds in jobs]
        self.assertLessEqual(job_sum, sum(windows))
        self.assertLessEqual(task_sum, sum(n * window for n, window in zip(tasks, windows)))
        # job_us measures what STATUS's times say, from accepted to done or failed: the same,
        # but for the whole milliseconds of those times (under 1 ms each end), and a little
        # time between the server's two readings of its clocks.
        from_details = sum(details.finished_ms - details.submitted_ms for _, _, details, _ in jobs)
        self.assertLessEqual(abs(job_sum - 1000 * from_details), 5000 * len(jobs),
                             (job_sum, from_details))

    def test_busy_workers_and_cancelled_jobs(self) -> None:
        before = self.settled_stats()
        job_id = self.connection.submit(*HANGING_JOB)
        self.addCleanup(self.connection.cancel, job_id)
        deadline = time.monotonic() + 30
        while not self.connection.status(job_id, details=True).started_ms:
            self.assertLess(time.monotonic(), deadline, "the hanging job did not start")
            time.sleep(0.005)
        running = self.connection.stats(details=True)
        self.assertGreaterEqual(running.workers_busy, 1, "its task holds a worker")
        self.assertLessEqual(running.workers_busy, running.workers)
        self.assertEqual(running.jobs_unfinished, 1)
        self.assertEqual(running.tasks_done, before.tasks_done)  # it never outputs anything
        self.connection.cancel(job_id)
        after = self.settled_stats()  # its worker is killed and replaced: busy goes back to 0
        self.assert_consistent(after)
        self.assertEqual(after.jobs_cancelled, before.jobs_cancelled + 1)
        self.assertEqual((after.job_us.count, after.job_us.sum_us),
                         (before.job_us.count, before.job_us.sum_us), "cancelled: not counted")
        self.assertEqual((after.tasks_done, after.task_us.count, after.task_us.sum_us),
                         (before.tasks_done, before.task_us.count, before.task_us.sum_us))

    def test_counters_agree_with_stats_without_details(self) -> None:
        self.settled_stats()
        plain, detailed = self.connection.pipeline([mrd.stats_frame(),
                                                    mrd.stats_frame(mrd.STATS_WITH_DETAILS)])
        plain = mrd.decode_server_stats(plain.body)
        counters = mrd.decode_detailed_stats(detailed.body).counters()
        self.assertGreaterEqual(counters.requests_total, plain.requests_total)
        for name in ("jobs_submitted", "jobs_done", "jobs_failed", "jobs_cancelled",
                     "jobs_unfinished", "workers", "connections_total"):
            self.assertEqual(getattr(counters, name), getattr(plain, name), name)


class TestRestoredJobs(unittest.TestCase):
    """What version 4 says of jobs a server restores at start-up from --data-dir: their times
    before the restart are 0, later ones count from then on, and job_us does not count them."""

    SLOW_MS = 400

    @classmethod
    def setUpClass(cls) -> None:
        if not MRD_BINARY:
            raise unittest.SkipTest("MRD_BINARY is not set")
        cls.data = tempfile.TemporaryDirectory(prefix="mrd-data-pytest-")
        # --drain-seconds 0: SIGTERM stops at once, abandoning the unfinished job to the data
        # directory, from which the next server restores it and runs it again.
        options = ("--enable-test-jobs", "--data-dir", cls.data.name, "--drain-seconds", "0")
        first = ServerProcess(MRD_BINARY, *options)
        try:
            with first.connect() as connection:
                cls.done_job = ("words", "sum", [Document("a", "to be or not to be")])
                cls.done_id = connection.submit(*cls.done_job)
                connection.wait_for_result(cls.done_id)
                cls.failed_id = connection.submit("test-crash", "sum", [Document("c", "x")])
                while not connection.status(cls.failed_id).state.finished:
                    time.sleep(0.005)
                cls.failure = connection.fetch(cls.failed_id).message
                cls.slow_job = ("test-slow", "sum", [Document(str(cls.SLOW_MS), "slow")])
                cls.slow_id = connection.submit(*cls.slow_job)
                while not connection.status(cls.slow_id, details=True).started_ms:
                    time.sleep(0.005)
        finally:
            first.stop()
        cls.restarted_at = time.time()
        cls.server = ServerProcess(MRD_BINARY, *options)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        cls.data.cleanup()

    def setUp(self) -> None:
        self.connection = self.server.connect()
        self.addCleanup(self.connection.close)

    def test_an_unfinished_job_runs_again_with_its_times_from_the_restart(self) -> None:
        restored = self.connection.status(self.slow_id, details=True)
        self.assertEqual(restored.submitted_ms, 0, "accepted before the restart")
        self.assertEqual((restored.mapper, restored.reducer, restored.tenant, restored.input_bytes),
                         ("test-slow", "sum", "", submit_body_length(*self.slow_job)))
        self.connection.wait_for_result(self.slow_id)
        finished_at = time.time()
        done = self.connection.status(self.slow_id, details=True)
        self.assertEqual(done.submitted_ms, 0)
        low = math.floor(self.restarted_at * 1000) - CLOCK_SLACK_MS
        high = math.ceil(finished_at * 1000) + CLOCK_SLACK_MS
        self.assertTrue(low <= done.started_ms <= done.finished_ms <= high,
                        (low, done.started_ms, done.finished_ms, high))
        self.assertGreaterEqual(done.finished_ms - done.started_ms, self.SLOW_MS - CLOCK_SLACK_MS)
        # Finished here with a result, yet not in job_us: it was restored at start-up.
        stats = self.connection.stats(details=True)
        self.assertEqual((stats.jobs_done, stats.job_us.count, stats.job_us.sum_us), (1, 0, 0))
        self.assertEqual(stats.task_us.count, stats.tasks_done)

    def test_a_finished_job_keeps_its_result_not_what_it_was(self) -> None:
        # The document: a job that had finished before the restart says 0 for its times and
        # nothing of what it was (empty mapper and reducer, input_bytes 0); its tenant stays.
        done = self.connection.status(self.done_id, details=True)
        self.assertEqual((done.submitted_ms, done.started_ms, done.finished_ms), (0, 0, 0))
        self.assertEqual((done.progress.state, done.tenant, done.failure),
                         (JobState.DONE, "", ""))
        self.assertEqual((done.mapper, done.reducer, done.input_bytes), ("", "", 0))
        self.assertEqual(self.connection.fetch(self.done_id).status, Status.OK)

    def test_a_failed_job_keeps_its_failure(self) -> None:
        failed = self.connection.status(self.failed_id, details=True)
        self.assertEqual(failed.progress.state, JobState.FAILED)
        self.assertEqual(failed.failure, self.failure)
        self.assertEqual(self.connection.fetch(self.failed_id).message, self.failure)


# --------------------------------------------------------------------------------------------
# 4. The command line
# --------------------------------------------------------------------------------------------


def run_program(command: List[str], server: str, cwd: Path,
                token: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run a client against ``server``; ``token`` goes in MRD_TOKEN (else none is set)."""
    environment = dict(os.environ, MRD_SERVER=server)
    environment.pop("MRD_TOKEN", None)
    if token is not None:
        environment["MRD_TOKEN"] = token
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, timeout=60)


class TestCommandLine(ServerTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.directory = tempfile.TemporaryDirectory(prefix="mrctl-pytest-")
        cls.files = Path(cls.directory.name)
        for number, text in enumerate(SAMPLE_TEXTS):
            (cls.files / f"doc{number}.txt").write_bytes(text)
        (cls.files / "many.txt").write_bytes(
            b" ".join(f"w{n % 97} x{n % 13}".encode() for n in range(5000)))
        (cls.files / "a.txt").write_text("# A, 2x3\n1 2 3\n4,5,6\n")
        (cls.files / "b.txt").write_text("1 0\n0 1\n2 2\n")
        (cls.files / "numbers.txt").write_text("1.5 2.5\n3\n")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.directory.cleanup()

    def python_mrctl(self, *arguments: str) -> subprocess.CompletedProcess:
        return run_program([sys.executable, str(MRCTL_PY), *arguments], self.server.address,
                           self.files)

    def cpp_mrctl(self, *arguments: str) -> subprocess.CompletedProcess:
        if not MRCTL_BINARY:
            self.skipTest("MRCTL_BINARY is not set")
        return run_program([MRCTL_BINARY, *arguments], self.server.address, self.files)

    def text_files(self) -> List[str]:
        return sorted(path.name for path in self.files.glob("*.txt"))

    def assert_same_output(self, *arguments: str) -> None:
        ours = self.python_mrctl("-q", *arguments)
        theirs = self.cpp_mrctl("-q", *arguments)
        self.assertEqual(ours.returncode, theirs.returncode, ours.stderr)
        self.assertEqual(ours.stdout.decode(errors="replace"),
                         theirs.stdout.decode(errors="replace"))

    def test_wordcount_matches_the_cpp_client(self) -> None:
        files = self.text_files()
        self.assert_same_output("wordcount", "--top", "5", *files)
        self.assert_same_output("wordcount", "--all", *files)
        self.assert_same_output("wordcount", "doc1.txt")
        self.assert_same_output("wordcount", "--json", "--top", "3", "doc1.txt", "many.txt")
        licenses = sorted(str(path) for path in Path("/usr/share/common-licenses").glob("*")
                          if path.is_file())
        if licenses:
            self.assert_same_output("wordcount", "--top", "5", *licenses)

    def test_other_commands_match_the_cpp_client(self) -> None:
        self.assert_same_output("bigrams", "--top", "7", "doc1.txt", "many.txt")
        self.assert_same_output("index", "doc0.txt", "doc1.txt", "doc4.txt")
        self.assert_same_output("stats", "numbers.txt")
        self.assert_same_output("stats", "--json", "numbers.txt")
        self.assert_same_output("matmul", "a.txt", "b.txt")

    def test_wordcount_output(self) -> None:
        finished = self.python_mrctl("-q", "wordcount", "--top", "2", "many.txt")
        self.assertEqual(finished.returncode, 0, finished.stderr)
        self.assertEqual(finished.stdout, b"385  x0\n385  x1\n")

    def test_progress_lines_on_a_pipe(self) -> None:
        # A job that cannot finish: `result --wait` shows its progress until it is cancelled.
        server = shared_test_jobs_server()
        environment = dict(os.environ, MRD_SERVER=server.address)
        environment.pop("MRD_TOKEN", None)
        with server.connect() as connection:
            job_id = connection.submit(*HANGING_JOB)
            waiting = subprocess.Popen(
                [sys.executable, str(MRCTL_PY), "result", "--wait", str(job_id)], cwd=self.files,
                env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            watchdog = threading.Timer(60, waiting.kill)  # then readline returns b""
            watchdog.start()
            try:
                first = waiting.stderr.readline().decode()
                connection.cancel(job_id)
                _, rest = waiting.communicate()
            finally:
                watchdog.cancel()
        lines = [first.rstrip("\n")] + rest.decode().splitlines()
        self.assertEqual(waiting.returncode, 1, lines)  # 1: the job was cancelled
        self.assertRegex(lines[-1], rf"^mrctl\.py: job {job_id}\b")
        self.assertGreaterEqual(len(lines), 2, "a progress line, then the error")
        for line in lines[:-1]:
            self.assertRegex(line, r"^in-progress - (queued|mapping \(0/1 done\))$")

    def test_matmul_random_verify_and_out(self) -> None:
        finished = self.python_mrctl("-q", "matmul", "--random", "6", "--seed", "3", "--verify")
        self.assertEqual(finished.returncode, 0, finished.stderr)
        self.assertIn(b"verified: max abs error", finished.stdout)
        finished = self.python_mrctl("-q", "matmul", "a.txt", "b.txt", "--out", "c.out")
        self.assertEqual(finished.returncode, 0, finished.stderr)
        self.assertEqual((self.files / "c.out").read_text(),
                         "7.000000000000000000e+00 8.000000000000000000e+00\n"
                         "1.600000000000000000e+01 1.700000000000000000e+01\n")

    def test_job_commands(self) -> None:
        submitted = self.python_mrctl("-q", "wordcount", "--no-wait", "doc1.txt")
        self.assertEqual(submitted.returncode, 0, submitted.stderr)
        job_id = submitted.stdout.decode().strip()
        waited = self.python_mrctl("-q", "result", "--wait", "--top", "1", job_id)
        self.assertEqual((waited.returncode, waited.stdout), (0, b"3  to\n"))
        status = self.python_mrctl("status", job_id)
        self.assertRegex(status.stdout.decode(),
                         rf"^job {job_id}: done, map \d+/\d+, reduce \d+/\d+\n$")
        listed = self.python_mrctl("list")
        self.assertRegex(listed.stdout.decode(), rf"^ *ID  STATE\n(.*\n)* *{job_id}  done\n")
        listed = self.python_mrctl("list", "--json")  # without tokens every tenant is empty
        self.assertIn(f'{{"id": {job_id}, "state": "done", "tenant": ""}}'.encode(),
                      listed.stdout)
        self.assertEqual(self.python_mrctl("cancel", job_id).returncode, 0)
        self.assertEqual(self.python_mrctl("result", job_id).returncode, 1)
        stats = self.python_mrctl("server-stats")
        self.assertEqual(len(stats.stdout.decode().splitlines()), 14)

    def test_status_details(self) -> None:
        submitted = self.python_mrctl("-q", "wordcount", "--no-wait", "doc1.txt")
        self.assertEqual(submitted.returncode, 0, submitted.stderr)
        job_id = submitted.stdout.decode().strip()
        self.assertEqual(self.python_mrctl("-q", "result", "--wait", job_id).returncode, 0)
        # mrctl.py sends the file as it is, under its name, with a 16-digit idempotency key.
        input_bytes = submit_body_length("words", "sum", [Document("doc1.txt", SAMPLE_TEXTS[1])],
                                         idempotency_key="0" * 16)
        finished = self.python_mrctl("status", "--details", job_id)
        self.assertEqual(finished.returncode, 0, finished.stderr)
        lines = finished.stdout.decode().splitlines()
        iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
        duration = r"\d+(\.\d{3})? m?s"
        self.assertEqual(len(lines), 8, lines)
        self.assertRegex(lines[0], rf"^job {job_id}: done, map \d+/\d+, reduce \d+/\d+$")
        self.assertEqual(lines[1:5], ["mapper     words", "reducer    sum", "tenant     -",
                                      f"input      {input_bytes} bytes"])
        self.assertRegex(lines[5], rf"^submitted  {iso}$")
        self.assertRegex(lines[6], rf"^started    {iso}  \(waited {duration}\)$")
        self.assertRegex(lines[7], rf"^finished   {iso}  \(ran {duration}, {duration} in all\)$")
        as_json = json.loads(self.python_mrctl("status", "--details", "--json", job_id).stdout)
        self.assertEqual({key: as_json[key] for key in ("id", "state", "mapper", "tenant",
                                                        "input_bytes", "failure")},
                         {"id": int(job_id), "state": "done", "mapper": "words", "tenant": "",
                          "input_bytes": input_bytes, "failure": ""})
        self.assertLessEqual(as_json["submitted_ms"], as_json["started_ms"])
        self.assertLessEqual(as_json["started_ms"], as_json["finished_ms"])
        # Without --details, the line of before.
        self.assertRegex(self.python_mrctl("status", job_id).stdout.decode(),
                         rf"^job {job_id}: done, map \d+/\d+, reduce \d+/\d+\n$")
        self.assertEqual(self.python_mrctl("status", "--details", "4000000000").returncode, 5)

    def test_server_stats_details(self) -> None:
        plain = self.python_mrctl("server-stats").stdout.decode().splitlines()
        finished = self.python_mrctl("server-stats", "--details")
        self.assertEqual(finished.returncode, 0, finished.stderr)
        lines = finished.stdout.decode().splitlines()
        names = [line.split()[0] for line in lines[:16]]
        self.assertEqual(names, [line.split()[0] for line in plain] + ["workers_busy",
                                                                       "tasks_done"])
        sections = "\n".join(lines[16:]).split("\n\n")
        self.assertEqual(lines[16], "")
        self.assertEqual(len(sections), 2, sections)
        for section, noun in zip(sections, ("task", "job")):
            rows = section.strip("\n").splitlines()
            duration = r"\d+(\.\d+)? (us|ms|s)"
            self.assertRegex(rows[0], rf"^{noun}_us: \d+ {noun}s?, {duration} in all"
                                      rf"(, mean {duration})?$")
            self.assertRegex(rows[1], r"^ +at most +count +cumulative$")
            self.assertRegex(rows[-1], r"^ +\+Inf +\d+ +\d+$")
            for row in rows[2:-1]:
                self.assertRegex(row, rf"^ +{duration} +\d+ +\d+$")
        as_json = json.loads(self.python_mrctl("server-stats", "--details", "--json").stdout)
        self.assertLessEqual(as_json["workers_busy"], as_json["workers"])
        for name in ("task_us", "job_us"):
            buckets = as_json[name]["buckets"]
            self.assertIsNone(buckets[-1]["le_us"])  # +Inf
            counts = [bucket["count"] for bucket in buckets]
            self.assertEqual(counts, sorted(counts))
            self.assertIsInstance(as_json[name]["sum_us"], int)

    def test_exit_codes(self) -> None:
        self.assertEqual(self.python_mrctl("wordcount", "missing.txt").returncode, 7)
        self.assertEqual(self.python_mrctl("status", "4000000000").returncode, 5)
        self.assertEqual(self.python_mrctl("frobnicate").returncode, 2)
        self.assertEqual(self.python_mrctl("matmul", "a.txt", "a.txt").returncode, 7)
        unreachable = run_program(
            [sys.executable, str(MRCTL_PY), "--server", "127.0.0.1:1", "list"],
            self.server.address, self.files)
        self.assertEqual(unreachable.returncode, 3)

    def test_a_list_of_servers(self) -> None:
        dead = "127.0.0.1:%d" % refused_address()[1]
        live = self.server.address
        finished = self.python_mrctl("-q", "--server", f"{dead},{live}", "wordcount", "--top",
                                     "2", "many.txt")
        self.assertEqual((finished.returncode, finished.stdout), (0, b"385  x0\n385  x1\n"))
        self.assertEqual(finished.stderr.decode(), f"mrctl.py: cannot connect to {dead}: "
                                                   f"Connection refused; trying {live}\n")
        listed = run_program([sys.executable, str(MRCTL_PY), "list"], f"{dead},{live}",
                             self.files)  # MRD_SERVER takes the list too
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertRegex(listed.stdout.decode(), r"^ *ID  STATE\n")
        down = self.python_mrctl("--server", f"127.0.0.1:1,{dead}", "list")
        self.assertEqual(down.returncode, 3)
        self.assertEqual(down.stderr.decode().splitlines()[-3:], [
            "mrctl.py: list: gave up after trying each of the 2 servers 3 times:",
            "  127.0.0.1:1: cannot connect to 127.0.0.1:1: Connection refused",
            f"  {dead}: cannot connect to {dead}: Connection refused"])
        bad = self.python_mrctl("--server", f"{live},,{dead}", "list")
        self.assertEqual(bad.returncode, 2)
        self.assertIn(b"item 2 is empty", bad.stderr)

    def test_a_lost_submit_goes_to_the_next_node_and_runs_once(self) -> None:
        before = self.connection.stats().jobs_submitted
        node = ForwardingNode(self.server.port, lose_submit_reply=True)
        finished = self.python_mrctl("-q", "--server", f"{node.address_text},{self.server.address}",
                                     "wordcount", "--top", "2", "many.txt")
        self.assertEqual((finished.returncode, finished.stdout), (0, b"385  x0\n385  x1\n"))
        self.assertRegex(finished.stderr.decode(),
                         rf"^mrctl\.py: the server closed the connection .*; trying "
                         rf"{re.escape(self.server.address)}\n$")
        self.assertEqual(node.requests, [Opcode.HELLO, Opcode.SUBMIT])
        self.assertEqual(self.connection.stats().jobs_submitted, before + 1)



class TestCommandLineOutput(unittest.TestCase):
    """What mrctl.py prints for version 4's details, from the document's example values."""

    def test_status_details(self) -> None:
        self.assertEqual(mrctl.details_lines(EXAMPLE_DETAILS), [
            "job 7: done, map 4/4, reduce 2/2",
            "mapper     words",
            "reducer    sum",
            "tenant     alice",
            "input      66 bytes",
            "submitted  2025-12-01T08:00:00.000Z",
            "started    2025-12-01T08:00:00.012Z  (waited 12 ms)",
            "finished   2025-12-01T08:00:00.250Z  (ran 238 ms, 250 ms in all)"])
        self.assertEqual(json.loads(mrctl.details_json(EXAMPLE_DETAILS)), {
            "id": 7, "state": "done", "map_done": 4, "map_total": 4, "reduce_done": 2,
            "reduce_total": 2, "mapper": "words", "reducer": "sum", "tenant": "alice",
            "input_bytes": 66, "submitted_ms": EXAMPLE_ACCEPTED_MS,
            "started_ms": EXAMPLE_ACCEPTED_MS + 12, "finished_ms": EXAMPLE_ACCEPTED_MS + 250,
            "failure": ""})

    def test_status_details_of_unfinished_and_failed_jobs(self) -> None:
        queued = dataclasses.replace(EXAMPLE_DETAILS, progress=Progress(8, JobState.QUEUED,
                                                                        0, 0, 0, 0),
                                     tenant="", input_bytes=3 << 20, started_ms=0, finished_ms=0)
        self.assertEqual(mrctl.details_lines(queued)[3:], [
            "tenant     -", "input      3.0 MiB (3145728 bytes)",
            "submitted  2025-12-01T08:00:00.000Z", "started    - (not yet)",
            "finished   - (not yet)"])
        failed = dataclasses.replace(
            EXAMPLE_DETAILS, progress=Progress(9, JobState.FAILED, 0, 1, 0, 1),
            finished_ms=EXAMPLE_ACCEPTED_MS + 3_723_456, failure="map task 1 of 1 crashed")
        self.assertEqual(mrctl.details_lines(failed)[-2:], [
            "finished   2025-12-01T09:02:03.456Z  (ran 1 h 2 min 3.444 s, 1 h 2 min 3.456 s "
            "in all)", "failure    map task 1 of 1 crashed"])
        # A job failed before it started (or restored after a restart): no times to subtract.
        unstarted = dataclasses.replace(failed, started_ms=0)
        self.assertEqual(mrctl.details_lines(unstarted)[6:8], [
            "started    -", "finished   2025-12-01T09:02:03.456Z  (1 h 2 min 3.456 s in all)"])

    def test_server_stats_details(self) -> None:
        lines = mrctl.server_stats_lines(EXAMPLE_DETAILED_STATS, as_json=False)
        self.assertEqual(lines[:14], mrctl.server_stats_lines(EXAMPLE_DETAILED_STATS.counters(),
                                                              as_json=False))
        self.assertEqual(lines[14:], [
            "workers_busy           1",
            "tasks_done             3",
            "",
            "task_us: 3 tasks, 46 us in all, mean 15.3 us",
            "  at most  count  cumulative",
            "    10 us      2           2",
            "     +Inf      1           3",
            "",
            "job_us: 1 job, 60 us in all, mean 60 us",
            "  at most  count  cumulative",
            "    10 us      0           0",
            "     +Inf      1           1"])
        as_json = json.loads(mrctl.server_stats_lines(EXAMPLE_DETAILED_STATS, as_json=True)[0])
        self.assertEqual(as_json["task_us"], {"buckets": [{"le_us": 10, "count": 2},
                                                          {"le_us": None, "count": 3}],
                                              "sum_us": 46})
        self.assertEqual((as_json["workers_busy"], as_json["tasks_done"], len(as_json)),
                         (1, 3, 18))

    def test_histogram_of_todays_bounds(self) -> None:
        # The 17 bounds the document says today's server sends: 100 us to 60 s, and +Inf.
        bounds = [100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000,
                  500_000, 1_000_000, 2_500_000, 10_000_000, 60_000_000, math.inf]
        counts = [0, 4, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8]
        lines = mrctl.histogram_lines("job_us", "job", Histogram(list(zip(bounds, counts)),
                                                                 602_504))
        self.assertEqual(lines[0], "job_us: 8 jobs, 602.504 ms in all, mean 75.313 ms")
        self.assertEqual([line.split()[:2] for line in lines[2:]], [
            ["100", "us"], ["250", "us"], ["500", "us"], ["1", "ms"], ["2.5", "ms"], ["5", "ms"],
            ["10", "ms"], ["25", "ms"], ["50", "ms"], ["100", "ms"], ["250", "ms"], ["500", "ms"],
            ["1", "s"], ["2.5", "s"], ["10", "s"], ["60", "s"], ["+Inf", "0"]])
        self.assertEqual(lines[3].split(), ["250", "us", "4", "4"])  # per bucket, cumulative
        self.assertEqual(lines[4].split(), ["500", "us", "1", "5"])
        self.assertEqual(len({len(line) for line in lines[1:]}), 1, "aligned columns")
        self.assertEqual([mrctl.format_micros(us) for us in (0, 15.333, 999.96, 300_533, 1e10)],
                         ["0 us", "15.3 us", "1 ms", "300.533 ms", "10000 s"])

    def test_every_error_status_has_a_description(self) -> None:
        self.assertEqual(set(mrctl.STATUS_DESCRIPTIONS), set(Status) - {Status.OK, Status.PENDING})
        self.assertEqual([(status.value, status.name) for status in Status][-4:], [
            (18, "AUTH_FAILED"), (19, "NOT_AUTHENTICATED"), (20, "FORBIDDEN"), (21, "UNAVAILABLE")])

    def test_the_flags_parse(self) -> None:
        parser = mrctl.build_parser()
        self.assertTrue(parser.parse_args(["status", "--details", "7"]).details)
        self.assertFalse(parser.parse_args(["status", "7"]).details)
        self.assertTrue(parser.parse_args(["server-stats", "--details", "--json"]).details)


class TestCommandLineWithTokens(ServerTestCase):
    """mrctl.py against the --auth-file server: --token-file, MRD_TOKEN, and their errors."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = shared_auth_server()
        cls.directory = tempfile.TemporaryDirectory(prefix="mrctl-auth-pytest-")
        cls.files = Path(cls.directory.name)
        (cls.files / "user.token").write_text(USER_TOKEN + "\n")
        (cls.files / "admin.token").write_text(ADMIN_TOKEN + "  \r\nsecond line ignored\n")
        (cls.files / "empty.token").write_text("\nnot the first line\n")
        (cls.files / "hamlet.txt").write_text("to be or not to be\n")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.directory.cleanup()

    def python_mrctl(self, *arguments: str, token: Optional[str] = None):
        return run_program([sys.executable, str(MRCTL_PY), *arguments], self.server.address,
                           self.files, token)

    def cpp_mrctl(self, *arguments: str, token: Optional[str] = None):
        if not MRCTL_BINARY:
            self.skipTest("MRCTL_BINARY is not set")
        return run_program([MRCTL_BINARY, *arguments], self.server.address, self.files, token)

    def test_token_file(self) -> None:
        for arguments in (("--token-file", "user.token", "-q", "wordcount", "hamlet.txt"),
                          ("-q", "wordcount", "hamlet.txt", "--token-file", "user.token")):
            with self.subTest(arguments=arguments):
                finished = self.python_mrctl(*arguments)
                self.assertEqual(finished.returncode, 0, finished.stderr)
                self.assertEqual(finished.stdout, b"2  be\n2  to\n1  not\n1  or\n")

    def test_mrd_token_environment(self) -> None:
        finished = self.python_mrctl("list", token=USER_TOKEN)
        self.assertEqual(finished.returncode, 0, finished.stderr)
        self.assertRegex(finished.stdout.decode(), r"^ *ID  STATE")
        # --token-file comes first, as in the C++ mrctl.
        finished = self.python_mrctl("--token-file", "user.token", "list", token="wrong")
        self.assertEqual(finished.returncode, 0, finished.stderr)

    def test_no_token(self) -> None:
        finished = self.python_mrctl("list")
        self.assertEqual(finished.returncode, 5)
        self.assertEqual(finished.stderr.decode(),
                         f"mrctl.py: the server at {self.server.address} needs a token: give it "
                         f"with --token-file FILE or MRD_TOKEN\n")
        theirs = self.cpp_mrctl("list")
        self.assertEqual(theirs.returncode, finished.returncode)
        self.assertEqual(theirs.stderr.decode().replace("mrctl:", "mrctl.py:", 1),
                         finished.stderr.decode())

    def test_wrong_token(self) -> None:
        finished = self.python_mrctl("list", token="not-a-token")
        self.assertEqual(finished.returncode, 5)
        self.assertIn(b"does not accept this token", finished.stderr)

    def test_server_stats_needs_an_admin_token(self) -> None:
        refused = self.python_mrctl("server-stats", token=USER_TOKEN)
        self.assertEqual(refused.returncode, 5)
        self.assertIn(b"role may not do that", refused.stderr)
        stats = self.python_mrctl("server-stats", "--token-file", "admin.token")
        self.assertEqual(stats.returncode, 0, stats.stderr)
        self.assertEqual(len(stats.stdout.decode().splitlines()), 14)
        refused = self.python_mrctl("server-stats", "--details", token=USER_TOKEN)
        self.assertEqual(refused.returncode, 5)
        details = self.python_mrctl("server-stats", "--details", token=ADMIN_TOKEN)
        self.assertEqual(details.returncode, 0, details.stderr)
        self.assertIn(b"\njob_us: ", details.stdout)

    def test_bad_token_files_are_usage_errors(self) -> None:
        for token_file in ("empty.token", "missing.token"):
            with self.subTest(token_file=token_file):
                finished = self.python_mrctl("--token-file", token_file, "list")
                self.assertEqual(finished.returncode, 2, finished.stderr)
                self.assertIn(token_file.encode(), finished.stderr)
                self.assertEqual(self.cpp_mrctl("--token-file", token_file, "list").returncode, 2)

    def test_list_shows_each_jobs_tenant(self) -> None:
        for token in (USER_TOKEN, OTHER_USER_TOKEN):
            submitted = self.python_mrctl("-q", "wordcount", "hamlet.txt", token=token)
            self.assertEqual(submitted.returncode, 0, submitted.stderr)
        mine = self.python_mrctl("list", token=USER_TOKEN).stdout.decode().splitlines()
        self.assertRegex(mine[0], r"^ *ID  STATE      TENANT$")
        self.assertGreater(len(mine), 1, "alice's job just submitted is listed")
        for line in mine[1:]:
            self.assertRegex(line, r"^ *\d+  (queued|mapping|reducing|done|failed|cancelled) *"
                                   r"  alice$")
        everything = self.python_mrctl("list", token=ADMIN_TOKEN).stdout.decode()
        self.assertRegex(everything, r"\n *\d+  done       alice\n")
        self.assertRegex(everything, r"\n *\d+  done       bob\n")
        # The same table, and the same JSON, as the C++ mrctl's (every job here is finished).
        for arguments in (("list",), ("list", "--json")):
            with self.subTest(arguments=arguments):
                ours = self.python_mrctl(*arguments, token=ADMIN_TOKEN)
                theirs = self.cpp_mrctl(*arguments, token=ADMIN_TOKEN)
                self.assertEqual((ours.returncode, ours.stdout), (theirs.returncode, theirs.stdout))
        listed = self.python_mrctl("list", "--json", token=OTHER_USER_TOKEN)
        self.assertIn(b'"state": "done", "tenant": "bob"}', listed.stdout)
        self.assertNotIn(b'"tenant": "alice"', listed.stdout)

    def test_same_output_as_the_cpp_client(self) -> None:
        for arguments in (("wordcount", "--top", "2", "hamlet.txt"), ("index", "hamlet.txt")):
            with self.subTest(arguments=arguments):
                ours = self.python_mrctl("-q", *arguments, token=USER_TOKEN)
                theirs = self.cpp_mrctl("-q", *arguments, token=USER_TOKEN)
                self.assertEqual((ours.returncode, ours.stdout), (theirs.returncode, theirs.stdout))


if __name__ == "__main__":
    unittest.main()
