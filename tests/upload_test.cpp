// Big SUBMITs received straight into their memory file (server/submit_upload.hpp), through the
// real binary: the file grows with what arrives, a SUBMIT that never completes leaves nothing,
// a bad body is refused like any other, and values line up whatever comes before them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <random>

#include "protocol/limits.hpp"
#include "raw_jobs.hpp"
#include "server_process.hpp"

namespace mrd::testing {
namespace {

using namespace std::chrono_literals;
using protocol::Opcode;
using protocol::Status;

constexpr ProcessLimits kCapped{.address_space_mib = 4096};

/// Waits until `pid` holds exactly one input file of `low` to `high` bytes; false after 10 s.
bool holds_one_input_file(pid_t pid, std::uint64_t low, std::uint64_t high) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    const auto sizes = input_file_sizes(pid);
    if (sizes.size() == 1 && sizes[0] >= low && sizes[0] <= high) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
}

/// Waits until `pid` holds no input file; false after 10 s.
bool holds_no_input_file(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!input_file_sizes(pid).empty()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// Waits until the server has `fds` descriptors open (a connection it closed may take a moment
/// to go); returns how many it has.
std::size_t settled_fds(const ServerProcess& server, std::size_t fds) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server.open_fds() != fds && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  return server.open_fds();
}

std::string submit_frame(const protocol::SubmitRequest& request) {
  std::string frame;
  protocol::append_message(frame, static_cast<std::uint8_t>(Opcode::kSubmit), request);
  return frame;
}

/// A SUBMIT frame whose header announces `body_bytes` but whose body is `body` (its start).
std::string lying_frame(std::string_view body, std::uint32_t body_bytes) {
  std::string frame;
  protocol::append_header(frame, static_cast<std::uint8_t>(Opcode::kSubmit), body_bytes);
  frame += body;
  return frame;
}

TEST(Upload, ABigSubmitGoesIntoAMemoryFileThatGrowsWithWhatArrives) {
  ServerProcess server({"--workers", "2"}, kCapped);
  RawClient client(server.port());
  const std::vector<std::string> texts = {random_text(200000, 11), random_text(100, 12)};
  const auto frame = submit_frame(word_count_request(texts));
  ASSERT_GT(frame.size(), 1u << 20);

  // Half of it: the server holds it in a memory file of about that size (the body after at most
  // 7 bytes of padding), not in a buffer the size the header announced.
  const auto half = frame.size() / 2;
  client.send(std::string_view(frame).substr(0, half));
  const auto body_so_far = half - protocol::kHeaderBytes;
  EXPECT_TRUE(holds_one_input_file(server.pid(), body_so_far, body_so_far + 7));

  // The rest, in uneven pieces: one job, the right counts.
  std::mt19937 rng(3);
  for (std::size_t at = half; at < frame.size();) {
    const auto n = std::min<std::size_t>(frame.size() - at, 1 + rng() % 20000);
    client.send(std::string_view(frame).substr(at, n));
    at += n;
  }
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  ASSERT_EQ(status_name(reply->status), "ok") << error_text(*reply);
  const auto id = protocol::decode<protocol::JobId>(reply->body).value->id;
  EXPECT_EQ(as_map(result_of(wait_for(client, id))), reference_word_count(texts));
  EXPECT_TRUE(holds_no_input_file(server.pid())) << "a finished job's input stays";
}

TEST(Upload, ASubmitThatNeverCompletesLeavesNoTrace) {
  ServerProcess server({"--workers", "1", "--request-timeout", "1"}, kCapped);
  RawClient other(server.port());
  ASSERT_EQ(server_stats(other).jobs_submitted, 0u);
  const auto fds_before = server.open_fds();
  const auto body = protocol::encode(word_count_request({random_text(100000, 5)}));
  const auto sent = std::string_view(body).substr(0, body.size() / 2);

  // A header that announces 300 MiB: the file holds what came, not what was announced.
  {
    RawClient liar(server.port());
    liar.send(lying_frame(sent, 300u << 20));
    EXPECT_TRUE(holds_one_input_file(server.pid(), sent.size(), sent.size() + 7));
  }  // and leaves with it
  EXPECT_TRUE(holds_no_input_file(server.pid()));

  // A sender that stops halfway is closed by the request timeout, and its file goes.
  RawClient slow(server.port());
  slow.send(lying_frame(sent, static_cast<std::uint32_t>(body.size())));
  EXPECT_TRUE(holds_one_input_file(server.pid(), sent.size(), sent.size() + 7));
  EXPECT_TRUE(slow.closed_by_server(30s));
  EXPECT_TRUE(holds_no_input_file(server.pid()));

  const auto stats = server_stats(other);
  EXPECT_EQ(stats.jobs_submitted, 0u);
  EXPECT_EQ(settled_fds(server, fds_before), fds_before);
  const auto id = submit(other, word_count_request({"still served"}));
  EXPECT_EQ(as_map(result_of(wait_for(other, id))).size(), 2u);
}

TEST(Upload, ABadBodyIsRefusedAndTheConnectionGoesOn) {
  ServerProcess server({"--workers", "1"}, kCapped);
  RawClient client(server.port());
  auto body = protocol::encode(word_count_request({random_text(30000, 9)}));
  body += "trailing";  // a valid start, bytes the input does not account for at the end
  client.send(lying_frame(body, static_cast<std::uint32_t>(body.size())));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-request");
  EXPECT_EQ(error_text(*reply), "submit: " + protocol::decode<protocol::SubmitRequest>(body).error);
  EXPECT_TRUE(holds_no_input_file(server.pid()));
  const auto id = submit(client, word_count_request({"next request"}));
  EXPECT_EQ(as_map(result_of(wait_for(client, id))).size(), 2u);
}

/// Waits until the server's log holds `text`; false after 30 s.
bool logged(const ServerProcess& server, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (server.log().find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// How many map tasks of job `id` the log says started while its input arrived (-1: no line).
int early_maps_of(const ServerProcess& server, std::uint32_t id) {
  const auto log = server.log();
  const auto line = log.find("job " + std::to_string(id) + ": ");
  const std::string tail = " map tasks started while its input arrived";
  if (line == std::string::npos || log.find(tail, line) == std::string::npos) return -1;
  return std::stoi(log.substr(line + 5 + std::to_string(id).size() + 1));
}

TEST(Upload, MapsStartWhileTheSubmitArrivesAndTheResultIsTheSame) {
  ServerProcess server({"--workers", "2"}, kCapped);
  RawClient client(server.port());
  const std::vector<std::string> texts = {random_text(400000, 21), random_text(1000, 22)};
  const auto frame = submit_frame(word_count_request(texts));
  // Three quarters of it: chunks of those bytes are handed to the workers before the rest comes.
  const auto part = frame.size() * 3 / 4;
  client.send(std::string_view(frame).substr(0, part));
  ASSERT_TRUE(logged(server, "an arriving SUBMIT's first map task is ready")) << server.log();
  client.send(std::string_view(frame).substr(part));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  ASSERT_EQ(status_name(reply->status), "ok") << error_text(*reply);
  const auto id = protocol::decode<protocol::JobId>(reply->body).value->id;
  EXPECT_EQ(as_map(result_of(wait_for(client, id))), reference_word_count(texts));
  EXPECT_GE(early_maps_of(server, id), 1) << server.log();
  EXPECT_TRUE(holds_no_input_file(server.pid()));
}

TEST(Upload, ASubmitThatNeverBecomesAJobStopsTheMapsItStarted) {
  ServerProcess server({"--workers", "2", "--enable-test-jobs"}, kCapped);
  RawClient other(server.port());
  // Maps that would never end (test-hang) start while the body arrives; then the sender goes.
  auto hanging = word_count_request({random_text(300000, 23)});
  hanging.mapper = "test-hang";
  const auto frame = submit_frame(hanging);
  {
    RawClient sender(server.port());
    sender.send(std::string_view(frame).substr(0, frame.size() / 2));
    ASSERT_TRUE(logged(server, "an arriving SUBMIT's first map task is ready")) << server.log();
  }
  EXPECT_TRUE(logged(server, "an arriving SUBMIT will not be a job: its early maps stop"));
  EXPECT_TRUE(holds_no_input_file(server.pid()));
  // A body that arrives whole but does not decode stops them too: BAD_REQUEST, no job.
  auto body = protocol::encode(word_count_request({random_text(300000, 24)}));
  body += "trailing";
  other.send(lying_frame(body, static_cast<std::uint32_t>(body.size())));
  const auto reply = other.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-request");
  EXPECT_EQ(server_stats(other).jobs_submitted, 0u);
  // Their workers were replaced and serve the next job.
  const std::vector<std::string> texts = {random_text(30000, 25)};
  EXPECT_EQ(as_map(result_of(wait_for(other, submit(other, word_count_request(texts))))),
            reference_word_count(texts));
  EXPECT_EQ(server.worker_pids().size(), 2u);
  EXPECT_TRUE(holds_no_input_file(server.pid()));
}

TEST(Upload, NumbersAndMatricesLineUpWhateverComesBeforeThem) {
  ServerProcess server({"--workers", "2"}, kCapped);
  RawClient client(server.port());
  // Keys of 0 to 8 bytes put the values at every offset modulo 8 of the body.
  std::vector<double> numbers(20000);
  for (std::size_t i = 0; i < numbers.size(); ++i)
    numbers[i] = static_cast<double>(i % 1000) + 0.5;
  const std::uint64_t n = 100;
  protocol::Matrix a{n, n, std::vector<double>(n * n)};
  protocol::Matrix b{n, n, std::vector<double>(n * n)};
  for (std::uint64_t i = 0; i < n * n; ++i) {
    a.values[i] = static_cast<double>(i % 7);
    b.values[i] = static_cast<double>(i % 5) - 2;
  }
  std::vector<double> product(n * n, 0.0);
  for (std::uint64_t i = 0; i < n; ++i)
    for (std::uint64_t k = 0; k < n; ++k)
      for (std::uint64_t j = 0; j < n; ++j)
        product[i * n + j] += a.values[i * n + k] * b.values[k * n + j];

  for (std::size_t key = 0; key <= 8; ++key) {
    const std::string idempotency_key(key, 'k');
    const protocol::SubmitRequest stats{
        "numbers", "stats", {}, protocol::Numbers{numbers}, idempotency_key};
    const auto sum =
        std::get<protocol::Statistics>(result_of(wait_for(client, submit(client, stats))));
    EXPECT_EQ(sum.count, numbers.size()) << "key of " << key << " bytes";
    EXPECT_EQ(sum.min, 0.5);
    EXPECT_EQ(sum.max, 999.5);
    const protocol::SubmitRequest matmul{
        "matmul", "rows", {}, protocol::MatrixPair{a, b}, idempotency_key + "m"};
    const auto c = std::get<protocol::Matrix>(result_of(wait_for(client, submit(client, matmul))));
    EXPECT_EQ(c.values, product) << "key of " << key << " bytes";
  }
}

TEST(Upload, AnUploadThatOutgrowsTheBudgetIsRefusedAndOthersAreServed) {
  ServerProcess server({"--workers", "1", "--max-memory-mib", "64"}, kCapped);
  RawClient other(server.port());
  ASSERT_EQ(server_stats(other).jobs_submitted, 0u);  // connected: its socket is counted
  const auto fds_before = server.open_fds();
  std::string text(70u << 20, 'w');
  for (std::size_t i = 5; i < text.size(); i += 6)
    text[i] = ' ';
  const auto body = protocol::encode(word_count_request({text}));
  ASSERT_GT(body.size(), 64u << 20);
  RawClient big(server.port());
  try {
    big.send(lying_frame(body, static_cast<std::uint32_t>(body.size())));
  } catch (const std::exception&) {
    // the server may close before the last bytes are sent: its reply is what counts
  }
  // Its reply, if the close did not discard it, says why; either way the connection is closed.
  if (const auto reply = big.read_reply(30s)) {
    EXPECT_EQ(status_name(reply->status), "server-busy") << error_text(*reply);
  }
  EXPECT_TRUE(big.closed_by_server());
  EXPECT_TRUE(holds_no_input_file(server.pid()));
  EXPECT_EQ(settled_fds(server, fds_before), fds_before);
  const auto id = submit(other, word_count_request({"still served"}));
  EXPECT_EQ(as_map(result_of(wait_for(other, id))).size(), 2u);
}

}  // namespace
}  // namespace mrd::testing
