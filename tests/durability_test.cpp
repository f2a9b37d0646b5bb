// mrd --data-dir: the real server SIGKILLed and started again loses nothing it acknowledged.
#include <gtest/gtest.h>

#include "raw_jobs.hpp"

namespace mrd::testing {
namespace {

std::vector<std::string> with_data_dir(const TempDir& dir, std::vector<std::string> args = {}) {
  args.push_back("--data-dir");
  args.push_back((dir.path() / "data").string());
  return args;
}

protocol::SubmitRequest keyed(protocol::SubmitRequest request, const std::string& key) {
  request.idempotency_key = key;
  return request;
}

std::uint64_t jobs_submitted(RawClient& client) {
  client.send(bytes({0x05, 0, 0, 0, 0}));
  return protocol::decode<protocol::ServerStats>(client.read_reply()->body)
      .value.value()
      .jobs_submitted;
}

TEST(Durability, FinishedResultsAreServedAgainAfterSigkill) {
  TempDir dir;
  std::vector<std::uint32_t> ids;
  std::vector<std::string> texts{"one two two", "three three three", random_text(5000, 1)};
  {
    ServerProcess server(with_data_dir(dir));
    RawClient client(server.port());
    for (const auto& text : texts)
      ids.push_back(submit(client, word_count_request({text})));
    for (auto id : ids)
      ASSERT_EQ(wait_for(client, id).status, kOk);
    server.stop(SIGKILL);
  }
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    client.send_message(Opcode::kFetch, protocol::JobId{ids[i]});
    const auto reply = client.read_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(as_map(result_of(*reply)), reference_word_count({texts[i]})) << "job " << ids[i];
  }
  // Ids go on from where they were.
  EXPECT_EQ(submit(client, word_count_request({"next"})), ids.back() + 1);
}

TEST(Durability, AcknowledgedUnfinishedJobsRunAgainAfterSigkill) {
  TempDir dir;
  const auto args = with_data_dir(dir, {"--enable-test-jobs", "--workers", "1"});
  std::uint32_t slow = 0;
  std::vector<std::uint32_t> queued;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    // A job that takes a while, and others queued behind it on the only worker.
    slow = submit(client, {"test-slow", "sum", {}, protocol::Documents{{{"1500", "slow job"}}}});
    for (int i = 0; i < 5; ++i) {
      queued.push_back(submit(client, word_count_request({"queued " + std::to_string(i)})));
    }
    std::this_thread::sleep_for(200ms);
    client.send_message(Opcode::kStatus, protocol::JobId{queued.back()});
    const auto progress = protocol::decode<protocol::JobProgress>(client.read_reply()->body);
    ASSERT_FALSE(protocol::is_finished(progress.value->state)) << "too late to test anything";
    server.stop(SIGKILL);
  }
  ServerProcess server(args);
  RawClient client(server.port());
  EXPECT_EQ(as_map(result_of(wait_for(client, slow))).at("slow"), 1u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(as_map(result_of(wait_for(client, queued[i]))).at(std::to_string(i)), 1u);
  }
}

TEST(Durability, FailedAndCancelledJobsStaySoAfterARestart) {
  TempDir dir;
  const auto args = with_data_dir(dir, {"--enable-test-jobs"});
  std::uint32_t crashed = 0, cancelled = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    crashed = submit(client, {"test-crash", "sum", {}, protocol::Documents{{{"d", "x"}}}});
    cancelled = submit(client, word_count_request({"cancel me"}));
    wait_for(client, cancelled);
    client.send_message(Opcode::kCancel, protocol::JobId{cancelled});
    ASSERT_EQ(client.read_reply()->status, kOk);
    ASSERT_EQ(status_name(wait_for(client, crashed).status), "job-crashed");
    server.stop(SIGKILL);
  }
  ServerProcess server(args);
  RawClient client(server.port());
  const auto reply = wait_for(client, crashed);
  EXPECT_EQ(status_name(reply.status), "job-crashed");
  EXPECT_NE(error_text(reply).find("signal 11"), std::string::npos) << error_text(reply);
  EXPECT_EQ(status_name(wait_for(client, cancelled).status), "job-cancelled");
}

TEST(Durability, TheSameIdempotencyKeyGetsTheSameJobAlsoAfterARestart) {
  TempDir dir;
  std::uint32_t first = 0;
  {
    ServerProcess server(with_data_dir(dir));
    RawClient client(server.port());
    first = submit(client, keyed(word_count_request({"once only"}), "key-1"));
    EXPECT_EQ(submit(client, keyed(word_count_request({"once only"}), "key-1")), first);
    EXPECT_NE(submit(client, keyed(word_count_request({"other"}), "key-2")), first);
    EXPECT_EQ(jobs_submitted(client), 2u);
    server.stop(SIGKILL);
  }
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  EXPECT_EQ(submit(client, keyed(word_count_request({"once only"}), "key-1")), first);
  EXPECT_EQ(jobs_submitted(client), 0u) << "the resent SUBMIT started a job";
  EXPECT_EQ(as_map(result_of(wait_for(client, first))).at("once"), 1u);
}

TEST(Durability, IdempotencyKeysWorkInMemoryToo) {
  ServerProcess server;
  RawClient client(server.port());
  const auto first = submit(client, keyed(word_count_request({"a"}), "k"));
  EXPECT_EQ(submit(client, keyed(word_count_request({"a"}), "k")), first);
  EXPECT_NE(submit(client, word_count_request({"a"})), first);  // no key: a new job each time
  EXPECT_NE(submit(client, word_count_request({"a"})), first);
}

TEST(Durability, IdsAreNeverReusedEvenWhenEveryRowWasEvicted) {
  TempDir dir;
  const auto args = with_data_dir(dir, {"--max-retained-mib", "1"});
  std::uint32_t last = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    // Each result is ~0.7 MB: every job evicts the one before.
    for (int i = 0; i < 3; ++i) {
      last = submit(client, word_count_request({random_text(200000, 20 + i, 40000)}));
      ASSERT_EQ(wait_for(client, last).status, kOk);
    }
    server.stop(SIGKILL);
  }
  ServerProcess server(args);
  RawClient client(server.port());
  client.send_message(Opcode::kFetch, protocol::JobId{1});
  EXPECT_EQ(status_name(client.read_reply()->status), "job-expired");
  EXPECT_GT(submit(client, word_count_request({"new"})), last);
}

TEST(Durability, WithoutADataDirectoryARestartForgetsEverything) {
  std::uint32_t id = 0;
  {
    ServerProcess server;
    RawClient client(server.port());
    id = submit(client, word_count_request({"gone"}));
    wait_for(client, id);
    server.stop(SIGKILL);
  }
  ServerProcess server;
  RawClient client(server.port());
  client.send_message(Opcode::kFetch, protocol::JobId{id});
  EXPECT_EQ(status_name(client.read_reply()->status), "unknown-job");
}

TEST(Durability, AnUnusableDataDirectoryIsAStartUpError) {
  TempDir dir;
  const auto file = dir.path() / "not-a-directory";
  std::ofstream(file) << "x";
  EXPECT_THROW(ServerProcess({"--data-dir", file.string()}), std::runtime_error);
}

}  // namespace
}  // namespace mrd::testing
