#include "client/frame_trace.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <variant>

#include "client/server_stats_fields.hpp"
#include "client/text_output.hpp"
#include "protocol/codec.hpp"
#include "protocol/frame.hpp"
#include "protocol/limits.hpp"

namespace mrd::client {
namespace {

using protocol::Opcode;
using protocol::Status;

/// Starts every line under the header line.
constexpr std::string_view kIndent = "   ";

/// Entries of a result or a job list shown one by one; the rest are only counted.
constexpr std::size_t kShownEntries = 3;

/// Bytes of a string shown; a name or a key can be any length.
constexpr std::size_t kShownStringBytes = 80;

/// Bytes of an error message shown: more, since the message is the point of its reply.
constexpr std::size_t kShownMessageBytes = 1024;

void add_line(std::string& out, std::string_view text) {
  out += kIndent;
  out += text;
  out += '\n';
}

/// "1 byte", "4 bytes"; `plural` where an added s will not do ("entries").
std::string count_of(std::uint64_t n, std::string_view singular, std::string_view plural = {}) {
  if (n == 1) return "1 " + std::string(singular);
  return std::to_string(n) + " " +
         (plural.empty() ? std::string(singular) + "s" : std::string(plural));
}

/// "unknown-job" -> "UNKNOWN_JOB": to_string's names as docs/protocol.md spells them.
std::string wire_name(std::string_view lower_name) {
  std::string name(lower_name);
  for (char& c : name) {
    c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

void append_hex_byte(std::string& out, unsigned char byte) {
  static constexpr char kDigits[] = "0123456789abcdef";
  out += kDigits[byte >> 4];
  out += kDigits[byte & 15];
}

/// The first kTraceHexBytes of `frame`, 16 to a line, as docs/protocol.md shows frames.
void add_hex(std::string& out, std::string_view frame) {
  const std::size_t shown = std::min(frame.size(), kTraceHexBytes);
  for (std::size_t i = 0; i < shown; ++i) {
    out += i % 16 == 0 ? kIndent : std::string_view(" ");
    append_hex_byte(out, static_cast<unsigned char>(frame[i]));
    if (i % 16 == 15 || i + 1 == shown) out += '\n';
  }
  if (frame.size() > shown)
    add_line(out, "... (" + count_of(frame.size() - shown, "more byte") + ")");
}

/// Any bytes made safe for a terminal: control bytes and '\' as \xNN (and '"' too when
/// `quote`), cut after `max_bytes`. Bytes >= 0x80 pass, so UTF-8 text stays readable.
std::string escaped(std::string_view s, bool quote, std::size_t max_bytes = kShownStringBytes) {
  std::string out = quote ? "\"" : "";
  for (const char c : s.substr(0, max_bytes)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f || c == '\\' || (quote && c == '"')) {
      out += "\\x";
      append_hex_byte(out, byte);
    } else {
      out += c;
    }
  }
  if (quote) out += '"';
  if (s.size() > max_bytes) out += "... (" + count_of(s.size(), "byte") + " in all)";
  return out;
}

/// A string that is a field's whole value: as is, or "(empty)".
std::string shown(std::string_view s, std::size_t max_bytes = kShownStringBytes) {
  return s.empty() ? "(empty)" : escaped(s, false, max_bytes);
}

/// A string beside other values, in quotes so that its ends show: "to be" 2.
std::string quoted(std::string_view s) {
  return escaped(s, true);
}

/// A tuning value, where 0 means the server chooses.
std::string or_default(std::uint64_t value) {
  return std::to_string(value) + (value == 0 ? " (server default)" : "");
}

std::string shape(const protocol::Matrix& m) {
  return std::to_string(m.rows) + "x" + std::to_string(m.cols);
}

/// "... (2 more entries)" when there are more than were shown.
void add_more(std::string& out, std::size_t total, std::string_view singular,
              std::string_view plural = {}) {
  if (total <= kShownEntries) return;
  add_line(out, "... (" + count_of(total - kShownEntries, singular, plural) + ")");
}

// --- the fields of each body, one per line ---

void add_fields(std::string& out, const protocol::JobId& m) {
  add_line(out, "job id: " + std::to_string(m.id));
}

void add_fields(std::string& out, const protocol::ErrorMessage& m) {
  add_line(out, "message: " + shown(m.text, kShownMessageBytes));
}

void add_fields(std::string& out, const protocol::Hello& m) {
  add_line(out, "protocol version: " + std::to_string(m.protocol_version));
  add_line(out, "software: " + shown(m.software));
}

void add_fields(std::string& out, const protocol::HelloReply& m) {
  add_fields(out, protocol::Hello{m.protocol_version, m.software});
  add_line(out, std::string("auth required: ") +
                    ((m.flags & protocol::kHelloAuthRequired) ? "yes" : "no"));
}

void add_fields(std::string& out, const protocol::AuthRequest& m) {
  // A trace may be pasted anywhere: the token is a secret, so only its size is shown.
  add_line(out, "token: " + count_of(m.token.size(), "byte") + " (not shown)");
}

void add_fields(std::string& out, const protocol::AuthReply& m) {
  add_line(out, "tenant: " + shown(m.tenant));
  add_line(out, std::string("role: ") + (m.role == protocol::Role::kAdmin ? "admin" : "user"));
}

void add_input_fields(std::string& out, const protocol::JobInput& input) {
  if (const auto* docs = std::get_if<protocol::Documents>(&input)) {
    std::uint64_t text_bytes = 0;
    for (const auto& d : docs->documents)
      text_bytes += d.text.size();
    add_line(out, "input kind: documents (0)");
    add_line(out, "documents: " + std::to_string(docs->documents.size()) + ", " +
                      count_of(text_bytes, "byte") + " of text");
  } else if (const auto* numbers = std::get_if<protocol::Numbers>(&input)) {
    add_line(out, "input kind: numbers (1)");
    add_line(out, "numbers: " + std::to_string(numbers->values.size()));
  } else {
    const auto& pair = std::get<protocol::MatrixPair>(input);
    add_line(out, "input kind: matrix pair (2)");
    add_line(out, "matrices: A " + shape(pair.a) + ", B " + shape(pair.b));
  }
}

void add_fields(std::string& out, const protocol::SubmitRequest& m) {
  add_line(out, "mapper: " + shown(m.mapper));
  add_line(out, "reducer: " + shown(m.reducer));
  add_line(out, "chunk bytes: " + or_default(m.options.chunk_bytes));
  add_line(out, "partitions: " + or_default(m.options.partitions));
  add_line(out, "task timeout (ms): " + or_default(m.options.task_timeout_ms));
  add_line(out, "memory limit (MiB): " + or_default(m.options.memory_limit_mib));
  add_line(out, "idempotency key: " +
                    (m.idempotency_key.empty() ? "(none)" : escaped(m.idempotency_key, false)));
  add_input_fields(out, m.input);
}

void add_fields(std::string& out, const protocol::JobProgress& m) {
  std::string line = job_status_text(m);  // "job 7: mapping, map 1/4, reduce 0/2\n"
  line.pop_back();
  add_line(out, line);
}

void add_fields(std::string& out, const protocol::Counts& counts) {
  const auto& entries = counts.entries;
  add_line(out, "result kind: counts (0)");
  add_line(out, "entries: " + std::to_string(entries.size()));
  for (std::size_t i = 0; i < std::min(entries.size(), kShownEntries); ++i) {
    add_line(out, "entry " + std::to_string(i + 1) + ": " + quoted(entries[i].key) + " " +
                      std::to_string(entries[i].count));
  }
  add_more(out, entries.size(), "more entry", "more entries");
}

void add_fields(std::string& out, const protocol::Postings& postings) {
  const auto& entries = postings.entries;
  add_line(out, "result kind: postings (1)");
  add_line(out, "entries: " + std::to_string(entries.size()));
  for (std::size_t i = 0; i < std::min(entries.size(), kShownEntries); ++i) {
    const auto& documents = entries[i].documents;
    std::string line = "entry " + std::to_string(i + 1) + ": " + quoted(entries[i].word) + " in";
    for (std::size_t j = 0; j < std::min(documents.size(), kShownEntries); ++j) {
      line += (j == 0 ? " " : ", ") + quoted(documents[j]);
    }
    if (documents.size() > kShownEntries) {
      line += ", ... (" + count_of(documents.size(), "document") + ")";
    }
    add_line(out, line);
  }
  add_more(out, entries.size(), "more entry", "more entries");
}

void add_fields(std::string& out, const protocol::Matrix& matrix) {
  add_line(out, "result kind: matrix (2)");
  add_line(out, "shape: " + shape(matrix));
}

void add_fields(std::string& out, const protocol::Statistics& s) {
  add_line(out, "result kind: statistics (3)");
  add_line(out, "count: " + std::to_string(s.count));
  add_line(out, "mean: " + format_double(s.mean));
  add_line(out, "median: " + format_double(s.median));
  add_line(out, "mode: " + format_double(s.mode));
  add_line(out, "min: " + format_double(s.min));
  add_line(out, "max: " + format_double(s.max));
}

void add_fields(std::string& out, const protocol::JobResult& result) {
  std::visit([&out](const auto& r) { add_fields(out, r); }, result);
}

void add_fields(std::string& out, const protocol::JobList& list) {
  add_line(out, "jobs: " + std::to_string(list.jobs.size()));
  for (std::size_t i = 0; i < std::min(list.jobs.size(), kShownEntries); ++i) {
    add_line(out, "job " + std::to_string(list.jobs[i].id) + ": " +
                      std::string(protocol::to_string(list.jobs[i].state)));
  }
  add_more(out, list.jobs.size(), "more job");
}

void add_fields(std::string& out, const protocol::TenantJobList& list) {
  add_line(out, "jobs: " + std::to_string(list.jobs.size()));
  for (std::size_t i = 0; i < std::min(list.jobs.size(), kShownEntries); ++i) {
    add_line(out, "job " + std::to_string(list.jobs[i].id) + ": " +
                      std::string(protocol::to_string(list.jobs[i].state)) + ", tenant " +
                      quoted(list.jobs[i].tenant));
  }
  add_more(out, list.jobs.size(), "more job");
}

void add_fields(std::string& out, const protocol::ListRequest& request) {
  add_line(out, "options: " + std::to_string(request.options) +
                    (request.options & protocol::kListWithTenants ? " (with tenants)" : ""));
}

void add_fields(std::string& out, const protocol::ServerStats& stats) {
  for (const auto& [name, value] : server_stats_fields(stats)) {
    add_line(out, std::string(name) + ": " + std::to_string(value));
  }
}

void add_fields(std::string& out, const protocol::StatusRequest& request) {
  add_line(out, "job id: " + std::to_string(request.id));
  add_line(out, "options: " + std::to_string(request.options) +
                    (request.options & protocol::kStatusWithDetails ? " (with details)" : ""));
}

void add_fields(std::string& out, const protocol::StatsRequest& request) {
  add_line(out, "options: " + std::to_string(request.options) +
                    (request.options & protocol::kStatsWithDetails ? " (with details)" : ""));
}

/// Each line of `text` (as text_output.hpp writes it) as a field line.
void add_text_lines(std::string& out, const std::string& text) {
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    auto line = text.substr(start, end - start);
    while (!line.empty() && line.front() == ' ')
      line.erase(0, 1);
    add_line(out, line);
    if (end == std::string::npos) break;
    start = end + 1;
  }
}

void add_fields(std::string& out, const protocol::JobDetails& details) {
  add_text_lines(out, job_details_text(details));
}

void add_fields(std::string& out, const protocol::DetailedStats& stats) {
  add_text_lines(out, detailed_stats_text(stats));
}

/// The fields of `body` decoded as a T by the protocol codec, or why it does not decode.
template <class T>
void add_decoded(std::string& out, std::string_view body) {
  const auto decoded = protocol::decode<T>(body);
  if (!decoded) {
    add_line(out, "undecodable body: " + decoded.error);
    return;
  }
  add_fields(out, *decoded.value);
}

/// For the messages whose body is empty (a STATS request, CANCEL's OK).
void add_no_body(std::string& out, std::string_view body) {
  if (!body.empty()) {
    add_line(out,
             "undecodable body: " + count_of(body.size(), "byte") + " where this message has none");
  }
}

void add_request_fields(std::string& out, Opcode opcode, std::string_view body) {
  switch (opcode) {
    case Opcode::kSubmit: add_decoded<protocol::SubmitRequest>(out, body); return;
    case Opcode::kStatus:
      // An id (version 1), or an id and options (version 4).
      if (body.size() == sizeof(std::uint32_t) + 1) {
        add_decoded<protocol::StatusRequest>(out, body);
        return;
      }
      add_decoded<protocol::JobId>(out, body);
      return;
    case Opcode::kFetch:
    case Opcode::kCancel: add_decoded<protocol::JobId>(out, body); return;
    case Opcode::kList:
      // Empty (version 1), or its options (version 3).
      if (body.empty()) return;
      add_decoded<protocol::ListRequest>(out, body);
      return;
    case Opcode::kStats:
      // Empty (version 1), or its options (version 4).
      if (body.empty()) return;
      add_decoded<protocol::StatsRequest>(out, body);
      return;
    case Opcode::kHello: add_decoded<protocol::Hello>(out, body); return;
    case Opcode::kAuth: add_decoded<protocol::AuthRequest>(out, body); return;
  }
}

/// OK's body is the answer to the request, so its layout is the request's.
void add_ok_fields(std::string& out, Opcode request, std::string_view body) {
  switch (request) {
    case Opcode::kSubmit: add_decoded<protocol::JobId>(out, body); return;
    case Opcode::kFetch: add_decoded<protocol::JobResult>(out, body); return;
    case Opcode::kStatus:
      // The progress, or (to a version 4 STATUS with details) the details, which start with it.
      if (protocol::decode<protocol::JobProgress>(body)) {
        add_decoded<protocol::JobProgress>(out, body);
      } else {
        add_decoded<protocol::JobDetails>(out, body);
      }
      return;
    case Opcode::kCancel: add_no_body(out, body); return;
    case Opcode::kList:
      // With tenants, or without (a reply to an empty LIST). Neither layout ever decodes as the
      // other, but for an empty list, which reads the same either way.
      if (protocol::decode<protocol::TenantJobList>(body)) {
        add_decoded<protocol::TenantJobList>(out, body);
      } else {
        add_decoded<protocol::JobList>(out, body);
      }
      return;
    case Opcode::kStats:
      // The fourteen counters, or (version 4, with details) more after them.
      if (protocol::decode<protocol::ServerStats>(body)) {
        add_decoded<protocol::ServerStats>(out, body);
      } else {
        add_decoded<protocol::DetailedStats>(out, body);
      }
      return;
    case Opcode::kHello:
      // Version 2's layout, or version 1's (a reply to a version 1 HELLO).
      if (protocol::decode<protocol::HelloReply>(body)) {
        add_decoded<protocol::HelloReply>(out, body);
      } else {
        add_decoded<protocol::Hello>(out, body);
      }
      return;
    case Opcode::kAuth: add_decoded<protocol::AuthReply>(out, body); return;
  }
}

void add_reply_fields(std::string& out, Status status, std::string_view body,
                      std::optional<Opcode> answering) {
  if (status == Status::kPending) {
    add_decoded<protocol::JobProgress>(out, body);
  } else if (status != Status::kOk) {
    add_decoded<protocol::ErrorMessage>(out, body);  // every other status has an error body
  } else if (!answering || !protocol::is_known_opcode(static_cast<std::uint8_t>(*answering))) {
    add_line(out, "(not decoded: an OK body's layout depends on the request it answers)");
  } else {
    add_ok_fields(out, *answering, body);
  }
}

/// "FETCH (1)", "UNKNOWN_JOB (2)", or "undefined opcode (42)".
std::string code_name(Direction direction, std::uint8_t code) {
  std::string name;
  if (direction == Direction::kSent) {
    name = protocol::is_known_opcode(code) ? wire_name(protocol::to_string(Opcode{code}))
                                           : "undefined opcode";
  } else {
    name = protocol::is_known_status(code) ? wire_name(protocol::to_string(Status{code}))
                                           : "undefined status";
  }
  return name + " (" + std::to_string(code) + ")";
}

}  // namespace

std::string describe_frame(Direction direction, std::string_view frame,
                           std::optional<protocol::Opcode> answering) {
  std::string out = direction == Direction::kSent ? ">> " : "<< ";
  // Only the header is wanted from the parser, so no length is too large.
  const auto header = protocol::parse_frame(frame, std::numeric_limits<std::uint64_t>::max());
  if (frame.size() < protocol::kHeaderBytes) {
    out += count_of(frame.size(), "byte") + ", less than a frame header\n";
    add_hex(out, frame);
    return out;
  }
  out += code_name(direction, header.code) + " body " + count_of(header.body_bytes, "byte") + "\n";
  // An AUTH request's body is a secret: its header, and the token's length, but not its bytes.
  const bool secret =
      direction == Direction::kSent && header.code == static_cast<std::uint8_t>(Opcode::kAuth);
  add_hex(out,
          secret ? frame.substr(0, std::min(frame.size(), protocol::kHeaderBytes + 8)) : frame);

  // What is here of the body; a cut-off frame still shows what decoding it says.
  const std::string_view body = frame.substr(protocol::kHeaderBytes, header.body_bytes);
  if (body.size() < header.body_bytes) {
    add_line(out, "(cut off: " + count_of(body.size(), "body byte") + " of " +
                      std::to_string(header.body_bytes) + " here)");
  }
  if (direction == Direction::kSent) {
    if (protocol::is_known_opcode(header.code)) {
      add_request_fields(out, Opcode{header.code}, body);
    }
  } else if (protocol::is_known_status(header.code)) {
    add_reply_fields(out, Status{header.code}, body, answering);
  }
  return out;
}

}  // namespace mrd::client
