#!/usr/bin/env python3
"""mrctl.py: submit MapReduce jobs to an mrd server and ask it about them.

A second client, in Python with the standard library only, built on mrd_client.py. Its
commands, output and exit codes follow the C++ ``mrctl``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import secrets
import sys
from typing import Callable, List, Optional, Sequence, TextIO

import mrd_client as mrd

PROGRAM = "mrctl.py"

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_PROTOCOL = 4
EXIT_REJECTED = 5
EXIT_NOT_FINISHED = 6
EXIT_LOCAL_INPUT = 7

DEFAULT_TOP = 10
SUBMIT_ATTEMPTS = 3  # a lost connection during SUBMIT is retried with the same key

# Statuses that mean "this client (or its protocol version) is wrong", not "the server said no".
PROTOCOL_STATUSES = {mrd.Status.BAD_REQUEST, mrd.Status.UNKNOWN_OPCODE,
                     mrd.Status.VERSION_MISMATCH}
# Statuses that mean "this node cannot serve you now; try again, or another node" (exit 3, as a
# lost connection, like the C++ mrctl).
CONNECTION_STATUSES = {mrd.Status.UNAVAILABLE}


class LocalInputError(Exception):
    """A file that cannot be read or parsed, or output that cannot be written (exit 7)."""


class JobNotFinished(Exception):
    """``result`` without --wait found the job still running (exit 6)."""


# --------------------------------------------------------------------------------------------
# Reading input files
# --------------------------------------------------------------------------------------------


def read_file_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as error:
        raise LocalInputError(f"{path}: {error.strerror}") from error


def parse_number(token: str, path: str, line_number: int) -> float:
    """A decimal number; refuses words and numbers too large for an f64."""
    try:
        value = float(token)
    except ValueError:
        raise LocalInputError(f"{path}: line {line_number}: '{token}' is not a number") from None
    if math.isinf(value) and "inf" not in token.lower():
        raise LocalInputError(f"{path}: line {line_number}: '{token}' is not a number")
    return value


def read_numbers(path: str) -> List[float]:
    """Numbers separated by any whitespace."""
    text = read_file_bytes(path).decode("utf-8", errors="replace")
    return [parse_number(token, path, number)
            for number, line in enumerate(text.splitlines(), start=1)
            for token in line.split()]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def read_text_matrix(path: str) -> mrd.Matrix:
    """A matrix in numpy.savetxt's layout: one row per line, '#' comments, spaces or commas."""
    text = read_file_bytes(path).decode("utf-8", errors="replace")
    rows: List[List[float]] = []
    first_row_line = 0
    for line_number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].replace(",", " ").split()
        if not tokens:
            continue
        row = [parse_number(token, path, line_number) for token in tokens]
        if rows and len(row) != len(rows[0]):
            raise LocalInputError(
                f"{path}: line {line_number}: this row has {plural(len(row), 'value')}, "
                f"the first (line {first_row_line}) has {len(rows[0])}")
        if not rows:
            first_row_line = line_number
        rows.append(row)
    if not rows:
        raise LocalInputError(f"{path}: no numbers in this matrix file")
    if len(rows) > mrd.MAX_MATRIX_DIMENSION or len(rows[0]) > mrd.MAX_MATRIX_DIMENSION:
        raise LocalInputError(f"{path}: a matrix side is over {mrd.MAX_MATRIX_DIMENSION}")
    return mrd.Matrix.from_rows(rows)


def random_matrix(size: int, rng: random.Random) -> mrd.Matrix:
    """A size x size matrix, uniform in [-1, 1)."""
    return mrd.Matrix(size, size, [rng.random() * 2.0 - 1.0 for _ in range(size * size)])


# --------------------------------------------------------------------------------------------
# Writing output
# --------------------------------------------------------------------------------------------


def format_float(value: float) -> str:
    """Shortest text that reads back as the same f64; whole numbers without '.0'."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def json_float(value: float) -> str:
    """A JSON number, or null for NaN and infinities (JSON has no such numbers)."""
    return format_float(value) if math.isfinite(value) else "null"


def json_text(raw: bytes) -> str:
    """A protocol string (any bytes) as a JSON string; invalid UTF-8 becomes U+FFFD."""
    return json.dumps(raw.decode("utf-8", errors="replace"), ensure_ascii=False)


def write_bytes_line(out, *parts: bytes) -> None:
    out.write(b"".join(parts) + b"\n")


def print_counts(result: mrd.CountsResult, top: Optional[int], as_json: bool, out) -> None:
    """Aligned ``count  key`` lines, most frequent first (or a JSON list)."""
    entries = result.entries if top is None else result.entries[:top]
    if as_json:
        if not entries:
            out.write(b"[]\n")
            return
        lines = [f'  {{"key": {json_text(key)}, "count": {count}}}' for key, count in entries]
        out.write(("[\n" + ",\n".join(lines) + "\n]\n").encode("utf-8"))
        return
    width = len(str(entries[0][1])) if entries else 0
    for key, count in entries:
        write_bytes_line(out, str(count).rjust(width).encode(), b"  ", key)


def print_postings(result: mrd.PostingsResult, as_json: bool, out) -> None:
    """``word: doc doc`` lines (or a JSON object)."""
    if as_json:
        if not result.entries:
            out.write(b"{}\n")
            return
        lines = [f"  {json_text(word)}: [{', '.join(json_text(d) for d in documents)}]"
                 for word, documents in result.entries]
        out.write(("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8"))
        return
    for word, documents in result.entries:
        write_bytes_line(out, word, b":", b"".join(b" " + name for name in documents))


STATISTICS_FIELDS = ("count", "mean", "median", "mode", "min", "max")


def print_statistics(result: mrd.StatisticsResult, as_json: bool, out) -> None:
    values = [getattr(result, name) for name in STATISTICS_FIELDS]
    if as_json:
        pairs = [f'"count": {result.count}'] + [
            f'"{name}": {json_float(value)}'
            for name, value in zip(STATISTICS_FIELDS[1:], values[1:])]
        out.write(("{" + ", ".join(pairs) + "}\n").encode())
        return
    out.write(f"{'count':<8}{result.count}\n".encode())
    for name, value in zip(STATISTICS_FIELDS[1:], values[1:]):
        out.write(f"{name:<8}{format_float(value)}\n".encode())


def matrix_text(matrix: mrd.Matrix) -> str:
    """The matrix as numpy.savetxt writes it by default ('%.18e', spaces)."""
    lines = []
    for row in range(matrix.rows):
        start = row * matrix.cols
        lines.append(" ".join("%.18e" % v for v in matrix.values[start:start + matrix.cols]))
    return "".join(line + "\n" for line in lines)


def write_matrix_file(matrix: mrd.Matrix, path: str) -> None:
    try:
        with open(path, "w", encoding="ascii") as stream:
            stream.write(matrix_text(matrix))
    except OSError as error:
        raise LocalInputError(f"{path}: {error.strerror}") from error


def print_result(result: mrd.Result, args, out) -> None:
    """Any of the four result kinds, as the command's options ask."""
    as_json = getattr(args, "json", False)
    if isinstance(result, mrd.CountsResult):
        print_counts(result, None if args.all else args.top, as_json, out)
    elif isinstance(result, mrd.PostingsResult):
        print_postings(result, as_json, out)
    elif isinstance(result, mrd.StatisticsResult):
        print_statistics(result, as_json, out)
    else:
        out.write(matrix_text(result).encode())


def progress_line(progress: mrd.Progress) -> str:
    """``job 3: mapping, map 1/4, reduce 0/2``."""
    return (f"job {progress.id}: {progress.state.label}, "
            f"map {progress.map_done}/{progress.map_total}, "
            f"reduce {progress.reduce_done}/{progress.reduce_total}")


def progress_json(progress: mrd.Progress) -> str:
    return (f'{{"id": {progress.id}, "state": "{progress.state.label}", '
            f'"map_done": {progress.map_done}, "map_total": {progress.map_total}, '
            f'"reduce_done": {progress.reduce_done}, "reduce_total": {progress.reduce_total}}}')


def iso_utc(unix_ms: int) -> str:
    """``2025-12-01T08:00:00.012Z`` for Unix milliseconds."""
    seconds, millis = divmod(unix_ms, 1000)
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):  # past year 9999: say it as it came
        return f"{unix_ms} ms after 1970-01-01T00:00:00Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def format_duration(ms: int) -> str:
    """``250 ms``, ``12.500 s``, ``3 min 5.000 s``, ``2 h 0 min 1.000 s``."""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.3f} s"
    minutes, millis = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    text = f"{minutes} min {millis / 1000:.3f} s"
    return f"{hours} h {text}" if hours else text


def format_size(size: int) -> str:
    """``66 bytes``, or ``1.5 MiB (1572864 bytes)``."""
    if size < 1024:
        return plural(size, "byte")
    value, unit = float(size), "bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit} ({size} bytes)"


def details_lines(details: mrd.JobDetails) -> List[str]:
    """STATUS with details, readably: the progress line, then one ``name  value`` line each,
    times in UTC with the durations between them."""
    finished = details.progress.state.finished

    def moment(ms: int, note: str = "") -> str:
        if not ms:
            return "-" if finished else "- (not yet)"
        return iso_utc(ms) + (f"  ({note})" if note else "")

    submitted, started, done = details.submitted_ms, details.started_ms, details.finished_ms
    waited = f"waited {format_duration(started - submitted)}" if submitted and started else ""
    ran = []
    if started and done:
        ran.append(f"ran {format_duration(done - started)}")
    if submitted and done:
        ran.append(f"{format_duration(done - submitted)} in all")
    rows = [("mapper", details.mapper), ("reducer", details.reducer),
            ("tenant", details.tenant or "-"), ("input", format_size(details.input_bytes)),
            ("submitted", moment(submitted)), ("started", moment(started, waited)),
            ("finished", moment(done, ", ".join(ran)))]
    if details.failure:
        rows.append(("failure", details.failure))
    return [progress_line(details.progress)] + [f"{name:<11}{value}" for name, value in rows]


def details_json(details: mrd.JobDetails) -> str:
    """One JSON object: the progress's fields, then the details' (times in Unix ms, 0: none)."""
    progress = json.loads(progress_json(details.progress))
    fields = {"mapper": details.mapper, "reducer": details.reducer, "tenant": details.tenant,
              "input_bytes": details.input_bytes, "submitted_ms": details.submitted_ms,
              "started_ms": details.started_ms, "finished_ms": details.finished_ms,
              "failure": details.failure}
    return json.dumps({**progress, **fields}, ensure_ascii=False)


class ProgressReporter:
    """Shows a waiting job's progress on stderr.

    Not a terminal (a log, a pipe): one ``in-progress - ...`` line each time it changes.
    A terminal: one bar, redrawn in place and erased at the end.
    """

    BAR_WIDTH = 30

    def __init__(self, stream: TextIO, quiet: bool):
        self._stream = stream
        self._quiet = quiet
        self._is_tty = stream.isatty()
        self._last: Optional[str] = None

    def __call__(self, progress: mrd.Progress) -> None:
        if self._quiet:
            return
        text = progress.describe()
        if text == self._last:
            return
        self._last = text
        if self._is_tty:
            self._stream.write(f"\r\x1b[K[{self._bar(progress)}] {text}")
        else:
            self._stream.write(f"in-progress - {text}\n")
        self._stream.flush()

    def _bar(self, progress: mrd.Progress) -> str:
        done, total = progress.map_done, progress.map_total
        if progress.state == mrd.JobState.REDUCING:
            done, total = progress.reduce_done, progress.reduce_total
        filled = self.BAR_WIDTH * done // total if total else 0
        return "#" * filled + "." * (self.BAR_WIDTH - filled)

    def finish(self) -> None:
        if self._is_tty and self._last is not None:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def interrupt(self) -> None:
        """Erase the bar so a note can be written; the next progress draws it again."""
        self.finish()
        if self._is_tty:
            self._last = None


# --------------------------------------------------------------------------------------------
# Talking to the server
# --------------------------------------------------------------------------------------------


def format_address(host: str, port: int) -> str:
    """``HOST:PORT``, with an IPv6 address in brackets."""
    return mrd.format_server_address(host, port)


def read_token(args, host: str, port: int) -> bytes:
    """The token for a server that asks for one: the first line of --token-file (without its
    trailing whitespace), or MRD_TOKEN. Read only when the server asks, as the C++ mrctl does.
    """
    if args.token_file:
        try:
            with open(args.token_file, "rb") as stream:
                token = stream.readline().rstrip()
        except OSError as error:
            raise UsageError(f"--token-file {args.token_file}: {error.strerror}") from error
        if not token:
            raise UsageError(f"--token-file {args.token_file}: no token on its first line")
        return token
    token = os.environ.get("MRD_TOKEN", "")
    if token:
        return os.fsencode(token)  # the environment's bytes, as they are
    raise MissingToken(f"the server at {format_address(host, port)} needs a token: give it "
                       f"with --token-file FILE or MRD_TOKEN")


def connect_to(args, host: str, port: int) -> mrd.Connection:
    """Connect and say HELLO, so a server of another version fails clearly (exit 4); then AUTH
    if the server requires it (protocol version 2)."""
    timeout = args.timeout if args.timeout > 0 else None
    connection = mrd.Connection.connect(host, port, timeout)
    try:
        if connection.hello().auth_required:
            connection.auth(read_token(args, host, port))
    except BaseException:
        connection.close()
        raise
    return connection


def say_failover(error: mrd.MrdError, address, pause: float) -> None:
    """On stderr: a request goes to the next node of the --server list, and why."""
    line = f"{PROGRAM}: {error}; trying {format_address(*address)}"
    if pause > 0:
        line += f" in {round(pause * 1000)} ms"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def open_servers(args) -> mrd.FailoverConnection:
    """The server of --server, or the nodes of a cluster it lists (``a:1936,b:1936``), connected
    on the first request (connect_to). With a list, a request that a node cannot answer goes to
    the next, saying so on stderr; with one server, every error is raised as it is."""
    try:
        servers = mrd.parse_server_list(args.server)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return mrd.FailoverConnection(servers, lambda host, port: connect_to(args, host, port),
                                  on_failover=say_failover)


def new_idempotency_key() -> str:
    """16 random hex digits: makes resending a SUBMIT after a lost connection safe."""
    return mrd.new_idempotency_key()


def submit_job(args, servers: mrd.FailoverConnection, mapper: str, reducer: str,
               job_input: mrd.JobInput) -> int:
    """SUBMIT with a fresh idempotency key. A list of servers sends it again to the next node
    when one fails (FailoverConnection); a single server is connected to first, then on a lost
    connection connected to again and sent the job again, with the same key."""
    key = new_idempotency_key()
    if len(servers.servers) > 1:
        return servers.submit(mapper, reducer, job_input, args.chunk_bytes, args.partitions,
                              idempotency_key=key)
    servers.connection()
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            return servers.submit(mapper, reducer, job_input, args.chunk_bytes, args.partitions,
                                  idempotency_key=key)
        except mrd.ConnectionLost:
            if attempt == SUBMIT_ATTEMPTS:
                raise
            servers.connection()
    raise AssertionError("unreachable")


def run_job(args, mapper: str, reducer: str, job_input: mrd.JobInput) -> Optional[mrd.Result]:
    """Submit, then wait for the result with progress on stderr (None with --no-wait)."""
    with open_servers(args) as servers:
        job_id = submit_job(args, servers, mapper, reducer, job_input)
        if args.no_wait:
            print(job_id)
            return None
        return wait_for(servers, job_id, args)


def wait_for(servers: mrd.FailoverConnection, job_id: int, args) -> mrd.Result:
    reporter = ProgressReporter(sys.stderr, args.quiet)
    say = servers.on_failover

    def moving(error: mrd.MrdError, address, pause: float) -> None:
        reporter.interrupt()  # the note goes on a line of its own, not over the bar
        if say is not None:
            say(error, address, pause)

    servers.on_failover = moving
    try:
        return servers.wait_for_result(job_id, on_progress=reporter)
    except mrd.ServerError as error:
        raise JobError(f"job {job_id}", error) from None
    finally:
        servers.on_failover = say
        reporter.finish()


STATUS_DESCRIPTIONS = {
    mrd.Status.UNKNOWN_JOB: "no such job on this server",
    mrd.Status.JOB_FAILED: "the job failed",
    mrd.Status.JOB_CANCELLED: "the job was cancelled",
    mrd.Status.JOB_EXPIRED: "the job's result expired (evicted by the server's retention cap)",
    mrd.Status.QUEUE_FULL: "the server's queue is full; retry later",
    mrd.Status.BAD_REQUEST: "the server could not decode the request",
    mrd.Status.UNKNOWN_OPCODE: "the server does not know this request",
    mrd.Status.FRAME_TOO_LARGE: "the request is too large for the server",
    mrd.Status.VERSION_MISMATCH: "the server speaks another protocol version",
    mrd.Status.BAD_JOB: "the server refused the job",
    mrd.Status.SERVER_BUSY: "the server is busy (connections or memory); retry later",
    mrd.Status.SHUTTING_DOWN: "the server is shutting down",
    mrd.Status.JOB_CRASHED: "the job failed: a worker crashed",
    mrd.Status.JOB_TIMED_OUT: "the job failed: a task timed out",
    mrd.Status.JOB_OUT_OF_MEMORY: "the job failed: a task ran out of memory",
    mrd.Status.SERVER_ERROR: "the server could not do it (nothing changed)",
    mrd.Status.AUTH_FAILED: "the server does not accept this token",
    mrd.Status.NOT_AUTHENTICATED: "the server needs a token first",
    mrd.Status.FORBIDDEN: "this token's role may not do that",
    mrd.Status.UNAVAILABLE: "this node cannot reach the cluster's shared store (Redis), so "
                            "nothing was done; try again, or another node",
}


class JobError(Exception):
    """The server refused a request about a job, or the job ended without a result."""

    def __init__(self, context: str, error: mrd.ServerError):
        description = STATUS_DESCRIPTIONS.get(error.status, error.status.name)
        super().__init__(f"{context}: {description} (server says: {error.message})")
        self.server_error = error


class UsageError(Exception):
    """A bad command line that argparse could not see (exit 2)."""


class MissingToken(Exception):
    """The server requires AUTH and no token was given (exit 5, as NOT_AUTHENTICATED would)."""


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def read_documents(paths: Sequence[str]) -> List[mrd.Document]:
    """Each file is one document, named by its path as given."""
    return [mrd.Document(path, read_file_bytes(path)) for path in paths]


def documents_command(mapper: str, reducer: str) -> Callable:
    def command(args) -> int:
        result = run_job(args, mapper, reducer, read_documents(args.files))
        if result is not None:
            print_result(result, args, sys.stdout.buffer)
        return EXIT_OK
    return command


def command_stats(args) -> int:
    result = run_job(args, "numbers", "stats", mrd.Numbers(read_numbers(args.file)))
    if result is not None:
        print_result(result, args, sys.stdout.buffer)
    return EXIT_OK


def multiply_locally(a: mrd.Matrix, b: mrd.Matrix) -> mrd.Matrix:
    """The reference product, in plain Python (fine for small matrices)."""
    values = []
    for row in range(a.rows):
        a_row = a.values[row * a.cols:(row + 1) * a.cols]
        for col in range(b.cols):
            values.append(math.fsum(a_row[k] * b.values[k * b.cols + col] for k in range(a.cols)))
    return mrd.Matrix(a.rows, b.cols, values)


def verify_product(a: mrd.Matrix, b: mrd.Matrix, product: mrd.Matrix) -> float:
    """Max absolute error against a local product; raises JobCheckFailed past the tolerance.

    The tolerance is relative, 1e-9 times the inner dimension: summation order may differ.
    """
    reference = multiply_locally(a, b)
    if (product.rows, product.cols) != (reference.rows, reference.cols):
        raise JobCheckFailed(f"the product is {product.rows}x{product.cols}, "
                             f"expected {reference.rows}x{reference.cols}")
    tolerance = 1e-9 * max(1, a.cols)
    worst = 0.0
    for index, (got, want) in enumerate(zip(product.values, reference.values)):
        error = abs(got - want)
        worst = max(worst, error)
        if not error <= tolerance * max(1.0, abs(want)):
            row, col = divmod(index, product.cols)
            raise JobCheckFailed(f"product ({row}, {col}) is {got!r}, expected {want!r}")
    return worst


class JobCheckFailed(Exception):
    """--verify found a wrong product (exit 1)."""


def matmul_inputs(args):
    if args.random is not None:
        if args.files:
            raise UsageError("give either two matrix files or --random N, not both")
        rng = random.Random(args.seed)
        return random_matrix(args.random, rng), random_matrix(args.random, rng)
    if len(args.files) != 2:
        raise UsageError("matmul needs two matrix files A and B (or --random N)")
    for path in args.files:
        if path.endswith(".npy"):
            raise LocalInputError(f"{path}: .npy files are not supported by {PROGRAM}")
    return read_text_matrix(args.files[0]), read_text_matrix(args.files[1])


def command_matmul(args) -> int:
    a, b = matmul_inputs(args)
    if a.cols != b.rows:
        raise LocalInputError(f"cannot multiply a {a.rows}x{a.cols} matrix by a "
                              f"{b.rows}x{b.cols} one: A's columns must equal B's rows")
    product = run_job(args, "matmul", "rows", mrd.MatrixPair(a, b))
    if product is None:
        return EXIT_OK
    shape = f"{product.rows}x{product.cols} matrix"
    if args.out:
        write_matrix_file(product, args.out)
        print(f"{shape} written to {args.out}")
    elif args.random is not None:
        print(f"{shape} (give --out FILE to keep it)")
    else:
        sys.stdout.write(matrix_text(product))
    if args.verify:
        print(f"verified: max abs error {verify_product(a, b, product):.3g}")
    return EXIT_OK


def about_job(context: str, request: Callable, job_id: int):
    """``request(job_id)``, with the job named in the message of any error."""
    try:
        return request(job_id)
    except mrd.ServerError as error:
        raise JobError(context, error) from None


def command_status(args) -> int:
    with open_servers(args) as connection:
        if args.details:
            details = about_job(f"status of job {args.id}",
                                lambda job_id: connection.status(job_id, details=True), args.id)
            print(details_json(details) if args.json else "\n".join(details_lines(details)))
            return EXIT_OK
        progress = about_job(f"status of job {args.id}", connection.status, args.id)
    print(progress_json(progress) if args.json else progress_line(progress))
    return EXIT_OK


def command_result(args) -> int:
    with open_servers(args) as connection:
        if args.wait:
            result = wait_for(connection, args.id, args)
        else:
            outcome = connection.fetch(args.id)
            if outcome.pending:
                print(progress_json(outcome.progress) if args.json
                      else progress_line(outcome.progress))
                return EXIT_NOT_FINISHED
            if not outcome.done:
                error = mrd.ServerError(outcome.status, outcome.message or "")
                raise JobError(f"job {args.id}", error)
            result = outcome.result
    print_result(result, args, sys.stdout.buffer)
    return EXIT_OK


def command_cancel(args) -> int:
    with open_servers(args) as connection:
        about_job(f"cancel job {args.id}", connection.cancel, args.id)
    return EXIT_OK


def command_list(args) -> int:
    with open_servers(args) as connection:
        jobs = connection.list()
    if args.json:
        if not jobs:
            print("[]")
            return EXIT_OK
        lines = [f'  {{"id": {job.id}, "state": "{job.state.label}", '
                 f'"tenant": {json.dumps(job.tenant, ensure_ascii=False)}}}' for job in jobs]
        print("[\n" + ",\n".join(lines) + "\n]")
        return EXIT_OK
    width = max([len("ID")] + [len(str(job.id)) for job in jobs])
    # A server without tokens has no tenants: then there is no column for them.
    if not any(job.tenant for job in jobs):
        print(f"{'ID':>{width}}  STATE")
        for job in jobs:
            print(f"{job.id:>{width}}  {job.state.label}")
        return EXIT_OK
    print(f"{'ID':>{width}}  STATE      TENANT")
    for job in jobs:
        print(f"{job.id:>{width}}  {job.state.label:<9}  {job.tenant or '-'}")
    return EXIT_OK


HISTOGRAM_NOUNS = (("task_us", "task"), ("job_us", "job"))


def format_micros(micros: float) -> str:
    """A duration in microseconds, in the largest unit it reaches: ``46 us``, ``15.3 us``,
    ``2.5 ms``, ``300.533 ms``, ``60 s``."""
    for unit, size, decimals in (("s", 1e6, 3), ("ms", 1e3, 3), ("us", 1, 1)):
        if round(micros, 1) >= size or unit == "us":
            text = f"{micros / size:.{decimals}f}"
            return (text.rstrip("0").rstrip(".") if "." in text else text) + f" {unit}"
    raise AssertionError("unreachable")


def format_bound(bound: mrd.Bound) -> str:
    return "+Inf" if bound == math.inf else format_micros(bound)


def histogram_lines(name: str, noun: str, histogram: mrd.Histogram) -> List[str]:
    """A title with the count, sum and mean, then one row per bucket: its bound, the durations
    in it, and the cumulative count (durations at most that bound)."""
    title = f"{name}: {plural(histogram.count, noun)}, {format_micros(histogram.sum_us)} in all"
    if histogram.count:
        title += f", mean {format_micros(histogram.sum_us / histogram.count)}"
    rows = [(format_bound(bound), str(count), str(cumulative))
            for (bound, count), (_, cumulative) in zip(histogram.per_bucket(), histogram.buckets)]
    header = ("at most", "count", "cumulative")
    widths = [max(len(row[column]) for row in rows + [header]) for column in range(3)]
    return [title] + ["  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths))
                      for row in [header] + rows]


def histogram_json(histogram: mrd.Histogram) -> str:
    """``{"buckets": [{"le_us": 10, "count": 2}, ..., {"le_us": null, ...}], "sum_us": 46}``:
    microseconds and cumulative counts as on the wire; null is the +Inf bound (JSON has no
    infinity)."""
    buckets = [{"le_us": None if bound == math.inf else bound, "count": count}
               for bound, count in histogram.buckets]
    return json.dumps({"buckets": buckets, "sum_us": histogram.sum_us})


def server_stats_lines(stats: mrd.ServerStats, as_json: bool) -> List[str]:
    """The fourteen counters as ``name  value`` lines (or a JSON object); a DetailedStats adds
    busy workers, tasks done, and its two histograms."""
    names = mrd.ServerStats.field_names()
    detailed = isinstance(stats, mrd.DetailedStats)
    if detailed:
        names = names + ["workers_busy", "tasks_done"]
    if as_json:
        entries = [f'  "{name}": {getattr(stats, name)}' for name in names]
        if detailed:
            entries += [f'  "{name}": {histogram_json(getattr(stats, name))}'
                        for name, _ in HISTOGRAM_NOUNS]
        return ["{\n" + ",\n".join(entries) + "\n}"]
    width = max(len(name) for name in mrd.ServerStats.field_names()) + 2
    lines = [f"{name:<{width}}{getattr(stats, name)}" for name in names]
    if detailed:
        for name, noun in HISTOGRAM_NOUNS:
            lines += [""] + histogram_lines(name, noun, getattr(stats, name))
    return lines


def command_server_stats(args) -> int:
    with open_servers(args) as connection:
        stats = connection.stats(details=args.details)
    print("\n".join(server_stats_lines(stats, args.json)))
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_global_options(parser: argparse.ArgumentParser, suppress_defaults: bool) -> None:
    """--server, --timeout, --quiet, --token-file: accepted before and after the command name.

    After it, the defaults are suppressed so they do not overwrite what came before.
    """
    def default(value):
        return argparse.SUPPRESS if suppress_defaults else value

    parser.add_argument("--server", default=default(os.environ.get("MRD_SERVER", "127.0.0.1:1936")),
                        help="server as HOST:PORT, [IPV6]:PORT or HOST (default 127.0.0.1:1936, "
                             "env MRD_SERVER); or the nodes of a cluster (mrd --redis) as a "
                             "comma-separated list HOST:PORT,HOST:PORT,...: the first that "
                             "answers is used, and a request moves to the next (each node at "
                             "most 3 times) when one cannot be reached, drops the connection, "
                             "is busy or unavailable, or is shutting down for a new job; a job "
                             "sent again keeps its idempotency key, and waiting for a job goes "
                             "on on another node")
    parser.add_argument("--timeout", type=float, default=default(60.0),
                        help="seconds a connect, send or receive may take (0: forever)")
    parser.add_argument("-q", "--quiet", action="store_true", default=default(False),
                        help="show no progress while waiting for a job")
    parser.add_argument("--token-file", metavar="FILE", default=default(None),
                        help="file whose first line is the token for a server that asks for "
                             "one (mrd --auth-file); MRD_TOKEN=TOKEN in the environment does "
                             "the same")


def add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true",
                        help="print the job id and exit; fetch later with `result ID`")
    parser.add_argument("--chunk-bytes", type=non_negative_int, default=0,
                        help="input bytes per map task (0: the server chooses)")
    parser.add_argument("--partitions", type=non_negative_int, default=0,
                        help="reduce partitions (0: the server chooses)")


def add_top_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--top", type=non_negative_int, default=DEFAULT_TOP,
                       help=f"print the N most frequent entries (default {DEFAULT_TOP})")
    group.add_argument("--all", action="store_true", help="print every entry")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Submit MapReduce jobs to an mrd server, and ask it about them.",
        epilog="exit codes: 0 ok, 1 job failed/cancelled/expired, 2 usage, 3 connection, "
               "4 protocol, 5 rejected by the server, 6 result not ready, 7 local input/output")
    add_global_options(parser, suppress_defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_global_options(sub, suppress_defaults=True)
        sub.set_defaults(handler=handler)
        return sub

    for name, mapper, reducer, what in (
            ("wordcount", "words", "sum", "count the words in FILE..."),
            ("bigrams", "bigrams", "sum", "count adjacent word pairs in FILE..."),
            ("index", "index", "postings", "each word and the files it occurs in")):
        sub = command(name, documents_command(mapper, reducer), what)
        sub.add_argument("files", nargs="+", metavar="FILE")
        add_job_options(sub)
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        if name != "index":
            add_top_options(sub)
        else:
            sub.set_defaults(top=None, all=True)

    sub = command("stats", command_stats, "count, mean, median, mode, min, max of FILE's numbers")
    sub.add_argument("file", metavar="FILE")
    add_job_options(sub)
    sub.add_argument("--json", action="store_true", help="print the result as JSON")

    sub = command("matmul", command_matmul, "multiply matrix A by matrix B (text files)")
    sub.add_argument("files", nargs="*", metavar="FILE", help="matrix files A and B")
    sub.add_argument("--random", type=int, metavar="N", help="multiply two random NxN matrices")
    sub.add_argument("--seed", type=int, default=1, help="seed of the random matrices")
    sub.add_argument("--verify", action="store_true", help="also multiply locally and compare")
    sub.add_argument("--out", metavar="FILE", help="write the product to FILE instead")
    add_job_options(sub)

    sub = command("status", command_status, "print a job's state and progress")
    sub.add_argument("id", type=non_negative_int, metavar="ID")
    sub.add_argument("--details", action="store_true",
                     help="also its mapper, reducer, tenant, input size and times (protocol 4)")
    sub.add_argument("--json", action="store_true")

    sub = command("result", command_result, "print a job's result (exit 6 if not finished)")
    sub.add_argument("id", type=non_negative_int, metavar="ID")
    sub.add_argument("--wait", action="store_true", help="wait until the job has finished")
    sub.add_argument("--json", action="store_true")
    add_top_options(sub)

    sub = command("cancel", command_cancel, "cancel a job")
    sub.add_argument("id", type=non_negative_int, metavar="ID")

    sub = command("list", command_list, "list the jobs the server remembers")
    sub.add_argument("--json", action="store_true")

    sub = command("server-stats", command_server_stats, "print the server's counters")
    sub.add_argument("--details", action="store_true",
                     help="also busy workers, tasks done, and task and job latency histograms "
                          "(protocol 4)")
    sub.add_argument("--json", action="store_true")
    return parser


def exit_code_for_server_error(error: mrd.ServerError) -> int:
    if error.job_failed:
        return EXIT_JOB_FAILED
    if error.status in PROTOCOL_STATUSES:
        return EXIT_PROTOCOL
    if error.status in CONNECTION_STATUSES:
        return EXIT_CONNECTION
    return EXIT_REJECTED


def fail(message: str, code: int) -> int:
    sys.stderr.write(f"{PROGRAM}: {message}\n")
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on a usage error
    if getattr(args, "random", None) is not None and args.random < 1:
        return fail("--random N needs N >= 1", EXIT_USAGE)
    if args.token_file is not None and not os.path.isfile(args.token_file):
        return fail(f"--token-file {args.token_file}: no such file", EXIT_USAGE)
    try:
        return args.handler(args)
    except UsageError as error:
        return fail(str(error), EXIT_USAGE)
    except LocalInputError as error:
        return fail(str(error), EXIT_LOCAL_INPUT)
    except JobError as error:
        return fail(str(error), exit_code_for_server_error(error.server_error))
    except JobCheckFailed as error:
        return fail(str(error), EXIT_JOB_FAILED)
    except MissingToken as error:
        return fail(str(error), EXIT_REJECTED)
    except mrd.FailoverExhausted as error:  # names every server and why
        return fail(str(error), EXIT_CONNECTION)
    except mrd.ServerError as error:
        description = STATUS_DESCRIPTIONS.get(error.status, error.status.name)
        return fail(f"{description} (server says: {error.message})",
                    exit_code_for_server_error(error))
    except mrd.ConnectionLost as error:
        return fail(f"{error} (is mrd running at {args.server}?)", EXIT_CONNECTION)
    except mrd.ProtocolError as error:
        return fail(f"protocol error: {error}", EXIT_PROTOCOL)
    except BrokenPipeError:
        return EXIT_OK  # e.g. `| head`: the reader has all it wanted


if __name__ == "__main__":
    sys.exit(main())
