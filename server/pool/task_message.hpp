// Messages between the scheduler and its worker processes, over a socketpair.
//
// Every message is a header, then a body:
//   u8 type, u64 body length (little-endian), body
// Bodies have fixed layouts of little-endian integers and raw bytes, read and written with
// memcpy (docs/architecture.md draws them). A map task carries no input bytes of its own when its
// job's input is in a memory file: it names the byte ranges it reads, and the file's descriptor
// travels with the message's header (fd_passing.hpp). A map task whose output goes straight into
// its job's result file (a matrix product's rows of C) names the bytes it writes there, and that
// file's descriptor travels with the header too, after the input's: such a task answers kDone
// with no pieces.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/submit_layout.hpp"
#include "server/engine/hash_key.hpp"
#include "server/engine/input_view.hpp"
#include "server/pool/fd_passing.hpp"

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
  /// scheduler -> worker: several tasks that carry their input in the message (no descriptors),
  /// run one after the other; answered with kBatchDone. Tiny jobs waiting together cost one
  /// message each way, not one per job: on two cores the hand-offs cost more than the work.
  kBatch = 7,
  /// worker -> scheduler: one answer per task of a kBatch, in its order.
  kBatchDone = 8,
};

/// A message too large for any job this server accepts: the other side is broken.
inline constexpr std::uint64_t kMaxTaskMessageBytes = 8ull << 30;

/// Bytes of the header before every message body.
inline constexpr std::size_t kTaskHeaderBytes = 9;

struct TaskMessage {
  TaskMessageType type = TaskMessageType::kDone;
  std::string body;
  OwnedFd attached;         ///< the first descriptor that came with the message, if any
  OwnedFd also_attached{};  ///< the second one, if any
};

/// A task's job: which pair runs, and how.
struct TaskJob {
  std::string mapper;
  std::string reducer;
  std::uint32_t partitions = 1;
  std::uint32_t memory_limit_mib = 0;  ///< 0: no limit
  /// The key its map tasks partition keys with (keyed_hash.hpp): the server's own. All of a job's
  /// map tasks must use one key, and on a cluster they run on other nodes, whose keys differ.
  engine::HashKey hash_key = engine::hash_key();
};

/// A decoded map task: its job, and where in the job's input its chunk is (offsets into the
/// input, as protocol::SubmitLayout gives them).
struct MapTask {
  TaskJob job;
  protocol::InputLayout chunk;
  /// The input bytes [span.offset, span.end()) that hold every range of the chunk.
  protocol::ByteRange span;
  /// True if the span's bytes are in the memory file sent with the message; false if they end
  /// the message itself (`inline_bytes`).
  bool in_file = false;
  /// True if the task writes its output into its job's result file, sent with the message
  /// (after the input's file, if that is sent too), at bytes `result`; it answers no pieces.
  bool result_in_file = false;
  protocol::ByteRange result;     ///< bytes of the result file this task writes
  std::string_view inline_bytes;  ///< views into the message body it was decoded from
};

/// Encodes a map task for `chunk`, whose views point into `input` (the job's whole input bytes).
/// The chunk's bytes travel inline unless `in_file`: then the receiver maps them from the memory
/// file that must be sent with the message. With `result`, the task writes its output at those
/// bytes of its job's result file, which must be sent with the message too. Throws
/// std::invalid_argument if a view of `chunk` is outside `input`.
std::string encode_map_task(const TaskJob& job, const engine::InputView& chunk,
                            std::string_view input, bool in_file,
                            std::optional<protocol::ByteRange> result = std::nullopt);

/// Decodes a map task; throws protocol::DecodeError if the body breaks the layout or a range is
/// outside its span.
MapTask decode_map_task(std::string_view body);

/// The chunk a decoded task names, as views into `span_bytes` (its span's bytes: the inline
/// bytes, or the span mapped from the memory file). Throws protocol::DecodeError if its numbers
/// are not whole, aligned doubles there.
engine::InputView chunk_view(const MapTask& task, const char* span_bytes);

/// A reduce task: its job and one partition's pieces, one per map task.
struct ReduceTask {
  TaskJob job;
  std::vector<std::string> pieces;
};

/// Encodes a reduce task from the pieces of its partition (copied into the message).
std::string encode_reduce_task(const TaskJob& job, const std::vector<const std::string*>& pieces);
ReduceTask decode_reduce_task(std::string_view body);  // throws protocol::DecodeError

/// A map task's output: one piece per partition.
std::string encode_pieces(const std::vector<std::string>& pieces);
std::vector<std::string> decode_pieces(std::string_view body);  // throws protocol::DecodeError

/// One message of a batch (its body a view into the batch's body).
struct BatchedMessage {
  TaskMessageType type = TaskMessageType::kDone;
  std::string_view body;
};

/// A kBatch or kBatchDone body: each message as it would travel alone, header then body, one
/// after the other.
std::string encode_batch(const std::vector<std::pair<TaskMessageType, std::string>>& messages);
/// The messages of a batch's body; throws protocol::DecodeError if a header is broken (unknown
/// type, a batch inside a batch), a body runs past the end, or the batch is empty.
std::vector<BatchedMessage> decode_batch(std::string_view body);

/// Appends the header of a message whose body is `body_bytes` long.
void append_task_header(std::string& out, TaskMessageType type, std::uint64_t body_bytes);

/// A received header's type and body length; empty if the type is unknown or the length is over
/// kMaxTaskMessageBytes (checked before anything is sized from it).
std::optional<std::pair<TaskMessageType, std::uint64_t>> parse_task_header(
    const unsigned char (&header)[kTaskHeaderBytes]);

/// Writes a whole message to a blocking file descriptor, with `attached`, then `also_attached`
/// (each if >= 0), sent along with its header. False if the peer is gone.
bool write_task_message(int fd, TaskMessageType type, std::string_view body, int attached = -1,
                        int also_attached = -1);

/// Reads a whole message (and up to two descriptors sent with it) from a blocking file
/// descriptor. Empty on EOF, a read error or a frame that breaks the rules (unknown type,
/// oversized length).
std::optional<TaskMessage> read_task_message(int fd);

}  // namespace mrd::server
