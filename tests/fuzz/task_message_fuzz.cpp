// Fuzz target: what the server and its worker processes read from each other
// (server/pool/task_message.hpp), and the jobs' reduce() and assemble() over pieces they did not
// write themselves (server/engine/job_kind.hpp).
//
// A worker runs job code on client input, so a worker that crashed half-way or misbehaves must
// cost the server a failed job, never the server itself: everything here must only ever throw.
//
// Input: byte 0 picks what the rest is (modulo the number of choices):
//   0      a map task's body           (decode_map_task, in the worker; a product's task that
//          writes its rows of C into a result file writes them into a buffer of that size)
//   1      a reduce task's body        (decode_reduce_task, in the worker)
//   2      a map task's answer         (decode_pieces, in the server)
//   3      the bytes on a worker pipe  (read_task_message, either side)
//   4 + k  pieces for job kind k of engine::all_job_kinds(), encoded as a map task's answer
//          (encode_pieces): reduce() runs on them as a worker would, assemble() and
//          assemble_encoded() as the server would
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "protocol/body_io.hpp"
#include "protocol/codec.hpp"
#include "server/engine/job_kind.hpp"
#include "server/engine/matrix_multiply.hpp"
#include "server/pool/task_message.hpp"

namespace {

namespace engine = mrd::engine;
namespace protocol = mrd::protocol;
namespace server = mrd::server;

/// Runs `step`, which may refuse its input only the documented way: a JobError, or a DecodeError
/// for a body that does not decode. Anything else escapes to libFuzzer, which reports it. Returns
/// whether `step` finished.
template <class Step>
bool refused_or_done(Step&& step) {
  try {
    step();
    return true;
  } catch (const engine::JobError&) {
    return false;
  } catch (const protocol::DecodeError&) {
    return false;
  }
}

/// Reads every byte a chunk views, as a map would: AddressSanitizer checks each read.
std::uint64_t touch(const engine::InputView& chunk) {
  std::uint64_t sum = 0;
  const auto bytes = [&](const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i)
      sum += p[i];
  };
  if (const auto* docs = std::get_if<engine::DocumentsView>(&chunk)) {
    for (const auto& d : docs->documents) {
      bytes(d.name.data(), d.name.size());
      bytes(d.text.data(), d.text.size());
    }
  } else if (const auto* numbers = std::get_if<engine::NumbersView>(&chunk)) {
    bytes(numbers->values.data(), numbers->values.size_bytes());
  } else {
    const auto& pair = std::get<engine::MatrixPairView>(chunk);
    bytes(pair.a.values.data(), pair.a.values.size_bytes());
    bytes(pair.b.values.data(), pair.b.values.size_bytes());
  }
  return sum;
}

/// A map task that carries its bytes inline, encoded again against those bytes.
std::string reencode(const server::MapTask& task) {
  const auto chunk = server::chunk_view(task, task.inline_bytes.data());
  return server::encode_map_task(task.job, chunk, task.inline_bytes, false,
                                 task.result_in_file ? std::optional(task.result) : std::nullopt);
}

/// Largest result range written here: the fuzzer's bytes cannot ask for more memory than this.
constexpr std::uint64_t kMaxFuzzedResultBytes = 1 << 20;

void map_task(std::string_view body) {
  refused_or_done([&] {
    const auto task = server::decode_map_task(body);
    if (task.in_file) return;  // its bytes are in a memory file that only a worker is sent
    // A worker reads its chunk through these views: every one must lie inside the message.
    const auto chunk = server::chunk_view(task, task.inline_bytes.data());
    touch(chunk);
    if (task.result_in_file && task.result.size <= kMaxFuzzedResultBytes) {
      // As a worker writes its rows of C (aligned, as the result file's rows are): the block's
      // exact size or a JobError, never a write past the range.
      std::vector<double> rows(task.result.size / sizeof(double) + 1);
      refused_or_done([&] {
        engine::multiply_into(chunk, reinterpret_cast<char*>(rows.data()), task.result.size);
      });
    }
    // Encoded again against its own bytes, a task is tight (its span is what its ranges read,
    // starting at 0), and a tight task comes back byte for byte. (Bytes, not values: NaN.)
    const auto tight = reencode(server::decode_map_task(reencode(task)));
    FUZZ_CHECK(reencode(server::decode_map_task(tight)) == tight,
               "a tight map task re-encodes to itself");
  });
}

void reduce_task(std::string_view body) {
  refused_or_done([&] {
    const auto task = server::decode_reduce_task(body);
    std::vector<const std::string*> pieces;
    for (const auto& piece : task.pieces)
      pieces.push_back(&piece);
    FUZZ_CHECK(server::encode_reduce_task(task.job, pieces) == body,
               "encode_reduce_task(decode_reduce_task(body)) == body");
  });
}

void pieces(std::string_view body) {
  refused_or_done([&] {
    const auto decoded = server::decode_pieces(body);
    FUZZ_CHECK(server::encode_pieces(decoded) == body,
               "encode_pieces(decode_pieces(body)) == body");
  });
}

void message_body(const server::TaskMessage& message);

/// A batch's body: its messages, each through its own decoder; and it encodes back byte for byte.
void batch(std::string_view body) {
  refused_or_done([&] {
    const auto messages = server::decode_batch(body);
    std::vector<std::pair<server::TaskMessageType, std::string>> again;
    for (const auto& each : messages) {
      FUZZ_CHECK(each.type != server::TaskMessageType::kBatch &&
                     each.type != server::TaskMessageType::kBatchDone,
                 "no batch inside a batch");
      again.emplace_back(each.type, std::string(each.body));
      message_body(server::TaskMessage{each.type, std::string(each.body), {}});
    }
    FUZZ_CHECK(server::encode_batch(again) == body, "encode_batch(decode_batch(body)) == body");
  });
}

/// A message's body, through the decoder its receiver uses.
void message_body(const server::TaskMessage& message) {
  switch (message.type) {
    case server::TaskMessageType::kMap:
    case server::TaskMessageType::kMapReduce: return map_task(message.body);
    case server::TaskMessageType::kReduce: return reduce_task(message.body);
    // A reduce task's answer is a partition only its job can read; pieces is the common case.
    case server::TaskMessageType::kDone: return pieces(message.body);
    case server::TaskMessageType::kError:
    case server::TaskMessageType::kOutOfMemory: return;  // text, taken as it is
    case server::TaskMessageType::kBatch:
    case server::TaskMessageType::kBatchDone: return batch(message.body);
  }
}

/// Reads messages, as the other end of a pipe would, until the stream ends or breaks a rule.
void pipe_stream(std::string_view bytes) {
  // A memfd rather than a pipe: it holds any amount without a second thread, and reads past its
  // end return 0 (EOF) just as a pipe whose writer has closed.
  const int fd = memfd_create("task_messages", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "memfd_create");
  FUZZ_CHECK(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()),
             "write to the memfd");
  FUZZ_CHECK(::lseek(fd, 0, SEEK_SET) == 0, "rewind the memfd");
  std::size_t read = 0;
  while (const auto message = server::read_task_message(fd)) {
    const auto type = static_cast<std::uint8_t>(message->type);
    FUZZ_CHECK(type >= static_cast<std::uint8_t>(server::TaskMessageType::kMap) &&
                   type <= static_cast<std::uint8_t>(server::TaskMessageType::kBatchDone),
               "only defined message types are handed out");
    read += 9 + message->body.size();
    FUZZ_CHECK(read <= bytes.size(), "a message is no longer than the bytes it came from");
    message_body(*message);
  }
  ::close(fd);
}

/// The result must be sendable: encoding it must work (the server encodes every result).
void encode_result(const protocol::JobResult& result) {
  const std::string body = protocol::encode(result);
  FUZZ_CHECK(!body.empty(), "a result's encoding holds at least its kind byte");
}

/// reduce() and assemble() of one job kind over pieces from elsewhere.
void job_pieces(const engine::JobKind& kind, std::string_view body) {
  std::vector<std::string> input;
  if (!refused_or_done([&] { input = server::decode_pieces(body); })) return;

  std::string reduced;
  if (kind.has_reduce() && refused_or_done([&] { reduced = kind.reduce(input); })) {
    // Whatever reduce() accepts, it turns into a partition that it and assemble() accept: a
    // reduce task's answer is not checked again before assemble().
    std::string again;
    FUZZ_CHECK(refused_or_done([&] { again = kind.reduce({reduced}); }),
               "reduce() reads its own output");
    FUZZ_CHECK(again == reduced, "reducing one reduced partition changes nothing");
    protocol::JobResult result;
    FUZZ_CHECK(refused_or_done([&] { result = kind.assemble({reduced}); }),
               "assemble() reads reduce()'s output");
    // Compared as bytes: a result of no numbers is all NaN, which equals nothing, not even itself.
    FUZZ_CHECK(mrd::fuzz::check_round_trip<protocol::JobResult>(protocol::encode(result)),
               "a result assembled from a reduced partition decodes");
    std::string encoded;
    FUZZ_CHECK(refused_or_done([&] { encoded = kind.assemble_encoded({reduced}); }),
               "assemble_encoded() reads reduce()'s output");
    FUZZ_CHECK(encoded == protocol::encode(result),
               "assemble_encoded() gives the encoding of what assemble() gives");
  }
  // The same pieces as partitions (for matmul, as map outputs: it has no reduce step). The server
  // calls assemble_encoded(); it must refuse or accept them as assemble() does, and agree.
  protocol::JobResult result;
  const bool assembled = refused_or_done([&] { result = kind.assemble(input); });
  if (assembled) encode_result(result);
  std::string encoded;
  const bool encoded_ok =
      refused_or_done([&] { encoded = kind.assemble_encoded(std::move(input)); });
  FUZZ_CHECK(encoded_ok == assembled, "assemble_encoded() refuses what assemble() refuses");
  if (assembled && encoded_ok) {
    FUZZ_CHECK(encoded == protocol::encode(result),
               "assemble_encoded() gives the encoding of what assemble() gives");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const auto& kinds = engine::all_job_kinds();
  const std::size_t choice = data[0] % (4 + kinds.size());
  const std::string_view body = mrd::fuzz::bytes_of(data + 1, size - 1);
  switch (choice) {
    case 0: map_task(body); break;
    case 1: reduce_task(body); break;
    case 2: pieces(body); break;
    case 3: pipe_stream(body); break;
    default: job_pieces(*kinds[choice - 4], body); break;
  }
  return 0;
}
