// Messages between the scheduler and its worker processes, over a socketpair.
//
// Every message is framed like the client protocol, with a wider length:
//   u8 type, u64 body length (little-endian), body
// Bodies use the same cereal encodings as the client protocol (protocol/body_io.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/messages.hpp"

namespace mrd::server {

/// What a message asks for or answers.
enum class TaskMessageType : std::uint8_t {
  kMap = 1,     ///< scheduler -> worker: map one chunk
  kReduce = 2,  ///< scheduler -> worker: reduce one partition
  kDone = 3,    ///< worker -> scheduler: the task's output
  kError = 4,   ///< worker -> scheduler: the job's own code refused the task; body is the reason
  kOutOfMemory = 5,  ///< worker -> scheduler: the task needed more than its memory limit
  /// scheduler -> worker: map a job's only chunk, then reduce each partition of that one output,
  /// in the same process; answered with the reduced partitions. Saves a tiny job a round trip.
  kMapReduce = 6,
};

/// A message too large for any job this server accepts: the other side is broken.
inline constexpr std::uint64_t kMaxTaskMessageBytes = 8ull << 30;

/// Bytes of the header before every message body.
inline constexpr std::size_t kTaskHeaderBytes = 9;

struct TaskMessage {
  TaskMessageType type = TaskMessageType::kDone;
  std::string body;
};

/// A map task: the job's pair, the partition count and one chunk of its input.
struct MapTask {
  std::string mapper;
  std::string reducer;
  std::uint32_t partitions = 1;
  std::uint32_t memory_limit_mib = 0;  ///< 0: no limit
  protocol::JobInput chunk;
};

/// A reduce task: the job's pair and one partition's pieces, one per map task.
struct ReduceTask {
  std::string mapper;
  std::string reducer;
  std::uint32_t memory_limit_mib = 0;  ///< 0: no limit
  std::vector<std::string> pieces;
};

std::string encode_map_task(const MapTask& task);
MapTask decode_map_task(std::string_view body);  // throws protocol::DecodeError

std::string encode_reduce_task(const ReduceTask& task);
ReduceTask decode_reduce_task(std::string_view body);

/// A map task's output: one piece per partition.
std::string encode_pieces(const std::vector<std::string>& pieces);
std::vector<std::string> decode_pieces(std::string_view body);

/// Appends the header of a message whose body is `body_bytes` long.
void append_task_header(std::string& out, TaskMessageType type, std::uint64_t body_bytes);

/// A received header's type and body length; empty if the type is unknown or the length is over
/// kMaxTaskMessageBytes (checked before anything is sized from it).
std::optional<std::pair<TaskMessageType, std::uint64_t>> parse_task_header(
    const unsigned char (&header)[kTaskHeaderBytes]);

/// Writes a whole message to a blocking file descriptor. False if the peer is gone.
bool write_task_message(int fd, TaskMessageType type, std::string_view body);

/// Reads a whole message from a blocking file descriptor. Empty on EOF, a read error or a frame
/// that breaks the rules (unknown type, oversized length).
std::optional<TaskMessage> read_task_message(int fd);

}  // namespace mrd::server
