#include "server/pool/task_message.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "protocol/body_io.hpp"
#include "protocol/codec.hpp"

namespace mrd::server {
namespace {

constexpr auto kUnlimited = std::numeric_limits<std::uint64_t>::max();

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

std::string encode_map_task(const MapTask& task) {
  // A map task is a SUBMIT body holding one chunk: the same codec, tested once.
  protocol::SubmitRequest request{
      task.mapper, task.reducer, {0, task.partitions, 0, task.memory_limit_mib}, task.chunk};
  return protocol::encode(request);
}

MapTask decode_map_task(std::string_view body) {
  auto decoded = protocol::decode<protocol::SubmitRequest>(body);
  if (!decoded) throw protocol::DecodeError("map task: " + decoded.error);
  auto& request = *decoded.value;
  return MapTask{std::move(request.mapper), std::move(request.reducer), request.options.partitions,
                 request.options.memory_limit_mib, std::move(request.input)};
}

std::string encode_reduce_task(const ReduceTask& task) {
  std::string out;
  protocol::BodyWriter writer(out);
  writer.bytes(task.mapper);
  writer.bytes(task.reducer);
  writer.value(task.memory_limit_mib);
  writer.count(task.pieces.size());
  for (const auto& piece : task.pieces)
    writer.bytes(piece);
  return out;
}

ReduceTask decode_reduce_task(std::string_view body) {
  protocol::BodyReader reader(body);
  ReduceTask task;
  task.mapper = reader.bytes(kUnlimited, "mapper");
  task.reducer = reader.bytes(kUnlimited, "reducer");
  task.memory_limit_mib = reader.value<std::uint32_t>();
  const auto n = reader.count(8, kUnlimited, "pieces");
  for (std::uint64_t i = 0; i < n; ++i)
    task.pieces.push_back(reader.bytes(kUnlimited, "piece"));
  reader.expect_end();
  return task;
}

std::string encode_pieces(const std::vector<std::string>& pieces) {
  std::string out;
  protocol::BodyWriter writer(out);
  writer.count(pieces.size());
  for (const auto& piece : pieces)
    writer.bytes(piece);
  return out;
}

std::vector<std::string> decode_pieces(std::string_view body) {
  protocol::BodyReader reader(body);
  const auto n = reader.count(8, kUnlimited, "pieces");
  std::vector<std::string> pieces;
  pieces.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i)
    pieces.push_back(reader.bytes(kUnlimited, "piece"));
  reader.expect_end();
  return pieces;
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
      type > static_cast<std::uint8_t>(TaskMessageType::kMapReduce)) {
    return std::nullopt;
  }
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i)
    length = (length << 8) | header[1 + i];
  if (length > kMaxTaskMessageBytes) return std::nullopt;
  return std::pair{static_cast<TaskMessageType>(type), length};
}

bool write_task_message(int fd, TaskMessageType type, std::string_view body) {
  std::string header;
  append_task_header(header, type, body.size());
  return write_all(fd, header.data(), header.size()) && write_all(fd, body.data(), body.size());
}

std::optional<TaskMessage> read_task_message(int fd) {
  unsigned char header[kTaskHeaderBytes];
  if (!read_all(fd, reinterpret_cast<char*>(header), sizeof header)) return std::nullopt;
  const auto parsed = parse_task_header(header);  // the length is checked before sizing a buffer
  if (!parsed) return std::nullopt;
  const auto [type, length] = *parsed;
  // The buffer grows with the bytes that actually arrive (at most doubling per step), never to
  // the size a header merely claims: a broken peer cannot make this process touch gigabytes.
  TaskMessage message{type, {}};
  while (message.body.size() < length) {
    const std::size_t have = message.body.size();
    const std::size_t step =
        std::min<std::uint64_t>(length - have, std::max<std::size_t>(have, 1 << 20));
    message.body.resize(have + step);
    if (!read_all(fd, message.body.data() + have, step)) return std::nullopt;
  }
  return message;
}

}  // namespace mrd::server
