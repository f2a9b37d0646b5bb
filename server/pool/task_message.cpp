#include "server/pool/task_message.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "protocol/fixed_bytes.hpp"

namespace mrd::server {
namespace {

using protocol::ByteRange;
using protocol::DecodeError;

/// The task messages' own pieces on top of the fixed layouts: byte ranges, and names of at most
/// 255 bytes with a u8 length.
class TaskWriter : public protocol::FixedWriter {
 public:
  using FixedWriter::FixedWriter;
  void range(ByteRange r) {
    value(r.offset);
    value(r.size);
  }
  void short_bytes(std::string_view s) {
    value(static_cast<std::uint8_t>(s.size()));
    raw(s);
  }
};

class TaskReader : public protocol::FixedReader {
 public:
  explicit TaskReader(std::string_view body) : FixedReader(body, "task message") {}
  ByteRange range() {
    const auto offset = value<std::uint64_t>();
    const auto size = value<std::uint64_t>();
    if (size > ~offset) throw DecodeError("task message names a range past 2^64");
    return {offset, size};
  }
  std::string short_bytes() { return std::string(take(value<std::uint8_t>())); }
  std::string_view bytes() { return take(value<std::uint64_t>()); }
};

void write_job(TaskWriter& w, const TaskJob& job) {
  w.value(job.partitions);
  w.value(job.memory_limit_mib);
  w.value(job.hash_key.k0);
  w.value(job.hash_key.k1);
  w.short_bytes(job.mapper);
  w.short_bytes(job.reducer);
}

TaskJob read_job(TaskReader& r) {
  TaskJob job;
  job.partitions = r.value<std::uint32_t>();
  job.memory_limit_mib = r.value<std::uint32_t>();
  job.hash_key.k0 = r.value<std::uint64_t>();
  job.hash_key.k1 = r.value<std::uint64_t>();
  job.mapper = r.short_bytes();
  job.reducer = r.short_bytes();
  return job;
}

/// Where a chunk's views are in the input, and the span that holds them all.
class RangeFinder {
 public:
  explicit RangeFinder(std::string_view input) : input_(input) {}

  ByteRange operator()(const void* data, std::size_t size) {
    if (size == 0) return {};  // an empty view reads nothing, wherever it points
    const auto* p = static_cast<const char*>(data);
    const auto* begin = input_.data();
    if (p < begin || size > input_.size() || p - begin > std::ptrdiff_t(input_.size() - size)) {
      throw std::invalid_argument("a chunk views bytes outside its job's input");
    }
    const ByteRange range{static_cast<std::uint64_t>(p - begin), size};
    if (!any_) span_ = range;
    const auto end = std::max(span_.end(), range.end());
    span_.offset = std::min(span_.offset, range.offset);
    span_.size = end - span_.offset;
    any_ = true;
    return range;
  }
  ByteRange operator()(std::string_view s) { return (*this)(s.data(), s.size()); }
  ByteRange operator()(std::span<const double> v) { return (*this)(v.data(), v.size_bytes()); }

  ByteRange span() const { return span_; }

 private:
  std::string_view input_;
  ByteRange span_;
  bool any_ = false;
};

void write_matrix(TaskWriter& w, const protocol::MatrixLayout& m) {
  w.value(m.rows);
  w.value(m.cols);
  w.range(m.values);
}

protocol::MatrixLayout read_matrix(TaskReader& r) {
  protocol::MatrixLayout m;
  m.rows = r.value<std::uint64_t>();
  m.cols = r.value<std::uint64_t>();
  m.values = r.range();
  return m;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const auto n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool read_all(int fd, char* data, std::size_t size) {
  while (size > 0) {
    const auto n = ::read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

std::string encode_map_task(const TaskJob& job, const engine::InputView& chunk,
                            std::string_view input, bool in_file,
                            std::optional<protocol::ByteRange> result) {
  // Where each of the chunk's views is in the input, in the order they are written.
  RangeFinder find(input);
  std::vector<ByteRange> ranges;
  if (const auto* docs = std::get_if<engine::DocumentsView>(&chunk)) {
    for (const auto& d : docs->documents) {
      ranges.push_back(find(d.name));
      ranges.push_back(find(d.text));
    }
  } else if (const auto* numbers = std::get_if<engine::NumbersView>(&chunk)) {
    ranges.push_back(find(numbers->values));
  } else {
    const auto& pair = std::get<engine::MatrixPairView>(chunk);
    ranges.push_back(find(pair.a.values));
    ranges.push_back(find(pair.b.values));
  }
  auto span = find.span();
  // Bytes that travel inline are only the chunk's own, one range after the other (each on an
  // 8-byte boundary, so that numbers stay aligned), not the whole span: a text chunk's span
  // reaches back to its document's name, which may be most of the input away.
  std::vector<ByteRange> inline_ranges = ranges;
  if (!in_file) {
    std::uint64_t end = 0;
    for (auto& range : inline_ranges) {
      if (range.size == 0) continue;
      range.offset = (end + 7) / 8 * 8;
      end = range.end();
    }
    span = {0, end};
  }
  const auto& written = in_file ? ranges : inline_ranges;
  std::string out;
  TaskWriter w(out);
  write_job(w, job);
  w.value(static_cast<std::uint8_t>(chunk.index()));
  if (const auto* docs = std::get_if<engine::DocumentsView>(&chunk)) {
    w.value(static_cast<std::uint32_t>(docs->documents.size()));
    for (const auto& range : written)
      w.range(range);
  } else if (std::holds_alternative<engine::NumbersView>(chunk)) {
    w.range(written[0]);
  } else {
    const auto& pair = std::get<engine::MatrixPairView>(chunk);
    write_matrix(w, {pair.a.rows, pair.a.cols, written[0]});
    write_matrix(w, {pair.b.rows, pair.b.cols, written[1]});
  }
  w.range(span);
  w.value(static_cast<std::uint8_t>(result.has_value()));
  w.range(result.value_or(ByteRange{}));
  w.value(static_cast<std::uint8_t>(in_file));
  if (!in_file) {
    // Padding puts the inline bytes on an 8-byte boundary of the body, so that the numbers in
    // them are aligned where the worker reads them.
    const auto pad = static_cast<std::uint8_t>((8 - (out.size() + 1) % 8) % 8);
    w.value(pad);
    out.append(pad, '\0');
    const auto start = out.size();
    out.resize(start + span.size, '\0');
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      if (ranges[i].size == 0) continue;
      std::memcpy(out.data() + start + inline_ranges[i].offset, input.data() + ranges[i].offset,
                  ranges[i].size);
    }
  }
  return out;
}

MapTask decode_map_task(std::string_view body) {
  TaskReader r(body);
  MapTask task;
  task.job = read_job(r);
  auto& chunk = task.chunk;
  chunk.kind = r.value<std::uint8_t>();
  switch (chunk.kind) {
    case 0: {
      const auto n = r.value<std::uint32_t>();
      if (n > r.remaining() / 32) throw DecodeError("task message: document count too large");
      chunk.documents.resize(n);
      for (auto& d : chunk.documents) {
        d.name = r.range();
        d.text = r.range();
      }
      break;
    }
    case 1: chunk.numbers = r.range(); break;
    case 2:
      chunk.a = read_matrix(r);
      chunk.b = read_matrix(r);
      break;
    default: throw DecodeError("task message: input kind " + std::to_string(chunk.kind));
  }
  task.span = r.range();
  task.result_in_file = r.value<std::uint8_t>() != 0;
  task.result = r.range();
  if (task.result_in_file && chunk.kind != 2) {
    throw DecodeError("task message: only a matrix product writes into a result file");
  }
  task.in_file = r.value<std::uint8_t>() != 0;
  if (!task.in_file) {
    r.take(r.value<std::uint8_t>());  // padding
    task.inline_bytes = r.take(task.span.size);
  }
  r.expect_end();
  chunk.for_each_range([&](ByteRange range) {
    if (range.size != 0 && (range.offset < task.span.offset || range.end() > task.span.end())) {
      throw DecodeError("task message names bytes outside its span");
    }
  });
  return task;
}

engine::InputView chunk_view(const MapTask& task, const char* span_bytes) {
  return engine::view_in(task.chunk, span_bytes, task.span.offset);
}

std::string encode_reduce_task(const TaskJob& job, const std::vector<const std::string*>& pieces) {
  std::size_t total = 64 + job.mapper.size() + job.reducer.size();
  for (const auto* piece : pieces)
    total += 8 + piece->size();
  std::string out;
  out.reserve(total);
  TaskWriter w(out);
  write_job(w, job);
  w.value(static_cast<std::uint32_t>(pieces.size()));
  for (const auto* piece : pieces)
    w.bytes(*piece);
  return out;
}

ReduceTask decode_reduce_task(std::string_view body) {
  TaskReader r(body);
  ReduceTask task;
  task.job = read_job(r);
  const auto n = r.value<std::uint32_t>();
  if (n > r.remaining() / 8) throw DecodeError("task message: piece count too large");
  task.pieces.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i)
    task.pieces.emplace_back(r.bytes());
  r.expect_end();
  return task;
}

std::string encode_pieces(const std::vector<std::string>& pieces) {
  std::size_t total = 4;
  for (const auto& piece : pieces)
    total += 8 + piece.size();
  std::string out;
  out.reserve(total);
  protocol::FixedWriter w(out);
  w.value(static_cast<std::uint32_t>(pieces.size()));
  for (const auto& piece : pieces)
    w.bytes(piece);
  return out;
}

std::vector<std::string> decode_pieces(std::string_view body) {
  TaskReader r(body);
  const auto n = r.value<std::uint32_t>();
  if (n > r.remaining() / 8) throw DecodeError("task message: piece count too large");
  std::vector<std::string> pieces;
  pieces.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i)
    pieces.emplace_back(r.bytes());
  r.expect_end();
  return pieces;
}

std::string encode_batch(const std::vector<std::pair<TaskMessageType, std::string>>& messages) {
  std::size_t total = 0;
  for (const auto& [type, body] : messages)
    total += kTaskHeaderBytes + body.size();
  std::string out;
  out.reserve(total);
  for (const auto& [type, body] : messages) {
    append_task_header(out, type, body.size());
    out += body;
  }
  return out;
}

std::vector<BatchedMessage> decode_batch(std::string_view body) {
  std::vector<BatchedMessage> messages;
  while (!body.empty()) {
    if (body.size() < kTaskHeaderBytes) throw DecodeError("task batch: a header is cut short");
    unsigned char header[kTaskHeaderBytes];
    std::memcpy(header, body.data(), kTaskHeaderBytes);
    const auto parsed = parse_task_header(header);
    if (!parsed) throw DecodeError("task batch: a message's header is broken");
    const auto [type, length] = *parsed;
    if (type == TaskMessageType::kBatch || type == TaskMessageType::kBatchDone) {
      throw DecodeError("task batch: a batch inside a batch");
    }
    body.remove_prefix(kTaskHeaderBytes);
    if (length > body.size()) throw DecodeError("task batch: a message runs past its end");
    messages.push_back({type, body.substr(0, length)});
    body.remove_prefix(length);
  }
  if (messages.empty()) throw DecodeError("task batch: no message in it");
  return messages;
}

void append_task_header(std::string& out, TaskMessageType type, std::uint64_t body_bytes) {
  out.push_back(static_cast<char>(type));
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((body_bytes >> (8 * i)) & 0xff));
}

std::optional<std::pair<TaskMessageType, std::uint64_t>> parse_task_header(
    const unsigned char (&header)[kTaskHeaderBytes]) {
  const auto type = header[0];
  if (type < static_cast<std::uint8_t>(TaskMessageType::kMap) ||
      type > static_cast<std::uint8_t>(TaskMessageType::kBatchDone)) {
    return std::nullopt;
  }
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i)
    length = (length << 8) | header[1 + i];
  if (length > kMaxTaskMessageBytes) return std::nullopt;
  return std::pair{static_cast<TaskMessageType>(type), length};
}

bool write_task_message(int fd, TaskMessageType type, std::string_view body, int attached,
                        int also_attached) {
  std::string header;
  append_task_header(header, type, body.size());
  int fds[kMaxAttachedFds];
  std::size_t count = 0;
  for (const int each : {attached, also_attached}) {
    if (each >= 0) fds[count++] = each;
  }
  if (count > 0) {
    // The descriptors go with the header's first byte; the rest follows as usual.
    ssize_t n;
    do {
      n = send_with_fds(fd, header.data(), header.size(), fds, count);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    header.erase(0, static_cast<std::size_t>(n));
  }
  if (header.empty()) return write_all(fd, body.data(), body.size());
  // Header and body in one system call: a tiny task's answer is one write, not two.
  iovec parts[2] = {{header.data(), header.size()}, {const_cast<char*>(body.data()), body.size()}};
  ssize_t n;
  do {
    n = ::writev(fd, parts, 2);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  const auto written = static_cast<std::size_t>(n);
  if (written < header.size()) {
    return write_all(fd, header.data() + written, header.size() - written) &&
           write_all(fd, body.data(), body.size());
  }
  const auto body_written = written - header.size();
  return write_all(fd, body.data() + body_written, body.size() - body_written);
}

std::optional<TaskMessage> read_task_message(int fd) {
  unsigned char header[kTaskHeaderBytes];
  TaskMessage message;
  std::size_t have = 0;
  while (have < sizeof header) {
    OwnedFd received[kMaxAttachedFds];
    const auto n = receive_with_fds(fd, reinterpret_cast<char*>(header) + have,
                                    sizeof header - have, received, kMaxAttachedFds);
    if (received[0]) message.attached = std::move(received[0]);
    if (received[1]) message.also_attached = std::move(received[1]);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    have += static_cast<std::size_t>(n);
  }
  const auto parsed = parse_task_header(header);  // the length is checked before sizing a buffer
  if (!parsed) return std::nullopt;
  const auto [type, length] = *parsed;
  message.type = type;
  // The buffer grows with the bytes that actually arrive (at most doubling per step), never to
  // the size a header merely claims: a broken peer cannot make this process touch gigabytes.
  while (message.body.size() < length) {
    const std::size_t had = message.body.size();
    const std::size_t step =
        std::min<std::uint64_t>(length - had, std::max<std::size_t>(had, 1 << 20));
    message.body.resize(had + step);
    if (!read_all(fd, message.body.data() + had, step)) return std::nullopt;
  }
  return message;
}

}  // namespace mrd::server
