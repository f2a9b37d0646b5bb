// Writes the seed corpus of every fuzz target: a few small valid inputs each, made with the real
// codec and engine so that they stay right after a wire change. Usage:
//
//   build-fuzz/make_corpus tests/fuzz/corpus
//
// A fuzzer starting from valid inputs gets past the length prefixes and kind bytes at once instead
// of having to guess them. The layouts below are the ones each target's file comment describes.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "protocol/codec.hpp"
#include "server/engine/job_kind.hpp"
#include "server/pool/task_message.hpp"
#include "tests/protocol_examples.hpp"

namespace {

namespace fs = std::filesystem;
namespace engine = mrd::engine;
namespace server = mrd::server;
using namespace mrd::protocol;

fs::path g_root;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string byte(unsigned value) {
  return std::string(1, static_cast<char>(value));
}

/// The example SUBMITs of docs/protocol.md, and one of each other job with options set.
std::vector<std::pair<std::string, SubmitRequest>> submits() {
  const Documents text{{{"a.txt", "to be or not to be"}, {"b.txt", "To see, or not to see."}}};
  return {
      {"words", {"words", "sum", {0, 0}, Documents{{{"a.txt", "to be or not to be"}}}}},
      {"bigrams-chunked", {"bigrams", "sum", {6, 3, 0, 0}, text, "key-1"}},
      {"index-chunked", {"index", "postings", {5, 2, 0, 0}, text}},
      {"stats", {"numbers", "stats", {0, 0}, Numbers{{1.5, 2.5}}}},
      {"stats-chunked", {"numbers", "stats", {16, 2, 0, 0}, Numbers{{3, -1, 3, 0.5, -0.0, 2}}}},
      {"matmul", {"matmul", "rows", {0, 0}, MatrixPair{{1, 2, {1, 2}}, {2, 1, {3, 4}}}}},
      {"matmul-chunked",
       {"matmul",
        "rows",
        {16, 0, 0, 0},
        MatrixPair{{3, 2, {1, 2, 3, 4, 5, 6}}, {2, 2, {1, 0, 0, 1}}}}},
      {"matmul-inner-0", {"matmul", "rows", {0, 0}, MatrixPair{{3, 0, {}}, {0, 2, {}}}}},
  };
}

/// The frames of docs/protocol.md's examples, requests and replies apart.
void frame_parser_corpus() {
  std::string requests, replies;
  for (const auto& example : mrd::examples::all_examples()) {
    const bool request = example.name.ends_with("-request");
    (request ? requests : replies) += example.bytes;
  }
  // byte 0: bit 0 side, bits 1-2 limit, bits 3-5 largest piece; byte 1: seed for piece sizes.
  const auto settings = [](unsigned side, unsigned limit, unsigned piece) {
    return byte(side | limit << 1 | piece << 3);
  };
  write("frame_parser_fuzz", "requests-whole", settings(0, 0, 7) + byte(0) + requests);
  write("frame_parser_fuzz", "requests-byte-by-byte", settings(0, 0, 0) + byte(0) + requests);
  write("frame_parser_fuzz", "requests-in-pieces", settings(0, 0, 4) + byte(42) + requests);
  write("frame_parser_fuzz", "requests-submit-too-large", settings(0, 2, 3) + byte(1) + requests);
  write("frame_parser_fuzz", "replies-in-pieces", settings(1, 0, 5) + byte(9) + replies);
  write("frame_parser_fuzz", "replies-too-large", settings(1, 3, 2) + byte(3) + replies);
}

void request_body_corpus() {
  for (const auto& [name, request] : submits())
    write("request_body_fuzz", "submit-" + name, byte(0) + encode(request));
  write("request_body_fuzz", "job-id", byte(1) + encode(JobId{7}));
  write("request_body_fuzz", "hello", byte(2) + encode(Hello{1, ""}));
  write("request_body_fuzz", "auth", byte(3) + encode(AuthRequest{"s3cret"}));
  write("request_body_fuzz", "list-options", byte(4) + encode(ListRequest{kListWithTenants}));
  write("request_body_fuzz", "status-options",
        byte(5) + encode(StatusRequest{7, kStatusWithDetails}));
  write("request_body_fuzz", "stats-options", byte(6) + encode(StatsRequest{kStatsWithDetails}));
}

void reply_body_corpus() {
  const auto job_result = [](const JobResult& result) { return byte(0) + encode(result); };
  write("reply_body_fuzz", "result-counts",
        job_result(Counts{{{"be", 2}, {"to", 2}, {"not", 1}, {"or", 1}}}));
  write("reply_body_fuzz", "result-postings",
        job_result(Postings{{{"be", {"a.txt", "b.txt"}}, {"or", {"a.txt"}}}}));
  write("reply_body_fuzz", "result-matrix", job_result(Matrix{2, 1, {11, -0.5}}));
  write("reply_body_fuzz", "result-statistics", job_result(Statistics{2, 2.0, 2.0, 1.5, 1.5, 2.5}));
  write("reply_body_fuzz", "progress",
        byte(1) + encode(JobProgress{7, JobState::kMapping, 1, 4, 0, 2}));
  write("reply_body_fuzz", "list",
        byte(2) + encode(JobList{{{7, JobState::kDone}, {8, JobState::kQueued}}}));
  write("reply_body_fuzz", "stats",
        byte(3) + encode(ServerStats{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}));
  write("reply_body_fuzz", "error", byte(4) + encode(ErrorMessage{"no job 9"}));
  write("reply_body_fuzz", "hello", byte(5) + encode(Hello{1, "mrd 0.1.0"}));
  write("reply_body_fuzz", "job-id", byte(6) + encode(JobId{7}));
  write("reply_body_fuzz", "hello-v2", byte(7) + encode(HelloReply{2, "mrd 0.1.0", 1}));
  write("reply_body_fuzz", "auth", byte(8) + encode(AuthReply{"alice", Role::kAdmin}));
  write(
      "reply_body_fuzz", "list-tenants",
      byte(9) + encode(TenantJobList{{{7, JobState::kDone, "alice"}, {8, JobState::kQueued, ""}}}));
  write("reply_body_fuzz", "details", byte(10) + encode(mrd::examples::job_details_example()));
  write("reply_body_fuzz", "detailed-stats",
        byte(11) + encode(DetailedStats{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
                                        1,
                                        3,
                                        {{{100, 2}, {UINT64_MAX, 3}}, 460},
                                        {{{UINT64_MAX, 1}}, 600}}));
}

/// What write_task_message puts on a pipe, read back from a memfd.
std::string task_messages(const std::vector<std::pair<server::TaskMessageType, std::string>>& all) {
  const int fd = memfd_create("seed", MFD_CLOEXEC);
  for (const auto& [type, body] : all)
    server::write_task_message(fd, type, body);
  std::string bytes(static_cast<std::size_t>(lseek(fd, 0, SEEK_CUR)), '\0');
  pread(fd, bytes.data(), bytes.size(), 0);
  close(fd);
  return bytes;
}

void task_message_corpus() {
  const auto& kinds = engine::all_job_kinds();
  const std::string_view input = "a.txt to be or not";
  const std::string map_task = server::encode_map_task(
      {"words", "sum", 2, 512}, engine::DocumentsView{{{input.substr(0, 5), input.substr(6)}}},
      input, false);
  const std::string piece_one = "piece one", piece_two = "piece two";
  const std::string reduce_task =
      server::encode_reduce_task({"words", "sum", 1, 0}, {&piece_one, &piece_two});
  const std::string pieces = server::encode_pieces({"first", "", "third"});
  // A product's task that writes its 2 x 1 block of C into the result file at bytes 32 to 48.
  const double values[] = {1, 2, 3, 4, 5, 6};
  const std::string_view matrices(reinterpret_cast<const char*>(values), sizeof values);
  const std::span<const double> all(values);
  const std::string product_task = server::encode_map_task(
      {"matmul", "rows", 1, 0},
      engine::MatrixPairView{{2, 2, all.subspan(0, 4)}, {2, 1, all.subspan(4, 2)}}, matrices, false,
      ByteRange{32, 16});
  write("task_message_fuzz", "map-task", byte(0) + map_task);
  write("task_message_fuzz", "map-task-result-in-file", byte(0) + product_task);
  write("task_message_fuzz", "reduce-task", byte(1) + reduce_task);
  write("task_message_fuzz", "pieces", byte(2) + pieces);
  write("task_message_fuzz", "pipe",
        byte(3) + task_messages({{server::TaskMessageType::kMap, map_task},
                                 {server::TaskMessageType::kDone, pieces},
                                 {server::TaskMessageType::kError, "refused"}}));
  write("task_message_fuzz", "pipe-batch",
        byte(3) + task_messages(
                      {{server::TaskMessageType::kBatch,
                        server::encode_batch({{server::TaskMessageType::kMapReduce, map_task},
                                              {server::TaskMessageType::kMapReduce, map_task}})},
                       {server::TaskMessageType::kBatchDone,
                        server::encode_batch({{server::TaskMessageType::kDone, pieces},
                                              {server::TaskMessageType::kError, "refused"}})}}));

  // For each job kind, the pieces its own map writes for partition 0 of two chunks (for matmul,
  // its only piece), and the partition its reduce makes of them.
  for (const auto& [name, request] : submits()) {
    const engine::JobKind* kind = engine::find_job_kind(request.mapper, request.reducer);
    std::size_t index = 0;
    while (kinds[index] != kind)
      ++index;
    const auto chunks = kind->split(engine::view_of(request.input), 8);
    std::vector<std::string> pieces_of_partition_0;
    for (std::size_t c = 0; c < chunks.size() && c < 2; ++c)
      pieces_of_partition_0.push_back(kind->map(chunks[c], 2).front());
    write("task_message_fuzz", "pieces-" + name,
          byte(4 + index) + server::encode_pieces(pieces_of_partition_0));
    if (kind->has_reduce()) {
      write("task_message_fuzz", "partition-" + name,
            byte(4 + index) + server::encode_pieces({kind->reduce(pieces_of_partition_0)}));
    }
  }
}

void job_pipeline_corpus() {
  for (const auto& [name, request] : submits())
    write("job_pipeline_fuzz", name, encode(request));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  frame_parser_corpus();
  request_body_corpus();
  reply_body_corpus();
  task_message_corpus();
  job_pipeline_corpus();
  return 0;
}
