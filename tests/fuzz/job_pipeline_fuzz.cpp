// Fuzz target: a SUBMIT body through the whole job engine, the way mrd runs a job. The request is
// decoded into offsets and checked, and kept once in a segment (request_handler.cpp,
// submitted_input.hpp); validated and split into chunks, which view the segment
// (dispatcher.cpp); each chunk goes to map and each partition to reduce through the worker
// messages (task_message.hpp), the chunk's bytes inline; the reduced partitions are assembled.
//
// Input: a SUBMIT body, exactly as a client sends it.
//
// A job may be refused only the documented ways: a body that does not decode (BAD_REQUEST), a
// pair or input kind that does not fit (BAD_JOB), input that validate() rejects (JOB_FAILED).
// Once validate() has accepted the input, nothing may throw: every later step reads only what an
// earlier step of the same engine wrote. And MapReduce must not change the answer: the result must
// be, byte for byte, the result of the same job run as one chunk and one partition.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "fuzz_check.hpp"
#include "protocol/codec.hpp"
#include "protocol/submit_layout.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/job_kind.hpp"
#include "server/pool/task_message.hpp"
#include "server/submitted_input.hpp"

namespace {

namespace engine = mrd::engine;
namespace protocol = mrd::protocol;
namespace server = mrd::server;

/// Bounds on one input's work, so that the fuzzer tries many small jobs rather than a few big
/// ones. A request may ask for up to 1024 partitions and 65536 chunks; a bug that needs more than
/// these to show is a bug of scale, for a benchmark to find.
constexpr std::uint32_t kMaxPartitions = 8;
constexpr std::uint64_t kMaxChunks = 32;
/// A matrix product may be far larger than its factors: 0 columns by 0 rows gives up to the
/// engine's 256 MiB of zeros from a 100-byte input, which this target would build, copy and
/// compare several times over, beyond its time limit. The cap itself is tested in tests/
/// (BadInput.AProductFarLargerThanItsFactorsFailsBeforeAllocating); here products stay small.
constexpr std::uint64_t kMaxProductValues = 1u << 16;

/// Runs a step that must not throw; if it does, says which and with what, and stops the run.
template <class Step>
decltype(auto) must_not_throw(const char* what, Step&& step) {
  try {
    return step();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s threw after validate() accepted the input: %s\n", what, e.what());
    std::abort();
  }
}

/// Runs the job in `chunk_bytes` chunks and `partitions` partitions, each task through the
/// messages a worker receives and answers; returns the encoded result.
std::string run(const engine::JobKind& kind, const server::SubmittedInput& kept,
                std::uint64_t chunk_bytes, std::uint32_t partitions) {
  const auto& request = kept.layout();
  const auto chunks =
      must_not_throw("split()", [&] { return kind.split(kept.view(), chunk_bytes); });
  FUZZ_CHECK(!chunks.empty(), "split() gives at least one chunk");

  std::vector<std::vector<std::string>> map_outputs;  // [chunk][partition]
  for (const auto& chunk : chunks) {
    FUZZ_CHECK(chunk.index() == kind.input_kind(), "a chunk is input of the job's kind");
    const auto message = server::encode_map_task(
        {request.mapper, request.reducer, partitions, request.options.memory_limit_mib}, chunk,
        kept.bytes(), false);
    const auto task = server::decode_map_task(message);
    const auto pieces = must_not_throw("map()", [&] {
      return kind.map(server::chunk_view(task, task.inline_bytes.data()), task.job.partitions);
    });
    FUZZ_CHECK(pieces.size() == (kind.has_reduce() ? partitions : 1u),
               "map() gives one piece per partition (one in all without a reduce step)");
    map_outputs.push_back(server::decode_pieces(server::encode_pieces(pieces)));
  }

  std::vector<std::string> parts;
  if (kind.has_reduce()) {
    for (std::uint32_t p = 0; p < partitions; ++p) {
      std::vector<const std::string*> pieces;
      for (const auto& output : map_outputs)
        pieces.push_back(&output[p]);
      const auto received = server::decode_reduce_task(
          server::encode_reduce_task({request.mapper, request.reducer, partitions, 0}, pieces));
      parts.push_back(must_not_throw("reduce()", [&] { return kind.reduce(received.pieces); }));
    }
  } else {
    for (auto& output : map_outputs)
      parts.push_back(std::move(output[0]));
  }
  // As the server does: the encoded result straight from the partitions.
  return must_not_throw("assemble_encoded()",
                        [&] { return kind.assemble_encoded(std::move(parts)); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto body = mrd::fuzz::bytes_of(data, size);
  auto decoded = protocol::decode_submit_layout(body);
  // A big text body's documents are read as it arrives, for maps that start early
  // (early_start.hpp): a body that reader refuses is one the whole decode refuses, and of a valid
  // body it knows the same documents.
  if (const auto head = protocol::submit_head_from_prefix(body);
      head && head->layout.input.kind == 0) {
    protocol::ArrivingDocuments reader(head->input_offset, body.size());
    std::vector<protocol::DocumentLayout> known;
    const std::size_t step = 1 + size % 13;
    bool valid = true;
    for (std::size_t n = 0; valid && n < body.size() + step; n += step)
      valid = reader.read(std::string_view(body).substr(0, std::min(n, body.size())), known);
    FUZZ_CHECK(valid || !decoded, "the arriving reader refuses only bodies the decode refuses");
    FUZZ_CHECK(!decoded || (reader.complete() && known == decoded.value->input.documents),
               "the arriving reader knows the documents the whole decode finds");
  }
  if (!decoded) return 0;  // BAD_REQUEST
  const auto& layout = *decoded.value;
  // A big body is placed in its memory file from its first bytes alone (submit_upload.cpp):
  // they must say what the whole body says.
  const auto from_prefix = protocol::values_offset_from_prefix(body);
  FUZZ_CHECK(from_prefix && *from_prefix == layout.values_offset,
             "the first bytes of a valid body place its values where the whole body does");
  // BAD_JOB (test jobs are not allowed)
  if (!engine::check_submit(layout.mapper, layout.reducer, layout.input.kind).empty()) return 0;
  const engine::JobKind* kind = engine::find_job_kind(layout.mapper, layout.reducer);
  FUZZ_CHECK(kind != nullptr, "check_submit() accepts only pairs find_job_kind() knows");
  const server::SubmittedInput kept(body, std::move(*decoded.value), false);
  const auto& request = kept.layout();
  const engine::InputView& input = kept.view();
  try {
    kind->validate(input);
  } catch (const engine::JobError&) {
    return 0;  // JOB_FAILED, with the reason
  }
  if (const auto* pair = std::get_if<engine::MatrixPairView>(&input);
      pair && pair->a.rows * pair->b.cols > kMaxProductValues)
    return 0;  // a bug of scale, as above

  // As the scheduler chooses, but within this target's bounds. A chunk size of 0 asks the server
  // to choose, which for input this small (under 64 KiB) means a single chunk.
  const std::uint64_t total = engine::input_bytes(input);
  const std::uint64_t requested =
      request.options.chunk_bytes ? request.options.chunk_bytes : std::max<std::uint64_t>(total, 1);
  const std::uint64_t chunk_bytes =
      std::max<std::uint64_t>({requested, (total + kMaxChunks - 1) / kMaxChunks, 1});
  const std::uint32_t partitions =
      std::clamp<std::uint32_t>(request.options.partitions, 1, kMaxPartitions);

  const std::string result = run(*kind, kept, chunk_bytes, partitions);
  FUZZ_CHECK(mrd::fuzz::check_round_trip<protocol::JobResult>(result),
             "the result decodes (as a client will decode it)");
  const std::string whole = run(*kind, kept, std::numeric_limits<std::uint64_t>::max(), 1);
  if (result != whole) {
    std::fprintf(stderr, "chunk_bytes %llu, %u partitions: %zu result bytes; one chunk: %zu\n",
                 static_cast<unsigned long long>(chunk_bytes), partitions, result.size(),
                 whole.size());
  }
  FUZZ_CHECK(result == whole, "chunks and partitions do not change the result");
  return 0;
}
