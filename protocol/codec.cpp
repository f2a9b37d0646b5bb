#include "protocol/codec.hpp"

#include <cstring>

#include "protocol/body_io.hpp"
#include "protocol/fixed_bytes.hpp"
#include "protocol/limits.hpp"
#include "protocol/submit_layout.hpp"

namespace mrd::protocol {
namespace {

/// An enum byte, checked against its largest valid value.
template <class Enum>
Enum read_enum(BodyReader& r, Enum last, const char* what) {
  const auto byte = r.value<std::uint8_t>();
  if (byte > static_cast<std::uint8_t>(last)) {
    throw DecodeError(std::string(what) + " " + std::to_string(byte) + " is not defined");
  }
  return static_cast<Enum>(byte);
}

// --- writers: one per message, in docs/protocol.md order ---

void write(BodyWriter& w, const ErrorMessage& m) {
  w.bytes(m.text);
}

void write(BodyWriter& w, const Hello& m) {
  w.value(m.protocol_version);
  w.bytes(m.software);
}

void write(BodyWriter& w, const HelloReply& m) {
  w.value(m.protocol_version);
  w.bytes(m.software);
  w.value(m.flags);
}

void write(BodyWriter& w, const AuthRequest& m) {
  w.bytes(m.token);
}

void write(BodyWriter& w, const AuthReply& m) {
  w.bytes(m.tenant);
  w.value(static_cast<std::uint8_t>(m.role));
}

void write_input(BodyWriter& w, const JobInput& input) {
  w.value(static_cast<std::uint8_t>(input.index()));
  if (const auto* docs = std::get_if<Documents>(&input)) {
    w.count(docs->documents.size());
    for (std::size_t i = 0; i < docs->documents.size(); ++i) {
      w.bytes(docs->documents[i].name);
      w.bytes_in_slot(i, docs->documents[i].text);
    }
  } else if (const auto* numbers = std::get_if<Numbers>(&input)) {
    w.doubles(numbers->values);
  } else {
    const auto& pair = std::get<MatrixPair>(input);
    // As write_matrix, with A's values in payload slot 0 and B's in slot 1 (gather_message).
    const auto matrix = [&w](const Matrix& m, std::size_t slot) {
      w.value(m.rows);
      w.value(m.cols);
      w.doubles_in_slot(slot, m.values);
    };
    matrix(pair.a, 0);
    matrix(pair.b, 1);
  }
}

void write(BodyWriter& w, const SubmitRequest& m) {
  w.bytes(m.mapper);
  w.bytes(m.reducer);
  w.value(m.options.chunk_bytes);
  w.value(m.options.partitions);
  w.value(m.options.task_timeout_ms);
  w.value(m.options.memory_limit_mib);
  w.bytes(m.idempotency_key);
  write_input(w, m.input);
}

void write(BodyWriter& w, const JobResult& m) {
  w.value(static_cast<std::uint8_t>(m.index()));
  if (const auto* counts = std::get_if<Counts>(&m)) {
    w.count(counts->entries.size());
    for (const auto& e : counts->entries) {
      w.bytes(e.key);
      w.value(e.count);
    }
  } else if (const auto* postings = std::get_if<Postings>(&m)) {
    w.count(postings->entries.size());
    for (const auto& e : postings->entries) {
      w.bytes(e.word);
      w.count(e.documents.size());
      for (const auto& d : e.documents)
        w.bytes(d);
    }
  } else if (const auto* matrix = std::get_if<Matrix>(&m)) {
    write_matrix(w, *matrix);
  } else {
    const auto& s = std::get<Statistics>(m);
    w.value(s.count);
    w.value(s.mean);
    w.value(s.median);
    w.value(s.mode);
    w.value(s.min);
    w.value(s.max);
  }
}

void write(BodyWriter& w, const JobList& m) {
  w.count(m.jobs.size());
  for (const auto& j : m.jobs) {
    w.value(j.id);
    w.value(j.state);
  }
}

void write(BodyWriter& w, const ListRequest& m) {
  w.value(m.options);
}

void write(BodyWriter& w, const TenantJobList& m) {
  w.count(m.jobs.size());
  for (const auto& j : m.jobs) {
    w.value(j.id);
    w.value(j.state);
    w.bytes(j.tenant);
  }
}

void write(BodyWriter& w, const ServerStats& m) {
  for (auto v :
       {m.uptime_ms, m.connections_open, m.connections_total, m.requests_total, m.requests_rejected,
        m.jobs_submitted, m.jobs_done, m.jobs_failed, m.jobs_cancelled, m.jobs_expired,
        m.jobs_unfinished, m.workers, m.worker_restarts, m.retained_result_bytes}) {
    w.value(v);
  }
}

void write(BodyWriter& w, const JobProgress& m) {
  w.value(m.id);
  w.value(m.state);
  for (const auto v : {m.map_done, m.map_total, m.reduce_done, m.reduce_total})
    w.value(v);
}

void write(BodyWriter& w, const StatusRequest& m) {
  w.value(m.id);
  w.value(m.options);
}

void write(BodyWriter& w, const JobDetails& m) {
  write(w, m.progress);
  w.bytes(m.mapper);
  w.bytes(m.reducer);
  w.bytes(m.tenant);
  for (auto v : {m.input_bytes, m.submitted_ms, m.started_ms, m.finished_ms})
    w.value(v);
  w.bytes(m.failure);
}

void write(BodyWriter& w, const StatsRequest& m) {
  w.value(m.options);
}

void write(BodyWriter& w, const Histogram& m) {
  w.count(m.buckets.size());
  for (const auto& b : m.buckets) {
    w.value(b.upper_us);
    w.value(b.count);
  }
  w.value(m.sum_us);
}

void write(BodyWriter& w, const DetailedStats& m) {
  write(w, m.counters);
  w.value(m.workers_busy);
  w.value(m.tasks_done);
  write(w, m.task_us);
  write(w, m.job_us);
}

// --- readers ---

void read(BodyReader& r, JobId& m) {
  m.id = r.value<std::uint32_t>();
}

void read(BodyReader& r, ErrorMessage& m) {
  m.text = r.bytes(kNoCountLimit, "message");
}

void read(BodyReader& r, Hello& m) {
  m.protocol_version = r.value<std::uint16_t>();
  m.software = r.bytes(256, "software name");
}

void read(BodyReader& r, HelloReply& m) {
  m.protocol_version = r.value<std::uint16_t>();
  m.software = r.bytes(256, "software name");
  m.flags = r.value<std::uint8_t>();
}

void read(BodyReader& r, AuthRequest& m) {
  m.token = r.bytes(kMaxAuthBodyBytes, "token");
}

void read(BodyReader& r, AuthReply& m) {
  m.tenant = r.bytes(kMaxTenantBytes, "tenant");
  m.role = read_enum(r, Role::kAdmin, "role");
}

void read(BodyReader& r, JobResult& m) {
  const auto kind = r.value<std::uint8_t>();
  switch (kind) {
    case 0: {
      Counts counts;
      const auto n = r.count(16, kNoCountLimit, "count entries");
      counts.entries.reserve(static_cast<std::size_t>(n));
      for (std::uint64_t i = 0; i < n; ++i) {
        KeyCount e;
        e.key = r.bytes(kNoCountLimit, "key");
        e.count = r.value<std::uint64_t>();
        counts.entries.push_back(std::move(e));
      }
      m = std::move(counts);
      return;
    }
    case 1: {
      Postings postings;
      const auto n = r.count(16, kNoCountLimit, "posting entries");
      postings.entries.reserve(static_cast<std::size_t>(n));
      for (std::uint64_t i = 0; i < n; ++i) {
        Posting p;
        p.word = r.bytes(kNoCountLimit, "word");
        const auto docs = r.count(8, kNoCountLimit, "posting documents");
        p.documents.reserve(static_cast<std::size_t>(docs));
        for (std::uint64_t j = 0; j < docs; ++j) {
          p.documents.push_back(r.bytes(kMaxDocumentNameBytes, "document name"));
        }
        postings.entries.push_back(std::move(p));
      }
      m = std::move(postings);
      return;
    }
    case kMatrixResultKind: m = read_matrix(r); return;
    case 3: {
      Statistics s;
      s.count = r.value<std::uint64_t>();
      s.mean = r.value<double>();
      s.median = r.value<double>();
      s.mode = r.value<double>();
      s.min = r.value<double>();
      s.max = r.value<double>();
      m = s;
      return;
    }
    default: throw DecodeError("result kind " + std::to_string(kind) + " is not defined");
  }
}

void read(BodyReader& r, JobProgress& m) {
  m.id = r.value<std::uint32_t>();
  m.state = read_enum(r, JobState::kCancelled, "job state");
  m.map_done = r.value<std::uint32_t>();
  m.map_total = r.value<std::uint32_t>();
  m.reduce_done = r.value<std::uint32_t>();
  m.reduce_total = r.value<std::uint32_t>();
}

void read(BodyReader& r, JobList& m) {
  const auto n = r.count(5, kNoCountLimit, "job count");
  m.jobs.resize(static_cast<std::size_t>(n));
  for (auto& j : m.jobs) {
    j.id = r.value<std::uint32_t>();
    j.state = read_enum(r, JobState::kCancelled, "job state");
  }
}

void read(BodyReader& r, ListRequest& m) {
  m.options = r.value<std::uint8_t>();
}

void read(BodyReader& r, TenantJobList& m) {
  // Each row is at least 13 bytes: id, state and the tenant's length.
  const auto n = r.count(13, kNoCountLimit, "job count");
  m.jobs.resize(static_cast<std::size_t>(n));
  for (auto& j : m.jobs) {
    j.id = r.value<std::uint32_t>();
    j.state = read_enum(r, JobState::kCancelled, "job state");
    j.tenant = r.bytes(kMaxTenantBytes, "tenant");
  }
}

void read(BodyReader& r, ServerStats& m) {
  for (auto* field : {&m.uptime_ms, &m.connections_open, &m.connections_total, &m.requests_total,
                      &m.requests_rejected, &m.jobs_submitted, &m.jobs_done, &m.jobs_failed,
                      &m.jobs_cancelled, &m.jobs_expired, &m.jobs_unfinished, &m.workers,
                      &m.worker_restarts, &m.retained_result_bytes}) {
    *field = r.value<std::uint64_t>();
  }
}

void read(BodyReader& r, StatusRequest& m) {
  m.id = r.value<std::uint32_t>();
  m.options = r.value<std::uint8_t>();
}

void read(BodyReader& r, JobDetails& m) {
  read(r, m.progress);
  m.mapper = r.bytes(kMaxNameBytes, "mapper name");
  m.reducer = r.bytes(kMaxNameBytes, "reducer name");
  m.tenant = r.bytes(kMaxTenantBytes, "tenant");
  for (auto* field : {&m.input_bytes, &m.submitted_ms, &m.started_ms, &m.finished_ms})
    *field = r.value<std::uint64_t>();
  m.failure = r.bytes(kNoCountLimit, "failure");
}

void read(BodyReader& r, StatsRequest& m) {
  m.options = r.value<std::uint8_t>();
}

void read(BodyReader& r, Histogram& m) {
  // Each bucket is two u64s.
  const auto n = r.count(16, kMaxHistogramBuckets, "histogram bucket count");
  m.buckets.resize(static_cast<std::size_t>(n));
  for (auto& b : m.buckets) {
    b.upper_us = r.value<std::uint64_t>();
    b.count = r.value<std::uint64_t>();
  }
  m.sum_us = r.value<std::uint64_t>();
}

void read(BodyReader& r, DetailedStats& m) {
  read(r, m.counters);
  m.workers_busy = r.value<std::uint64_t>();
  m.tasks_done = r.value<std::uint64_t>();
  read(r, m.task_us);
  read(r, m.job_us);
}

/// A matrix as write_matrix wrote it, its values left in the body.
MatrixResultView read_matrix_in_place(BodyReader& r) {
  MatrixResultView m;
  m.rows = r.value<std::uint64_t>();
  m.cols = r.value<std::uint64_t>();
  if (m.rows > kMaxMatrixSide || m.cols > kMaxMatrixSide) {
    throw DecodeError("matrix side exceeds " + std::to_string(kMaxMatrixSide));
  }
  // The count is checked against the bytes left, so a lying shape costs nothing; both sides are
  // <= 2^20, so their product cannot overflow.
  m.values = r.doubles_in_place(m.rows * m.cols, "matrix values");
  if (m.values.size() != m.rows * m.cols * sizeof(double)) {
    throw DecodeError("matrix holds a different number of values than its shape");
  }
  return m;
}

void read(BodyReader& r, MatrixResultView& m) {
  if (r.value<std::uint8_t>() != kMatrixResultKind) throw DecodeError("the result is not a matrix");
  m = read_matrix_in_place(r);
}

template <class T>
Decoded<T> decode_whole(std::string_view body) {
  Decoded<T> out;
  try {
    BodyReader reader(body);
    T value{};
    read(reader, value);
    reader.expect_end();
    out.value = std::move(value);
  } catch (const DecodeError& e) {
    out.error = e.what();
  } catch (const cereal::Exception&) {
    out.error = "body ends before the message does";
  }
  return out;
}

}  // namespace

void write_matrix(BodyWriter& w, const Matrix& m) {
  w.value(m.rows);
  w.value(m.cols);
  w.doubles(m.values);
}

Matrix read_matrix(BodyReader& r) {
  const MatrixResultView view = read_matrix_in_place(r);
  Matrix m{view.rows, view.cols, {}};
  reserve_in_huge_pages(m.values, view.values.size() / sizeof(double));
  m.values.resize(view.values.size() / sizeof(double));
  if (!view.values.empty()) std::memcpy(m.values.data(), view.values.data(), view.values.size());
  return m;
}

bool holds_matrix_result(std::string_view body) {
  return !body.empty() && static_cast<std::uint8_t>(body.front()) == kMatrixResultKind;
}

template <>
Decoded<MatrixResultView> decode<MatrixResultView>(std::string_view body) {
  return decode_whole<MatrixResultView>(body);
}

#define MRD_BODY(T)                                 \
  void encode_to(std::string& out, const T& body) { \
    BodyWriter writer(out);                         \
    write(writer, body);                            \
  }                                                 \
  template <>                                       \
  Decoded<T> decode<T>(std::string_view body) {     \
    return decode_whole<T>(body);                   \
  }

// The hot replies (a SUBMIT's id, a FETCH's PENDING) are fixed layouts: appended directly,
// without building a stream for a few bytes.
void encode_to(std::string& out, const JobId& body) {
  FixedWriter(out).value(body.id);
}

void encode_to(std::string& out, const JobProgress& body) {
  FixedWriter w(out);
  w.value(body.id);
  w.value(static_cast<std::uint8_t>(body.state));
  for (const auto v : {body.map_done, body.map_total, body.reduce_done, body.reduce_total})
    w.value(v);
}

template <>
Decoded<JobId> decode<JobId>(std::string_view body) {
  return decode_whole<JobId>(body);
}

template <>
Decoded<JobProgress> decode<JobProgress>(std::string_view body) {
  return decode_whole<JobProgress>(body);
}

MRD_BODY(ErrorMessage)
MRD_BODY(Hello)
MRD_BODY(HelloReply)
MRD_BODY(AuthRequest)
MRD_BODY(AuthReply)

void encode_to(std::string& out, const SubmitRequest& body) {
  BodyWriter writer(out);
  write(writer, body);
}

std::uint64_t GatheredMessage::size() const {
  std::uint64_t total = bytes.size();
  for (const auto& payload : payloads)
    total += payload.bytes.size() + payload.outside_bytes;
  return total;
}

std::vector<std::string_view> GatheredMessage::pieces() const {
  std::vector<std::string_view> pieces;
  pieces.reserve(2 * payloads.size() + 1);
  const auto add = [&pieces](std::string_view piece) { pieces.push_back(piece); };
  for_each_piece(add, add, [](std::size_t, std::uint64_t) {
    throw std::logic_error("a message with outside payloads has no pieces of its own");
  });
  return pieces;
}

GatheredMessage gather_message(std::uint8_t code, const SubmitRequest& request,
                               std::span<const std::uint64_t> outside) {
  GatheredMessage message;
  append_header(message.bytes, code, 0);
  BodyWriter writer(message.bytes, message.payloads, kGatherFromBytes, outside);
  write(writer, request);
  // The header again, now that the body's size is known: past 4 GiB it cannot say it (the caller
  // refuses such a frame), so it says the most it can rather than a size that wrapped.
  const auto body_bytes = message.size() - kHeaderBytes;
  std::string header;
  append_header(header, code,
                static_cast<std::uint32_t>(std::min<std::uint64_t>(body_bytes, UINT32_MAX)));
  message.bytes.replace(0, header.size(), header);
  return message;
}

// One decoder for SUBMIT bodies: the one that yields offsets (submit_layout.hpp), so that the
// server's in-place path and this copying one cannot disagree about what a body means.
template <>
Decoded<SubmitRequest> decode<SubmitRequest>(std::string_view body) {
  auto layout = decode_submit_layout(body);
  if (!layout) return {std::nullopt, std::move(layout.error)};
  return {materialize(*layout.value, body), {}};
}
MRD_BODY(JobResult)
MRD_BODY(JobList)
MRD_BODY(ListRequest)
MRD_BODY(TenantJobList)
MRD_BODY(ServerStats)
MRD_BODY(StatusRequest)
MRD_BODY(JobDetails)
MRD_BODY(StatsRequest)
MRD_BODY(DetailedStats)

#undef MRD_BODY

}  // namespace mrd::protocol
