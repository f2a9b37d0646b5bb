"""A client for mrd, the MapReduce job server, written from docs/protocol.md alone.

Standard library only. The module has three layers, each usable on its own:

1. Codec: ``BodyWriter`` / ``BodyReader`` for the primitive types of the protocol (section 1),
   and ``encode_*`` / ``decode_*`` functions for every body the document defines.
2. Framing: ``encode_frame`` and ``read_frame`` (5-byte header, then the body).
3. ``Connection``: one TCP connection, with one method per opcode, pipelining, and
   ``wait_for_result`` which polls FETCH with an exponential back-off.
4. ``FailoverConnection``: the nodes of a cluster (``mrd --redis``), which share their jobs;
   a request goes to the next node when the one in use cannot answer (``should_fail_over``).

Protocol version 2 (section 11) added AUTH: a server started with ``--auth-file`` says so in
HELLO's reply (``HelloReply.auth_required``), and wants ``Connection.auth(token)`` before any
other request. ``Connection.hello(1)`` still speaks version 1 (its reply has no flags).
Version 3 added LIST's options byte: ``Connection.list()`` asks for each job's tenant (the
token that submitted it), ``Connection.list(with_tenants=False)`` sends version 1's empty LIST.
Version 4 added STATUS's and STATS's options bytes: ``Connection.status(job, details=True)``
returns a ``JobDetails`` (what the job is, whose, its size and its times) and
``Connection.stats(details=True)`` a ``DetailedStats`` (busy workers, tasks done and two latency
``Histogram``s); without ``details`` both send version 1's request and get version 1's reply.

Strings on the wire are "any bytes" (protocol section 1), so keys, words and document names
come back as ``bytes``. The encoders accept ``str`` too and send it as UTF-8. Human-readable
texts (error messages, the server's software name, and in ``JobDetails`` the built-in mapper's
and reducer's names, the tenant and the failure) come back as ``str``.
"""

from __future__ import annotations

import enum
import math
import secrets
import socket
import struct
import sys
import threading
import time
from array import array
from dataclasses import dataclass, fields
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

PROTOCOL_VERSION = 4
DEFAULT_PORT = 1936

HEADER = struct.Struct("<BI")  # u8 code, u32 body_length
HEADER_SIZE = HEADER.size

MAX_MATRIX_DIMENSION = 1_048_576
MAX_NAME_BYTES = 64  # mapper, reducer, idempotency key
MAX_AUTH_BODY = 1024  # an AUTH body over it: FRAME_TOO_LARGE, then close (section 2)
MAX_TOKEN_BYTES = MAX_AUTH_BODY - 8  # the token's string length takes a u64

HELLO_AUTH_REQUIRED = 0x01  # bit 0 of the flags of HELLO's reply (versions 2 to 4)
LIST_WITH_TENANTS = 0x01  # bit 0 of LIST's options (version 3): each job with its tenant
STATUS_WITH_DETAILS = 0x01  # bit 0 of STATUS's options (version 4): the job's Details
STATS_WITH_DETAILS = 0x01  # bit 0 of STATS's options (version 4): busy workers, histograms
MAX_TENANT_BYTES = 64

# A histogram bucket's upper bound on the wire that means "no bound" (+Inf); in a ``Histogram``
# it is ``math.inf``.
HISTOGRAM_NO_BOUND = 0xFFFF_FFFF_FFFF_FFFF


# --------------------------------------------------------------------------------------------
# Codes (protocol sections 4, 5, 6, 8)
# --------------------------------------------------------------------------------------------


class Opcode(enum.IntEnum):
    """The request codes of section 6."""

    SUBMIT = 0
    FETCH = 1
    STATUS = 2
    CANCEL = 3
    LIST = 4
    STATS = 5
    HELLO = 6
    AUTH = 7  # version 2


class Status(enum.IntEnum):
    """The reply codes of section 4."""

    OK = 0
    PENDING = 1
    UNKNOWN_JOB = 2
    JOB_FAILED = 3
    JOB_CANCELLED = 4
    JOB_EXPIRED = 5
    QUEUE_FULL = 6
    BAD_REQUEST = 7
    UNKNOWN_OPCODE = 8
    FRAME_TOO_LARGE = 9
    VERSION_MISMATCH = 10
    BAD_JOB = 11
    SERVER_BUSY = 12
    SHUTTING_DOWN = 13
    JOB_CRASHED = 14
    JOB_TIMED_OUT = 15
    JOB_OUT_OF_MEMORY = 16
    SERVER_ERROR = 17
    AUTH_FAILED = 18  # version 2 from here on
    NOT_AUTHENTICATED = 19
    FORBIDDEN = 20
    UNAVAILABLE = 21  # a cluster node (mrd --redis) that cannot reach Redis: nothing was done


# The four ways a job fails (section 4), and every status that says "this job has no result".
JOB_FAILURE_STATUSES = frozenset(
    {Status.JOB_FAILED, Status.JOB_CRASHED, Status.JOB_TIMED_OUT, Status.JOB_OUT_OF_MEMORY}
)
JOB_ENDED_WITHOUT_RESULT = JOB_FAILURE_STATUSES | {Status.JOB_CANCELLED, Status.JOB_EXPIRED}

# The replies FETCH may give besides a request-level error (section 6, FETCH).
FETCH_OUTCOME_STATUSES = (
    frozenset({Status.OK, Status.PENDING, Status.UNKNOWN_JOB}) | JOB_ENDED_WITHOUT_RESULT
)


class JobState(enum.IntEnum):
    """A job's state (section 5)."""

    QUEUED = 0
    MAPPING = 1
    REDUCING = 2
    DONE = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def label(self) -> str:
        """The lower-case name the document uses ("queued", "mapping", ...)."""
        return self.name.lower()

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class Role(enum.IntEnum):
    """The ``role`` byte of AUTH's reply: what the token may do (STATS needs ``ADMIN``)."""

    USER = 0
    ADMIN = 1

    @property
    def label(self) -> str:
        """The lower-case name the document and the auth file use ("user", "admin")."""
        return self.name.lower()


class InputKind(enum.IntEnum):
    """The ``input_kind`` byte of SUBMIT."""

    DOCUMENTS = 0
    NUMBERS = 1
    MATRIX_PAIR = 2


class ResultKind(enum.IntEnum):
    """The ``result_kind`` byte of a Result (section 8)."""

    COUNTS = 0
    POSTINGS = 1
    MATRIX = 2
    STATISTICS = 3


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class MrdError(Exception):
    """Base class of every error this module raises."""


class ProtocolError(MrdError):
    """The peer sent bytes that do not follow the protocol (a reply that does not decode)."""


class ConnectionLost(MrdError):
    """Could not connect, or the connection failed or timed out mid-exchange."""


class PipelineBroken(ConnectionLost):
    """The connection closed in the middle of a pipeline; ``replies`` are those that arrived."""

    def __init__(self, message: str, replies: List["Reply"]):
        super().__init__(f"{message} after {len(replies)} replies")
        self.replies = replies


class FailoverExhausted(ConnectionLost):
    """Every server of a ``FailoverConnection`` failed a request as many times as it may:
    ``failures`` holds each server's address and the last error it gave, in list order."""

    def __init__(self, what: str, failures: List[Tuple[Tuple[str, int], MrdError]],
                 attempts_per_server: int):
        times = "1 time" if attempts_per_server == 1 else f"{attempts_per_server} times"
        lines = [f"{what}: gave up after trying each of the {len(failures)} servers {times}:"]
        lines += [f"  {format_server_address(*server)}: {error}" for server, error in failures]
        super().__init__("\n".join(lines))
        self.failures = failures


class ServerError(MrdError):
    """The server answered with an error status; ``status`` says which, ``message`` why."""

    def __init__(self, status: Status, message: str):
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message

    @property
    def job_failed(self) -> bool:
        """True when the job itself failed, was cancelled or expired (not the request)."""
        return self.status in JOB_ENDED_WITHOUT_RESULT


# --------------------------------------------------------------------------------------------
# Primitive codec (section 1, "Body encoding")
# --------------------------------------------------------------------------------------------

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")

Text = Union[str, bytes]


def as_bytes(text: Text) -> bytes:
    """A protocol string from ``str`` (sent as UTF-8) or ``bytes`` (sent as is)."""
    return text.encode("utf-8") if isinstance(text, str) else bytes(text)


def _f64_array_bytes(values: Iterable[float]) -> bytes:
    """Many f64 at once, little-endian, without building a huge struct format."""
    packed = array("d", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


class BodyWriter:
    """Appends protocol values to a body; ``getvalue()`` returns the bytes."""

    def __init__(self) -> None:
        self._parts: List[bytes] = []

    def u8(self, value: int) -> "BodyWriter":
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> "BodyWriter":
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> "BodyWriter":
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> "BodyWriter":
        self._parts.append(_U64.pack(value))
        return self

    def f64(self, value: float) -> "BodyWriter":
        self._parts.append(_F64.pack(value))
        return self

    def string(self, text: Text) -> "BodyWriter":
        data = as_bytes(text)
        self.u64(len(data))
        self._parts.append(data)
        return self

    def f64list(self, values: Sequence[float]) -> "BodyWriter":
        self.u64(len(values))
        self._parts.append(_f64_array_bytes(values))
        return self

    def string_list(self, texts: Sequence[Text]) -> "BodyWriter":
        self.u64(len(texts))
        for text in texts:
            self.string(text)
        return self

    def raw(self, data: bytes) -> "BodyWriter":
        """Bytes already encoded (a nested body such as a ``Progress``), as they are."""
        self._parts.append(bytes(data))
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class BodyReader:
    """Reads protocol values from a body, refusing to read past its end.

    Every count is checked against the bytes left *before* anything is allocated for it, so
    a lying count costs a ``ProtocolError``, never memory. ``finish()`` rejects trailing bytes.
    """

    def __init__(self, data: bytes, what: str = "body"):
        self._data = memoryview(data)
        self._offset = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def _take(self, size: int) -> memoryview:
        if size > self.remaining:
            raise ProtocolError(
                f"{self._what}: needs {size} more bytes at offset {self._offset}, "
                f"only {self.remaining} left"
            )
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def _unpack(self, layout: struct.Struct):
        return layout.unpack(self._take(layout.size))[0]

    def u8(self) -> int:
        return self._unpack(_U8)

    def u16(self) -> int:
        return self._unpack(_U16)

    def u32(self) -> int:
        return self._unpack(_U32)

    def u64(self) -> int:
        return self._unpack(_U64)

    def f64(self) -> float:
        return self._unpack(_F64)

    def count(self, min_element_size: int, what: str = "elements") -> int:
        """A u64 count of elements at least ``min_element_size`` bytes each, checked to fit."""
        number = self.u64()
        if number * min_element_size > self.remaining:
            raise ProtocolError(
                f"{self._what}: a count of {number} {what} cannot fit in the "
                f"{self.remaining} bytes left"
            )
        return number

    def string(self) -> bytes:
        length = self.count(1, "string bytes")
        return bytes(self._take(length))

    def f64list(self) -> List[float]:
        number = self.count(8, "f64 values")
        values = array("d")
        values.frombytes(self._take(number * 8))
        if sys.byteorder == "big":
            values.byteswap()
        return values.tolist()

    def string_list(self) -> List[bytes]:
        return [self.string() for _ in range(self.count(8, "strings"))]

    def finish(self) -> None:
        """Insist that the body was consumed exactly (section 1)."""
        if self.remaining:
            raise ProtocolError(f"{self._what}: {self.remaining} trailing bytes")


def _enum_value(enum_type, value: int, what: str):
    """``enum_type(value)``, or a ProtocolError naming the unknown value."""
    try:
        return enum_type(value)
    except ValueError:
        raise ProtocolError(f"unknown {what} {value}") from None


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


@dataclass
class Document:
    """One named text of a documents input (kind 0)."""

    name: Text
    text: Text


@dataclass
class Numbers:
    """A numbers input (kind 1)."""

    values: Sequence[float]


@dataclass
class Matrix:
    """A row-major matrix: element (r, c) is ``values[r * cols + c]``."""

    rows: int
    cols: int
    values: List[float]

    def __post_init__(self) -> None:
        if self.rows * self.cols != len(self.values):
            raise ValueError(
                f"a {self.rows}x{self.cols} matrix needs {self.rows * self.cols} values, "
                f"got {len(self.values)}"
            )

    def at(self, row: int, col: int) -> float:
        return self.values[row * self.cols + col]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[float]]) -> "Matrix":
        """A matrix from a list of equally long rows."""
        width = len(rows[0]) if rows else 0
        return cls(len(rows), width, [float(x) for row in rows for x in row])


@dataclass
class MatrixPair:
    """A matrix pair input (kind 2): the job computes ``a x b``."""

    a: Matrix
    b: Matrix


JobInput = Union[Sequence[Document], Numbers, MatrixPair]


@dataclass
class SubmitRequest:
    """The body of SUBMIT (section 6)."""

    mapper: Text
    reducer: Text
    input: JobInput
    chunk_bytes: int = 0
    partitions: int = 0
    task_timeout_ms: int = 0
    memory_limit_mib: int = 0
    idempotency_key: Text = b""


@dataclass
class Progress:
    """A job's state and progress: the body of STATUS's OK and FETCH's PENDING (21 bytes)."""

    id: int
    state: JobState
    map_done: int
    map_total: int
    reduce_done: int
    reduce_total: int

    def describe(self) -> str:
        """``mapping (7/10 done)``, ``reducing (1/2 done)``, or just the state's name."""
        if self.state == JobState.MAPPING:
            return f"mapping ({self.map_done}/{self.map_total} done)"
        if self.state == JobState.REDUCING:
            return f"reducing ({self.reduce_done}/{self.reduce_total} done)"
        return self.state.label


@dataclass
class JobDetails:
    """STATUS's OK body with details (version 4): a job's progress, what it is, whose, and when
    each step of its life happened. Times are the server's clock, Unix milliseconds; 0 means
    "not yet" (or, on a server with --data-dir, "before the server restarted")."""

    progress: Progress
    mapper: str  # a built-in mapper's name (section 7), so ASCII
    reducer: str
    tenant: str  # who submitted it; empty for a job submitted without a token
    input_bytes: int  # the length of the SUBMIT body that carried the job
    submitted_ms: int  # when the server accepted it
    started_ms: int  # when its first task went to a worker; 0: not yet
    finished_ms: int  # when it was done, failed or cancelled; 0: not yet
    failure: str = ""  # why it failed, as FETCH says; empty unless it failed


@dataclass
class CountsResult:
    """Result kind 0: ``(key, occurrences)``, most frequent first, ties by key."""

    entries: List[Tuple[bytes, int]]


@dataclass
class PostingsResult:
    """Result kind 1: ``(word, [document names])``, words and names in byte order."""

    entries: List[Tuple[bytes, List[bytes]]]


@dataclass
class StatisticsResult:
    """Result kind 3. With no numbers, ``count`` is 0 and the rest are NaN."""

    count: int
    mean: float
    median: float
    mode: float
    min: float
    max: float


Result = Union[CountsResult, PostingsResult, Matrix, StatisticsResult]


@dataclass
class JobEntry:
    """One row of LIST's reply. ``tenant`` is who submitted the job; it is empty for a job
    submitted without a token, and in a reply to a LIST that did not ask for tenants."""

    id: int
    state: JobState
    tenant: str = ""


@dataclass
class ServerStats:
    """STATS's reply: fourteen u64 counters, in this order (section 6, STATS)."""

    uptime_ms: int
    connections_open: int
    connections_total: int
    requests_total: int
    requests_rejected: int
    jobs_submitted: int
    jobs_done: int
    jobs_failed: int
    jobs_cancelled: int
    jobs_expired: int
    jobs_unfinished: int
    workers: int
    worker_restarts: int
    retained_result_bytes: int

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in fields(cls)]


_STATS_LAYOUT = struct.Struct("<14Q")

Bound = Union[int, float]  # a whole number of microseconds, or math.inf


@dataclass
class Histogram:
    """Durations counted in buckets (STATS with details, version 4), in microseconds.

    ``buckets`` are ``(upper_us, count)`` in increasing order of ``upper_us``, where ``count`` is
    how many durations were at most ``upper_us`` (cumulative, as on the wire). The last bound is
    always ``math.inf`` (the wire's ``ff ff ff ff ff ff ff ff``), so the last count is the total.
    ``sum_us`` is the sum of every duration.
    """

    buckets: List[Tuple[Bound, int]]
    sum_us: int

    @property
    def count(self) -> int:
        """How many durations in all: the last bucket's count."""
        return self.buckets[-1][1] if self.buckets else 0

    def per_bucket(self) -> List[Tuple[Bound, int]]:
        """``(upper_us, count)`` with each count only the durations of that bucket: above the
        previous bound, at most this one."""
        counts = [count for _, count in self.buckets]
        return [(bound, count - previous)
                for (bound, count), previous in zip(self.buckets, [0] + counts)]


@dataclass
class DetailedStats(ServerStats):
    """STATS's reply with details (version 4): the fourteen counters, then these."""

    workers_busy: int  # worker processes running a task now
    tasks_done: int  # map and reduce tasks whose output the server took in
    task_us: Histogram  # how long those tasks took, from handed to a worker to output taken in
    job_us: Histogram  # how long finished jobs took, from accepted to done or failed (cancelled
                       # jobs, and jobs restored at start-up, are not counted)

    def counters(self) -> ServerStats:
        """The fourteen counters alone, as a STATS without details gives them."""
        return ServerStats(*(getattr(self, name) for name in ServerStats.field_names()))


@dataclass
class Hello:
    """The body of a HELLO request: a protocol version and a software name (the server ignores
    the name; send it empty)."""

    version: int = PROTOCOL_VERSION
    software: str = ""


@dataclass
class HelloReply:
    """HELLO's OK reply: the version the server speaks with us, its software name, and from
    version 2 on a flags byte (a reply to a version 1 HELLO has none: ``flags`` is then 0).
    Versions 2, 3 and 4 share one layout."""

    version: int = PROTOCOL_VERSION
    software: str = ""
    flags: int = 0

    @property
    def auth_required(self) -> bool:
        """The server wants AUTH before any request but HELLO and AUTH (bit 0 of ``flags``)."""
        return bool(self.flags & HELLO_AUTH_REQUIRED)


@dataclass
class AuthReply:
    """AUTH's OK reply: who the token names (1 to 64 of ``A-Z a-z 0-9 . _ -``) and its role."""

    tenant: str
    role: Role


@dataclass
class FetchOutcome:
    """What FETCH said: a result (OK), progress (PENDING), or an error message."""

    status: Status
    result: Optional[Result] = None
    progress: Optional[Progress] = None
    message: Optional[str] = None

    @property
    def done(self) -> bool:
        return self.status == Status.OK

    @property
    def pending(self) -> bool:
        return self.status == Status.PENDING


# --------------------------------------------------------------------------------------------
# Body encoders and decoders, one pair per body of the document
# --------------------------------------------------------------------------------------------

# HELLO ----------------------------------------------------------------------------------------


def encode_hello(hello: Hello) -> bytes:
    """HELLO request body: ``u16 version``, ``string software``."""
    return BodyWriter().u16(hello.version).string(hello.software).getvalue()


def decode_hello(body: bytes) -> Hello:
    reader = BodyReader(body, "HELLO body")
    version = reader.u16()
    software = reader.string().decode("utf-8", errors="replace")
    reader.finish()
    return Hello(version, software)


def encode_hello_reply(reply: HelloReply) -> bytes:
    """HELLO's OK body: version 1's layout (version, software) for version 1, then ``u8 flags``
    from version 2 on."""
    writer = BodyWriter().u16(reply.version).string(reply.software)
    if reply.version >= 2:
        writer.u8(reply.flags)
    elif reply.flags:
        raise ValueError("a version 1 HELLO reply has no flags")
    return writer.getvalue()


def decode_hello_reply(body: bytes) -> HelloReply:
    """HELLO's OK body. Its layout follows the version it states, which is the version the
    HELLO asked for (section 6): version 1 without flags, versions 2 to 4 with them."""
    reader = BodyReader(body, "HELLO reply")
    version = reader.u16()
    software = reader.string().decode("utf-8", errors="replace")
    flags = 0
    if 2 <= version <= PROTOCOL_VERSION:
        flags = reader.u8()
    elif version != 1:
        raise ProtocolError(f"HELLO reply of protocol version {version}, which this client "
                            f"does not speak")
    reader.finish()
    return HelloReply(version, software, flags)


# AUTH (version 2) -----------------------------------------------------------------------------


def encode_auth(token: Text) -> bytes:
    """AUTH request body: ``string token`` (at most MAX_TOKEN_BYTES; the server checks)."""
    return BodyWriter().string(token).getvalue()


def decode_auth(body: bytes) -> bytes:
    reader = BodyReader(body, "AUTH body")
    token = reader.string()
    reader.finish()
    return token


def encode_auth_reply(reply: AuthReply) -> bytes:
    """AUTH's OK body: ``string tenant``, ``u8 role``."""
    return BodyWriter().string(reply.tenant).u8(reply.role).getvalue()


def decode_auth_reply(body: bytes) -> AuthReply:
    reader = BodyReader(body, "AUTH reply")
    tenant = reader.string().decode("utf-8", errors="replace")
    role = _enum_value(Role, reader.u8(), "role")
    reader.finish()
    return AuthReply(tenant, role)


# Error bodies -------------------------------------------------------------------------------


def encode_error(message: Text) -> bytes:
    """The body of every reply that is neither OK nor PENDING: one string."""
    return BodyWriter().string(message).getvalue()


def decode_error(body: bytes) -> str:
    reader = BodyReader(body, "error body")
    message = reader.string().decode("utf-8", errors="replace")
    reader.finish()
    return message


# Job ids --------------------------------------------------------------------------------------


def encode_job_id(job_id: int) -> bytes:
    """FETCH, STATUS and CANCEL request bodies, and SUBMIT's OK reply: one u32."""
    return _U32.pack(job_id)


def decode_job_id(body: bytes) -> int:
    reader = BodyReader(body, "job id")
    job_id = reader.u32()
    reader.finish()
    return job_id


def decode_empty(body: bytes, what: str = "empty body") -> None:
    """CANCEL's OK reply, and version 1's LIST and STATS requests: no bytes at all."""
    BodyReader(body, what).finish()


def _options_with_details(options: Optional[int], details_bit: int) -> bool:
    return options is not None and bool(options & details_bit)


def _encode_options(options: Optional[int]) -> bytes:
    """A request body that is only ``u8 options`` (LIST from version 3, STATS from version 4),
    or, for ``None``, version 1's empty body."""
    return b"" if options is None else _U8.pack(options)


def _decode_options(body: bytes, what: str) -> Optional[int]:
    """The options of such a body, or ``None`` for an empty (version 1) one."""
    reader = BodyReader(body, what)
    options = reader.u8() if reader.remaining else None
    reader.finish()
    return options


def _read_name(reader: BodyReader, what: str, limit: int) -> str:
    """A string of at most ``limit`` bytes (section 2), as text."""
    raw = reader.string()
    if len(raw) > limit:
        raise ProtocolError(f"a {what} of {len(raw)} bytes, over {limit}")
    return raw.decode("utf-8", errors="replace")


# SUBMIT ---------------------------------------------------------------------------------------


def _write_matrix(writer: BodyWriter, matrix: Matrix) -> None:
    writer.u64(matrix.rows).u64(matrix.cols).f64list(matrix.values)


def _read_matrix(reader: BodyReader) -> Matrix:
    rows, cols = reader.u64(), reader.u64()
    if rows > MAX_MATRIX_DIMENSION or cols > MAX_MATRIX_DIMENSION:
        raise ProtocolError(f"a {rows}x{cols} matrix is over the limit of {MAX_MATRIX_DIMENSION}")
    values = reader.f64list()
    if len(values) != rows * cols:
        raise ProtocolError(f"a {rows}x{cols} matrix with {len(values)} values")
    return Matrix(rows, cols, values)


def input_kind_of(job_input: JobInput) -> InputKind:
    """Which input kind a Python value stands for."""
    if isinstance(job_input, Numbers):
        return InputKind.NUMBERS
    if isinstance(job_input, MatrixPair):
        return InputKind.MATRIX_PAIR
    return InputKind.DOCUMENTS


def _write_input(writer: BodyWriter, job_input: JobInput) -> None:
    kind = input_kind_of(job_input)
    writer.u8(kind)
    if kind == InputKind.NUMBERS:
        writer.f64list(job_input.values)
    elif kind == InputKind.MATRIX_PAIR:
        _write_matrix(writer, job_input.a)
        _write_matrix(writer, job_input.b)
    else:
        documents = list(job_input)
        writer.u64(len(documents))
        for document in documents:
            writer.string(document.name).string(document.text)


def _read_input(reader: BodyReader) -> JobInput:
    kind = _enum_value(InputKind, reader.u8(), "input kind")
    if kind == InputKind.NUMBERS:
        return Numbers(reader.f64list())
    if kind == InputKind.MATRIX_PAIR:
        return MatrixPair(_read_matrix(reader), _read_matrix(reader))
    documents = []
    for _ in range(reader.count(16, "documents")):  # two strings: at least 2 x u64
        name = reader.string()
        documents.append(Document(name, reader.string()))
    return documents


def encode_submit(request: SubmitRequest) -> bytes:
    """SUBMIT request body."""
    writer = BodyWriter()
    writer.string(request.mapper).string(request.reducer)
    writer.u64(request.chunk_bytes).u32(request.partitions)
    writer.u32(request.task_timeout_ms).u32(request.memory_limit_mib)
    writer.string(request.idempotency_key)
    _write_input(writer, request.input)
    return writer.getvalue()


def decode_submit(body: bytes) -> SubmitRequest:
    reader = BodyReader(body, "SUBMIT body")
    mapper, reducer = reader.string(), reader.string()
    chunk_bytes, partitions = reader.u64(), reader.u32()
    task_timeout_ms, memory_limit_mib = reader.u32(), reader.u32()
    key = reader.string()
    job_input = _read_input(reader)
    reader.finish()
    return SubmitRequest(
        mapper, reducer, job_input, chunk_bytes, partitions, task_timeout_ms, memory_limit_mib, key
    )


# Progress -------------------------------------------------------------------------------------

_PROGRESS_LAYOUT = struct.Struct("<IBIIII")  # 21 bytes, no padding


def encode_progress(progress: Progress) -> bytes:
    """STATUS's OK body and FETCH's PENDING body."""
    return _PROGRESS_LAYOUT.pack(
        progress.id,
        progress.state,
        progress.map_done,
        progress.map_total,
        progress.reduce_done,
        progress.reduce_total,
    )


def _read_progress(reader: BodyReader) -> Progress:
    job_id = reader.u32()
    state = _enum_value(JobState, reader.u8(), "job state")
    return Progress(job_id, state, reader.u32(), reader.u32(), reader.u32(), reader.u32())


def decode_progress(body: bytes) -> Progress:
    reader = BodyReader(body, "progress")
    progress = _read_progress(reader)
    reader.finish()
    return progress


# STATUS (options and details: version 4) ------------------------------------------------------


def encode_status_request(job_id: int, options: Optional[int] = None) -> bytes:
    """STATUS request body: ``u32 id``, then (version 4) ``u8 options``; ``None`` leaves the
    options out, which is version 1's request."""
    body = _U32.pack(job_id)
    return body if options is None else body + _U8.pack(options)


def decode_status_request(body: bytes) -> Tuple[int, Optional[int]]:
    """``(job id, options)`` of a STATUS request; options are ``None`` when left out."""
    reader = BodyReader(body, "STATUS body")
    job_id = reader.u32()
    options = reader.u8() if reader.remaining else None
    reader.finish()
    return job_id, options


def status_reply_has_details(options: Optional[int]) -> bool:
    """Whether the OK to a STATUS with these options is ``Details`` (else ``Progress``)."""
    return _options_with_details(options, STATUS_WITH_DETAILS)


def encode_job_details(details: JobDetails) -> bytes:
    """STATUS's OK body with details: ``Progress``, ``string mapper``, ``string reducer``,
    ``string tenant``, ``u64 input_bytes``, ``u64 submitted_ms``, ``u64 started_ms``,
    ``u64 finished_ms``, ``string failure``."""
    writer = BodyWriter()
    writer.raw(encode_progress(details.progress))
    writer.string(details.mapper).string(details.reducer).string(details.tenant)
    writer.u64(details.input_bytes).u64(details.submitted_ms)
    writer.u64(details.started_ms).u64(details.finished_ms)
    writer.string(details.failure)
    return writer.getvalue()


def decode_job_details(body: bytes) -> JobDetails:
    reader = BodyReader(body, "job details")
    progress = _read_progress(reader)
    mapper = _read_name(reader, "mapper name", MAX_NAME_BYTES)
    reducer = _read_name(reader, "reducer name", MAX_NAME_BYTES)
    tenant = _read_name(reader, "tenant", MAX_TENANT_BYTES)
    input_bytes, submitted_ms, started_ms, finished_ms = (reader.u64() for _ in range(4))
    failure = reader.string().decode("utf-8", errors="replace")
    reader.finish()
    return JobDetails(progress, mapper, reducer, tenant, input_bytes, submitted_ms, started_ms,
                      finished_ms, failure)


# Results --------------------------------------------------------------------------------------


def result_kind_of(result: Result) -> ResultKind:
    if isinstance(result, CountsResult):
        return ResultKind.COUNTS
    if isinstance(result, PostingsResult):
        return ResultKind.POSTINGS
    if isinstance(result, Matrix):
        return ResultKind.MATRIX
    if isinstance(result, StatisticsResult):
        return ResultKind.STATISTICS
    raise TypeError(f"not a result: {result!r}")


def encode_result(result: Result) -> bytes:
    """FETCH's OK body: ``u8 result_kind`` then the result (section 8)."""
    writer = BodyWriter()
    kind = result_kind_of(result)
    writer.u8(kind)
    if kind == ResultKind.COUNTS:
        writer.u64(len(result.entries))
        for key, occurrences in result.entries:
            writer.string(key).u64(occurrences)
    elif kind == ResultKind.POSTINGS:
        writer.u64(len(result.entries))
        for word, documents in result.entries:
            writer.string(word).string_list(documents)
    elif kind == ResultKind.MATRIX:
        _write_matrix(writer, result)
    else:
        writer.u64(result.count)
        for value in (result.mean, result.median, result.mode, result.min, result.max):
            writer.f64(value)
    return writer.getvalue()


def _read_counts(reader: BodyReader) -> CountsResult:
    entries = []
    for _ in range(reader.count(16, "counts")):  # string (>= 8) + u64
        key = reader.string()
        entries.append((key, reader.u64()))
    return CountsResult(entries)


def _read_postings(reader: BodyReader) -> PostingsResult:
    entries = []
    for _ in range(reader.count(16, "postings")):  # string (>= 8) + list count (8)
        word = reader.string()
        entries.append((word, reader.string_list()))
    return PostingsResult(entries)


def _read_statistics(reader: BodyReader) -> StatisticsResult:
    count = reader.u64()
    return StatisticsResult(count, *(reader.f64() for _ in range(5)))


_RESULT_READERS = {
    ResultKind.COUNTS: _read_counts,
    ResultKind.POSTINGS: _read_postings,
    ResultKind.MATRIX: _read_matrix,
    ResultKind.STATISTICS: _read_statistics,
}


def decode_result(body: bytes) -> Result:
    reader = BodyReader(body, "result")
    kind = _enum_value(ResultKind, reader.u8(), "result kind")
    result = _RESULT_READERS[kind](reader)
    reader.finish()
    return result


# LIST and STATS -------------------------------------------------------------------------------


def encode_list_request(options: Optional[int] = LIST_WITH_TENANTS) -> bytes:
    """LIST request body: ``u8 options`` (version 3), or, for ``None``, version 1's empty body,
    which every server version answers without tenants."""
    return _encode_options(options)


def decode_list_request(body: bytes) -> Optional[int]:
    """The options of a LIST request, or ``None`` for an empty (version 1) body."""
    return _decode_options(body, "LIST body")


def list_reply_has_tenants(options: Optional[int]) -> bool:
    """Whether the OK to a LIST with these options (None: an empty body) lists tenants."""
    return options is not None and bool(options & LIST_WITH_TENANTS)


def encode_job_list(jobs: Sequence[JobEntry], with_tenants: bool = True) -> bytes:
    """LIST's OK body: ``list`` of ``(u32 id, u8 state, string tenant)`` for a LIST that asked
    for tenants, else version 1's ``list`` of ``(u32 id, u8 state)``."""
    writer = BodyWriter().u64(len(jobs))
    for job in jobs:
        writer.u32(job.id).u8(job.state)
        if with_tenants:
            writer.string(job.tenant)
        elif job.tenant:
            raise ValueError("a job list without tenants cannot carry one")
    return writer.getvalue()


def decode_job_list(body: bytes, with_tenants: bool = True) -> List[JobEntry]:
    """LIST's OK body in the layout the request asked for (``list_reply_has_tenants``): the
    two layouts cannot be told apart by length alone when the list is empty."""
    reader = BodyReader(body, "job list")
    jobs = []
    # A row is at least 5 bytes, or 13 with the tenant's u64 length.
    for _ in range(reader.count(13 if with_tenants else 5, "jobs")):
        job_id = reader.u32()
        state = _enum_value(JobState, reader.u8(), "job state")
        tenant = ""
        if with_tenants:
            raw = reader.string()
            if len(raw) > MAX_TENANT_BYTES:
                raise ProtocolError(f"a tenant of {len(raw)} bytes, over {MAX_TENANT_BYTES}")
            tenant = raw.decode("utf-8", errors="replace")
        jobs.append(JobEntry(job_id, state, tenant))
    reader.finish()
    return jobs


def encode_stats_request(options: Optional[int] = None) -> bytes:
    """STATS request body: empty (version 1), or (version 4) ``u8 options``."""
    return _encode_options(options)


def decode_stats_request(body: bytes) -> Optional[int]:
    """The options of a STATS request, or ``None`` for an empty (version 1) body."""
    return _decode_options(body, "STATS body")


def stats_reply_has_details(options: Optional[int]) -> bool:
    """Whether the OK to a STATS with these options carries the details."""
    return _options_with_details(options, STATS_WITH_DETAILS)


def encode_server_stats(stats: ServerStats) -> bytes:
    """STATS's OK body: fourteen u64s (112 bytes)."""
    return _STATS_LAYOUT.pack(*(getattr(stats, name) for name in ServerStats.field_names()))


def decode_server_stats(body: bytes) -> ServerStats:
    if len(body) != _STATS_LAYOUT.size:
        raise ProtocolError(f"STATS reply of {len(body)} bytes, expected {_STATS_LAYOUT.size}")
    return ServerStats(*_STATS_LAYOUT.unpack(body))


def _write_histogram(writer: BodyWriter, histogram: Histogram) -> None:
    writer.u64(len(histogram.buckets))
    for bound, count in histogram.buckets:
        if bound == math.inf:
            writer.u64(HISTOGRAM_NO_BOUND)
        elif isinstance(bound, int) and 0 <= bound < HISTOGRAM_NO_BOUND:
            writer.u64(bound)
        else:
            raise ValueError(f"a histogram bound must be a whole number of us or math.inf, "
                             f"not {bound!r}")
        writer.u64(count)
    writer.u64(histogram.sum_us)


def _read_histogram(reader: BodyReader, what: str) -> Histogram:
    """``list`` of ``(u64 upper_us, u64 count)``, then ``u64 sum_us``. Checks what the document
    says of them: bounds increasing, counts cumulative (never decreasing), the last bound +Inf
    (so there is at least one bucket)."""
    buckets: List[Tuple[Bound, int]] = []
    for _ in range(reader.count(16, f"{what} buckets")):  # two u64 each
        raw_bound, count = reader.u64(), reader.u64()
        bound: Bound = math.inf if raw_bound == HISTOGRAM_NO_BOUND else raw_bound
        if buckets and bound <= buckets[-1][0]:
            raise ProtocolError(f"{what}: bucket bounds not increasing ({buckets[-1][0]} "
                                f"then {raw_bound})")
        if buckets and count < buckets[-1][1]:
            raise ProtocolError(f"{what}: counts not cumulative ({buckets[-1][1]} then {count})")
        buckets.append((bound, count))
    if not buckets or buckets[-1][0] != math.inf:
        raise ProtocolError(f"{what}: the last bucket is not the +Inf one")
    return Histogram(buckets, reader.u64())


def encode_detailed_stats(stats: DetailedStats) -> bytes:
    """STATS's OK body with details: the fourteen counters, ``u64 workers_busy``,
    ``u64 tasks_done``, then the ``Histogram``s ``task_us`` and ``job_us``."""
    writer = BodyWriter()
    writer.raw(encode_server_stats(stats))
    writer.u64(stats.workers_busy).u64(stats.tasks_done)
    _write_histogram(writer, stats.task_us)
    _write_histogram(writer, stats.job_us)
    return writer.getvalue()


def decode_detailed_stats(body: bytes) -> DetailedStats:
    reader = BodyReader(body, "STATS reply with details")
    counters = [reader.u64() for _ in range(len(ServerStats.field_names()))]
    workers_busy, tasks_done = reader.u64(), reader.u64()
    task_us = _read_histogram(reader, "task_us")
    job_us = _read_histogram(reader, "job_us")
    reader.finish()
    return DetailedStats(*counters, workers_busy, tasks_done, task_us, job_us)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def encode_frame(code: int, body: bytes = b"") -> bytes:
    """A whole frame: u8 code (opcode or status), u32 body length, the body."""
    return HEADER.pack(code, len(body)) + body


def decode_header(header: bytes) -> Tuple[int, int]:
    """``(code, body_length)`` from the 5 header bytes."""
    return HEADER.unpack(header)


def split_frames(data: bytes) -> Tuple[List[Tuple[int, bytes]], bytes]:
    """Cut a byte stream into ``(code, body)`` frames; returns them and the incomplete rest."""
    frames, offset = [], 0
    while len(data) - offset >= HEADER_SIZE:
        code, length = decode_header(data[offset:offset + HEADER_SIZE])
        end = offset + HEADER_SIZE + length
        if end > len(data):
            break
        frames.append((code, data[offset + HEADER_SIZE:end]))
        offset = end
    return frames, data[offset:]


def hello_frame(hello: Hello = Hello()) -> bytes:
    return encode_frame(Opcode.HELLO, encode_hello(hello))


def auth_frame(token: Text) -> bytes:
    return encode_frame(Opcode.AUTH, encode_auth(token))


def submit_frame(request: SubmitRequest) -> bytes:
    return encode_frame(Opcode.SUBMIT, encode_submit(request))


def fetch_frame(job_id: int) -> bytes:
    return encode_frame(Opcode.FETCH, encode_job_id(job_id))


def status_frame(job_id: int, options: Optional[int] = None) -> bytes:
    """STATUS of version 1 by default; ``status_frame(id, STATUS_WITH_DETAILS)`` asks for the
    job's details (version 4)."""
    return encode_frame(Opcode.STATUS, encode_status_request(job_id, options))


def cancel_frame(job_id: int) -> bytes:
    return encode_frame(Opcode.CANCEL, encode_job_id(job_id))


def list_frame(options: Optional[int] = LIST_WITH_TENANTS) -> bytes:
    """LIST asking for tenants by default; ``list_frame(None)`` is version 1's empty LIST."""
    return encode_frame(Opcode.LIST, encode_list_request(options))


def stats_frame(options: Optional[int] = None) -> bytes:
    """STATS of version 1 by default; ``stats_frame(STATS_WITH_DETAILS)`` asks for the details
    (version 4)."""
    return encode_frame(Opcode.STATS, encode_stats_request(options))


@dataclass
class Reply:
    """One reply frame: its status and its still-encoded body."""

    status: Status
    body: bytes

    def error_message(self) -> str:
        return decode_error(self.body)

    def raise_unless(self, *expected: Status) -> None:
        """Raise ServerError (or ProtocolError) unless the status is one of ``expected``."""
        if self.status in expected:
            return
        if self.status in (Status.OK, Status.PENDING):
            raise ProtocolError(f"unexpected {self.status.name} reply")
        raise ServerError(self.status, self.error_message())


# --------------------------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------------------------

_RECV_CHUNK = 1 << 20
FIRST_POLL_DELAY = 0.001
LONGEST_POLL_DELAY = 0.2


class Connection:
    """One TCP connection to mrd. Methods map one to one onto the opcodes.

    Request-level errors raise ``ServerError``; a reply that does not decode raises
    ``ProtocolError``; network failures and timeouts raise ``ConnectionLost``.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock

    @classmethod
    def connect(cls, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                timeout: Optional[float] = 60.0) -> "Connection":
        """Open a connection. ``timeout`` bounds every connect, send and receive (None: none)."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as error:
            reason = error.strerror or error
            raise ConnectionLost(f"cannot connect to {host}:{port}: {reason}") from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # Raw frames -------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (one or several frames)."""
        try:
            self._sock.sendall(data)
        except OSError as error:
            raise ConnectionLost(f"sending failed: {error}") from error

    def _receive_exactly(self, size: int) -> bytes:
        # Grows as the bytes arrive, so a lying header costs no memory up front.
        received = bytearray()
        while len(received) < size:
            try:
                chunk = self._sock.recv(min(size - len(received), _RECV_CHUNK))
            except OSError as error:
                raise ConnectionLost(f"receiving failed: {error}") from error
            if not chunk:
                raise ConnectionLost(
                    f"the server closed the connection ({len(received)} of {size} bytes read)"
                )
            received += chunk
        return bytes(received)

    def read_reply(self) -> Reply:
        """Read one reply frame. An undefined status is a ProtocolError."""
        code, length = decode_header(self._receive_exactly(HEADER_SIZE))
        status = _enum_value(Status, code, "reply status")
        return Reply(status, self._receive_exactly(length))

    def request(self, frame: bytes) -> Reply:
        """Send one request frame and read its reply."""
        try:
            self.send_raw(frame)
        except ConnectionLost as send_failure:
            # The server may have refused the frame from its header alone (FRAME_TOO_LARGE)
            # and closed while the body was still being sent: its reply may still be readable.
            try:
                return self.read_reply()
            except MrdError:
                raise send_failure from None
        return self.read_reply()

    def pipeline(self, frames: Sequence[bytes]) -> List[Reply]:
        """Send several request frames without waiting, then read their replies in order.

        The frames are sent from a helper thread while this one reads, so a long batch cannot
        deadlock with a server that stops reading until its replies are read (section 2).
        If the server closes the connection before answering every frame (it does after
        FRAME_TOO_LARGE), raises ``PipelineBroken`` holding the replies that did arrive.
        """
        def send_all() -> None:
            try:
                self.send_raw(b"".join(frames))
            except ConnectionLost:
                pass  # the reads below meet the close too, and know how far the server got

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        replies: List[Reply] = []
        try:
            while len(replies) < len(frames):
                replies.append(self.read_reply())
        except ConnectionLost as error:
            raise PipelineBroken(str(error), replies) from error
        finally:
            sender.join()
        # Every reply arrived; a failed send could only be the close that followed the last.
        return replies

    # One method per opcode ----------------------------------------------------------------

    def hello(self, version: int = PROTOCOL_VERSION) -> HelloReply:
        """Exchange protocol versions; returns the server's version, software and (from version
        2 on) flags: ``auth_required`` says to call ``auth`` next. A server that does not speak
        ``version`` raises ServerError (VERSION_MISMATCH) and the connection stays usable."""
        reply = self.request(hello_frame(Hello(version, "")))
        reply.raise_unless(Status.OK)
        hello = decode_hello_reply(reply.body)
        if hello.version != version:
            raise ProtocolError(f"HELLO of version {version} answered with version "
                                f"{hello.version}")
        return hello

    def auth(self, token: Text) -> AuthReply:
        """Present a token (version 2); returns the tenant and role it names. An unknown token
        raises ServerError (AUTH_FAILED); the third on one connection closes it."""
        reply = self.request(auth_frame(token))
        reply.raise_unless(Status.OK)
        return decode_auth_reply(reply.body)

    def submit(self, mapper: Text, reducer: Text, input: JobInput, chunk_bytes: int = 0,
               partitions: int = 0, task_timeout_ms: int = 0, memory_limit_mib: int = 0,
               idempotency_key: Text = b"") -> int:
        """Queue a job; returns its id at once."""
        request = SubmitRequest(mapper, reducer, input, chunk_bytes, partitions,
                                task_timeout_ms, memory_limit_mib, idempotency_key)
        reply = self.request(submit_frame(request))
        reply.raise_unless(Status.OK)
        return decode_job_id(reply.body)

    def fetch(self, job_id: int) -> FetchOutcome:
        """Ask for a job's result, never waiting. Job-level answers come back as an outcome;
        request-level errors (BAD_REQUEST, ...) raise ServerError."""
        return fetch_outcome(self.request(fetch_frame(job_id)))

    def status(self, job_id: int, details: bool = False) -> Union[Progress, JobDetails]:
        """A job's state and progress; with ``details`` (version 4), a ``JobDetails`` holding
        that progress, the job's mapper, reducer, tenant, input size, times and failure."""
        options = STATUS_WITH_DETAILS if details else None
        reply = self.request(status_frame(job_id, options))
        reply.raise_unless(Status.OK)
        return decode_job_details(reply.body) if details else decode_progress(reply.body)

    def cancel(self, job_id: int) -> None:
        """Cancel a job (or release its result)."""
        reply = self.request(cancel_frame(job_id))
        reply.raise_unless(Status.OK)
        decode_empty(reply.body, "CANCEL reply")

    def list(self, with_tenants: bool = True) -> List[JobEntry]:
        """The jobs the server remembers, by increasing id: with tokens, a user's token sees
        its tenant's jobs, an admin's every job. ``with_tenants`` asks for each job's tenant
        (version 3); without it the request is version 1's, and every tenant is empty."""
        options = LIST_WITH_TENANTS if with_tenants else None
        reply = self.request(list_frame(options))
        reply.raise_unless(Status.OK)
        return decode_job_list(reply.body, list_reply_has_tenants(options))

    def stats(self, details: bool = False) -> Union[ServerStats, DetailedStats]:
        """The server's counters; with ``details`` (version 4), a ``DetailedStats``: also busy
        workers, tasks done, and the task and job latency histograms."""
        options = STATS_WITH_DETAILS if details else None
        reply = self.request(stats_frame(options))
        reply.raise_unless(Status.OK)
        return decode_detailed_stats(reply.body) if details else decode_server_stats(reply.body)

    def wait_for_result(self, job_id: int,
                        on_progress: Optional[Callable[[Progress], None]] = None) -> Result:
        """Poll FETCH until the job has finished; return its result or raise ServerError.

        Waits 1 ms after the first PENDING, doubling up to 200 ms, so short jobs return fast
        and long ones cost few requests. ``on_progress`` is called with every PENDING.
        """
        return _poll_until_finished(lambda: self.fetch(job_id), on_progress)


def _poll_until_finished(fetch: Callable[[], "FetchOutcome"],
                         on_progress: Optional[Callable[[Progress], None]]) -> Result:
    """Calls ``fetch`` until the job is done (its result) or ended otherwise (ServerError),
    pausing 1 ms after the first PENDING, doubling up to 200 ms; shared by the single
    connection and the failover between nodes."""
    delay = FIRST_POLL_DELAY
    while True:
        outcome = fetch()
        if outcome.done:
            return outcome.result
        if not outcome.pending:
            raise ServerError(outcome.status, outcome.message or "")
        if on_progress is not None:
            on_progress(outcome.progress)
        time.sleep(delay)
        delay = min(delay * 2, LONGEST_POLL_DELAY)


def should_fail_over(error: MrdError, opcode: Opcode) -> bool:
    """True if ``error``, met making a request of ``opcode``, means this server cannot serve it
    now and another node of the cluster may: no connection, or one lost or timed out
    (``ConnectionLost``), ``SERVER_BUSY``, ``UNAVAILABLE`` (a node without its Redis), and
    ``SHUTTING_DOWN`` for a SUBMIT. Each leaves the request undone or safe to send again. Any other
    error (a refused job, an unknown job, a reply that does not decode) would be the same on
    every node."""
    if isinstance(error, ConnectionLost):
        return True
    if isinstance(error, ServerError):
        if error.status in (Status.SERVER_BUSY, Status.UNAVAILABLE):
            return True
        return opcode == Opcode.SUBMIT and error.status == Status.SHUTTING_DOWN
    return False


def new_idempotency_key() -> str:
    """16 random hex digits: makes sending a SUBMIT again (to any node) safe."""
    return secrets.token_hex(8)


Address = Tuple[str, int]
T = TypeVar("T")


class FailoverConnection:
    """The nodes of a cluster (``mrd --redis``, several servers sharing one job namespace), as
    one connection: any node answers for any job, and a SUBMIT sent again to another node with
    the same idempotency key gets the same job id.

    Requests go to the node in use (at first ``servers[0]``, connected on the first request).
    When one fails in a way ``should_fail_over`` accepts, the same request goes to the next node,
    wrapping around, each node at most ``attempts_per_server`` times, with a pause after every
    round in which all of them failed (``first_pause`` seconds, doubled each round up to
    ``longest_pause``). Once every attempt has failed it raises ``FailoverExhausted``, naming
    every node and its last error. ``on_failover(error, next_address, pause)`` is told of each
    move before it happens.

    With one server there is nothing to fail over to: every error is raised as it is, as a
    ``Connection`` raises it.

    ``connect(host, port)`` opens a ready ``Connection``; by default ``Connection.connect`` with
    ``timeout``, then ``hello()`` (give your own to send AUTH too).
    """

    def __init__(self, servers: Sequence[Address],
                 connect: Optional[Callable[[str, int], Connection]] = None,
                 timeout: Optional[float] = 60.0, attempts_per_server: int = 3,
                 first_pause: float = 0.1, longest_pause: float = 1.0,
                 on_failover: Optional[Callable[[MrdError, Address, float], None]] = None):
        if not servers:
            raise ValueError("no server to connect to")
        self.servers: List[Address] = list(servers)
        self._connect = connect or (lambda host, port: _hello_connection(host, port, timeout))
        self.attempts_per_server = max(1, attempts_per_server)
        self.first_pause = first_pause
        self.longest_pause = longest_pause
        self.on_failover = on_failover
        self._current = 0
        self._connection: Optional[Connection] = None

    @property
    def address(self) -> Address:
        """The server requests go to now: the one connected, or the next to try."""
        return self.servers[self._current]

    def connection(self) -> Connection:
        """The open connection to ``address``, connecting if there is none (no failover)."""
        if self._connection is None:
            self._connection = self._connect(*self.address)
        return self._connection

    def disconnect(self) -> None:
        """Close the connection; the next request opens a new one to the same server."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    close = disconnect

    def __enter__(self) -> "FailoverConnection":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def call(self, what: str, opcode: Opcode, request: Callable[[Connection], T]) -> T:
        """``request(connection)`` on the server in use, failing over as the class says.
        ``what`` names the request in the final error; ``request`` may run several times."""
        failures: dict = {}
        count = 0
        while True:
            try:
                return request(self.connection())
            except MrdError as error:
                if not should_fail_over(error, opcode):
                    raise
                self.disconnect()  # broken, busy, or a node that cannot serve now
                if len(self.servers) == 1:
                    raise
                failures[self._current] = error
                count += 1
                if count >= len(self.servers) * self.attempts_per_server:
                    raise FailoverExhausted(
                        what, [(server, failures[index])
                               for index, server in enumerate(self.servers)],
                        self.attempts_per_server) from error
                self._current = (self._current + 1) % len(self.servers)
                pause = 0.0
                if count % len(self.servers) == 0:  # every server failed once more
                    rounds = count // len(self.servers)
                    pause = min(self.first_pause * 2 ** (rounds - 1), self.longest_pause)
                if self.on_failover is not None:
                    self.on_failover(error, self.address, pause)
                time.sleep(pause)

    def submit(self, mapper: Text, reducer: Text, input: JobInput, chunk_bytes: int = 0,
               partitions: int = 0, task_timeout_ms: int = 0, memory_limit_mib: int = 0,
               idempotency_key: Text = b"") -> int:
        """Queue a job; on a failing node, send it again to the next with the same idempotency
        key, so that it never makes two jobs (an empty key is replaced by a random one)."""
        key = idempotency_key or new_idempotency_key()
        return self.call("submit", Opcode.SUBMIT, lambda connection: connection.submit(
            mapper, reducer, input, chunk_bytes, partitions, task_timeout_ms, memory_limit_mib,
            key))

    def fetch(self, job_id: int) -> FetchOutcome:
        return self.call(f"fetch job {job_id}", Opcode.FETCH,
                         lambda connection: connection.fetch(job_id))

    def status(self, job_id: int, details: bool = False) -> Union[Progress, JobDetails]:
        return self.call(f"status of job {job_id}", Opcode.STATUS,
                         lambda connection: connection.status(job_id, details))

    def cancel(self, job_id: int) -> None:
        # Safe to send again: cancelling a cancelled job is OK (protocol section 6, CANCEL).
        self.call(f"cancel job {job_id}", Opcode.CANCEL,
                  lambda connection: connection.cancel(job_id))

    def list(self, with_tenants: bool = True) -> List[JobEntry]:
        return self.call("list", Opcode.LIST, lambda connection: connection.list(with_tenants))

    def stats(self, details: bool = False) -> Union[ServerStats, DetailedStats]:
        return self.call("stats", Opcode.STATS, lambda connection: connection.stats(details))

    def wait_for_result(self, job_id: int,
                        on_progress: Optional[Callable[[Progress], None]] = None) -> Result:
        """As ``Connection.wait_for_result``; a node lost while waiting makes it go on polling
        on another."""
        return _poll_until_finished(lambda: self.fetch(job_id), on_progress)


def _hello_connection(host: str, port: int, timeout: Optional[float]) -> Connection:
    connection = Connection.connect(host, port, timeout)
    try:
        connection.hello()
    except BaseException:
        connection.close()
        raise
    return connection


def fetch_outcome(reply: Reply) -> FetchOutcome:
    """Decode FETCH's reply into a FetchOutcome (raises on request-level errors)."""
    if reply.status == Status.OK:
        return FetchOutcome(reply.status, result=decode_result(reply.body))
    if reply.status == Status.PENDING:
        return FetchOutcome(reply.status, progress=decode_progress(reply.body))
    if reply.status in FETCH_OUTCOME_STATUSES:
        return FetchOutcome(reply.status, message=decode_error(reply.body))
    raise ServerError(reply.status, decode_error(reply.body))


# --------------------------------------------------------------------------------------------
# Helpers for clients
# --------------------------------------------------------------------------------------------


def parse_server_address(text: str) -> Tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``HOST`` or ``[IPV6]`` (port 1936) -> (host, port)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad server address {text!r}")
        has_port, port_text = bool(rest), rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        has_port = True
    else:
        host, has_port, port_text = text, False, ""  # a host name, or a bare IPv6 address
    if not host:
        raise ValueError(f"bad server address {text!r}: no host")
    if not has_port:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad server address {text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def parse_server_list(text: str) -> List[Tuple[str, int]]:
    """``HOST:PORT,HOST:PORT,...`` (the nodes of a cluster) -> [(host, port), ...], each item as
    ``parse_server_address`` reads it; text without a comma is one address. An empty item
    (``a,,b``, ``a,``) or a bad address raises ValueError naming it."""
    if "," not in text:
        return [parse_server_address(text)]
    servers = []
    for number, item in enumerate(text.split(","), start=1):
        if not item:
            raise ValueError(f"bad server list {text!r}: item {number} is empty")
        servers.append(parse_server_address(item))
    return servers


def format_server_address(host: str, port: int) -> str:
    """``HOST:PORT``, with an IPv6 address in brackets (as ``parse_server_address`` reads it)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
