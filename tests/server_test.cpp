// The real mrd binary on an ephemeral port, spoken to in exact bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <random>
#include <thread>

#include "raw_jobs.hpp"

namespace mrd::testing {
namespace {

TEST(Server, HelloReportsTheProtocolVersion) {
  ServerProcess server;
  RawClient client(server.port());
  client.send(bytes({0x06, 0x0a, 0, 0, 0, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, kOk);
  // A version 1 HELLO gets version 1's reply: the version and the name, no flags.
  const auto hello = protocol::decode<protocol::Hello>(reply->body);
  ASSERT_TRUE(hello) << hello.error;
  EXPECT_EQ(hello.value->protocol_version, 1);
  EXPECT_EQ(hello.value->software.rfind("mrd ", 0), 0u) << hello.value->software;

  // Version 2's adds the flags: no AUTH needed here.
  client.send_message(Opcode::kHello, protocol::Hello{2, ""});
  const auto v2 = client.read_reply();
  ASSERT_TRUE(v2);
  const auto decoded = protocol::decode<protocol::HelloReply>(v2->body);
  ASSERT_TRUE(decoded) << decoded.error;
  EXPECT_EQ(decoded.value->protocol_version, 2);
  EXPECT_EQ(decoded.value->flags, 0);
}

TEST(Server, HelloWithAnotherVersionIsAClearMismatch) {
  ServerProcess server;
  RawClient client(server.port());
  client.send_message(Opcode::kHello, protocol::Hello{99, ""});
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "version-mismatch");
  EXPECT_EQ(error_text(*reply), "this server speaks protocol versions 1 to 4, the client 99");
}

TEST(Server, FetchOfAnUnknownJobIsExactlyTheDocumentedBytes) {
  ServerProcess server;
  RawClient client(server.port());
  client.send(bytes({0x01, 0x04, 0, 0, 0, 0x09, 0, 0, 0}));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  std::string wire;
  protocol::append_frame(wire, reply->status, reply->body);
  EXPECT_EQ(wire, bytes({0x02, 0x10, 0,   0,   0,   0x08, 0,   0,   0,   0,  0,
                         0,    0,    'n', 'o', ' ', 'j',  'o', 'b', ' ', '9'}));
}

TEST(Server, WordCountMatchesTheReference) {
  ServerProcess server({"--workers", "2"});
  RawClient client(server.port());
  const std::vector<std::string> texts{random_text(20000, 1), "Hello, HELLO hello! caf\xc3\xa9 x9",
                                       "", random_text(5000, 2)};
  for (std::uint64_t chunk : {0ull, 1000ull, 64ull << 10}) {
    const auto id = submit(client, word_count_request(texts, chunk));
    EXPECT_EQ(as_map(result_of(wait_for(client, id))), reference_word_count(texts))
        << "chunk " << chunk;
  }
}

TEST(Server, ResultsAreSortedByCountThenKey) {
  ServerProcess server;
  RawClient client(server.port());
  const auto id = submit(client, word_count_request({"b a c b a b d"}));
  const auto counts = std::get<protocol::Counts>(result_of(wait_for(client, id)));
  std::vector<std::pair<std::string, std::uint64_t>> got;
  for (const auto& e : counts.entries)
    got.emplace_back(e.key, e.count);
  EXPECT_EQ(got, (std::vector<std::pair<std::string, std::uint64_t>>{
                     {"b", 3}, {"a", 2}, {"c", 1}, {"d", 1}}));
}

TEST(Server, EveryBuiltInJobRunsThroughTheServer) {
  ServerProcess server;
  RawClient client(server.port());

  auto id =
      submit(client, {"bigrams", "sum", {}, protocol::Documents{{{"a", "to be or not to be"}}}});
  auto bigrams = as_map(result_of(wait_for(client, id)));
  EXPECT_EQ(bigrams, (std::map<std::string, std::uint64_t>{
                         {"to be", 2}, {"be or", 1}, {"or not", 1}, {"not to", 1}}));

  id = submit(client, {"index",
                       "postings",
                       {},
                       protocol::Documents{{{"d2", "apple pie"}, {"d1", "Apple tart apple"}}}});
  const auto postings = std::get<protocol::Postings>(result_of(wait_for(client, id)));
  ASSERT_EQ(postings.entries.size(), 3u);
  EXPECT_EQ(postings.entries[0].word, "apple");
  EXPECT_EQ(postings.entries[0].documents, (std::vector<std::string>{"d1", "d2"}));
  EXPECT_EQ(postings.entries[1].word, "pie");
  EXPECT_EQ(postings.entries[2].word, "tart");

  id = submit(client, {"numbers", "stats", {}, protocol::Numbers{{4, 1, 3, 1, 6}}});
  const auto stats = std::get<protocol::Statistics>(result_of(wait_for(client, id)));
  EXPECT_EQ(stats.count, 5u);
  EXPECT_DOUBLE_EQ(stats.mean, 3.0);
  EXPECT_DOUBLE_EQ(stats.median, 3.0);
  EXPECT_DOUBLE_EQ(stats.mode, 1.0);
  EXPECT_DOUBLE_EQ(stats.min, 1.0);
  EXPECT_DOUBLE_EQ(stats.max, 6.0);

  id = submit(
      client,
      {"matmul", "rows", {8, 0}, protocol::MatrixPair{{2, 2, {1, 2, 3, 4}}, {2, 1, {5, 6}}}});
  const auto product = std::get<protocol::Matrix>(result_of(wait_for(client, id)));
  EXPECT_EQ(product, (protocol::Matrix{2, 1, {17, 39}}));
}

TEST(Server, PipelinedRequestsAreAnsweredInOrder) {
  ServerProcess server;
  RawClient client(server.port());
  std::string batch;
  protocol::append_message(batch, 0, word_count_request({"a b a"}));
  protocol::append_message(batch, 2, protocol::JobId{1});
  protocol::append_frame(batch, 4, "");
  protocol::append_message(batch, 1, protocol::JobId{42});
  client.send(batch);
  std::vector<std::string> statuses;
  for (int i = 0; i < 4; ++i) {
    const auto reply = client.read_reply();
    ASSERT_TRUE(reply) << "reply " << i;
    statuses.push_back(status_name(reply->status));
  }
  EXPECT_EQ(statuses, (std::vector<std::string>{"ok", "ok", "ok", "unknown-job"}));
}

TEST(Server, ARequestSentOneByteAtATimeIsAnswered) {
  ServerProcess server;
  RawClient client(server.port());
  std::string frame;
  protocol::append_message(frame, 0, word_count_request({"slow words"}));
  for (char c : frame) {
    client.send(std::string(1, c));
    std::this_thread::sleep_for(1ms);
  }
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "ok");
}

TEST(Server, ListAndStatsWithABodyTheyDoNotTakeAreBadRequests) {
  ServerProcess server;
  RawClient client(server.port());
  // LIST takes one byte of options (version 3): not two, and not bits it does not know.
  client.send(bytes({0x04, 0x02, 0, 0, 0, 0x01, 0x00}));
  auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-request");
  EXPECT_EQ(error_text(*reply), "list: unexpected bytes after the end of the body");
  client.send(bytes({0x04, 0x01, 0, 0, 0, 0x02}));
  reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-request");
  EXPECT_EQ(error_text(*reply), "list: unknown option bits 2; this server knows 1 (with tenants)");
  // Options 0 is an empty LIST's answer: ids and states.
  client.send(bytes({0x04, 0x01, 0, 0, 0, 0x00}));
  reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "ok");
  EXPECT_EQ(reply->body, std::string(8, '\0'));
  client.send(bytes({0x05, 0x02, 0, 0, 0, 0x00, 0x00}));
  reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-request");
}

TEST(Server, UnknownOpcodeIsAnErrorAndTheConnectionGoesOn) {
  ServerProcess server;
  RawClient client(server.port());
  client.send(bytes({0x2a, 0x02, 0, 0, 0, 'h', 'i'}));
  auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "unknown-opcode");
  EXPECT_EQ(error_text(*reply), "unknown opcode 42; this server knows 0 to 7");
  client.send(bytes({0x04, 0, 0, 0, 0}));
  reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "ok");
}

TEST(Server, UndecodableBodyIsABadRequestAndTheConnectionGoesOn) {
  ServerProcess server;
  RawClient client(server.port());
  client.send(bytes({0x01, 0x03, 0, 0, 0, 1, 2, 3}));  // a job id needs 4 bytes
  auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-request");
  EXPECT_NE(error_text(*reply).find("4-byte job id"), std::string::npos) << error_text(*reply);
  client.send(bytes({0x00, 0x03, 0, 0, 0, 1, 2, 3}));  // a truncated SUBMIT
  reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-request");
  client.send(bytes({0x04, 0, 0, 0, 0}));
  reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "ok");
}

TEST(Server, OversizedFrameIsRefusedFromItsHeaderAndClosed) {
  ServerProcess server({"--max-frame-mib", "1"});
  {
    RawClient client(server.port());
    client.send(bytes({0x00, 0xff, 0xff, 0xff, 0xff}));  // 4 GiB SUBMIT, no body sent
    const auto reply = client.read_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(status_name(reply->status), "frame-too-large");
    EXPECT_EQ(error_text(*reply),
              "a body of 4294967295 bytes for opcode 0 exceeds the limit of 1048576 bytes; "
              "closing the connection");
    EXPECT_TRUE(client.closed_by_server());
  }
  {
    RawClient client(server.port());
    client.send(bytes({0x01, 0x00, 0x10, 0, 0}));  // FETCH with a 4 KiB body
    const auto reply = client.read_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(status_name(reply->status), "frame-too-large");
    EXPECT_TRUE(client.closed_by_server());
  }
  RawClient after(server.port());  // and the server goes on
  after.send(bytes({0x04, 0, 0, 0, 0}));
  const auto reply = after.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, kOk);
}

TEST(Server, BadJobsAreRefusedAtSubmitWithAClearMessage) {
  ServerProcess server;
  RawClient client(server.port());
  const std::vector<std::pair<protocol::SubmitRequest, std::string>> cases{
      {{"nope", "sum", {}, protocol::Documents{}}, "unknown mapper 'nope'"},
      {{"words", "stats", {}, protocol::Documents{}}, "does not go with reducer 'stats'"},
      {{"words", "sum", {}, protocol::Numbers{}}, "takes documents"},
      {{"words", "sum", {0, 5000}, protocol::Documents{}}, "partitions must be at most 1024"},
  };
  for (const auto& [request, expected] : cases) {
    client.send_message(Opcode::kSubmit, request);
    const auto reply = client.read_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(status_name(reply->status), "bad-job") << expected;
    EXPECT_NE(error_text(*reply).find(expected), std::string::npos) << error_text(*reply);
  }
}

TEST(Server, AJobTheMapperRejectsFailsWithItsMessage) {
  ServerProcess server;
  RawClient client(server.port());
  const auto id = submit(
      client, {"matmul", "rows", {}, protocol::MatrixPair{{1, 2, {1, 2}}, {3, 1, {1, 2, 3}}}});
  const auto reply = wait_for(client, id);
  EXPECT_EQ(status_name(reply.status), "job-failed");
  EXPECT_NE(error_text(reply).find("cannot multiply 1x2 by 3x1"), std::string::npos)
      << error_text(reply);
  // The server goes on.
  const auto next = submit(client, word_count_request({"still here"}));
  EXPECT_EQ(as_map(result_of(wait_for(client, next))).at("here"), 1u);
}

TEST(Server, StatusReportsStateAndProgress) {
  ServerProcess server;
  RawClient client(server.port());
  const auto id = submit(client, word_count_request({random_text(1000, 3)}, 512));
  wait_for(client, id);
  client.send_message(Opcode::kStatus, protocol::JobId{id});
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  const auto progress = protocol::decode<protocol::JobProgress>(reply->body);
  ASSERT_TRUE(progress) << progress.error;
  EXPECT_EQ(progress.value->id, id);
  EXPECT_EQ(progress.value->state, JobState::kDone);
  EXPECT_GT(progress.value->map_total, 1u);
  EXPECT_EQ(progress.value->map_done, progress.value->map_total);
  EXPECT_EQ(progress.value->reduce_done, progress.value->reduce_total);
}

TEST(Server, CancelStopsARunningJobAndFetchSaysSo) {
  ServerProcess server({"--workers", "1", "--enable-test-jobs"});
  RawClient client(server.port());
  // A job of one minute, running: cancelling it must stop it, not release a result.
  const auto big =
      submit(client, {"test-slow", "sum", {}, protocol::Documents{{{"60000", "one minute"}}}});
  wait_until_running(client, big);
  client.send_message(Opcode::kCancel, protocol::JobId{big});
  auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, kOk);
  EXPECT_TRUE(reply->body.empty());
  EXPECT_EQ(status_name(wait_for(client, big).status), "job-cancelled");
  // The worker busy with its task is stopped (and replaced), not left to finish it: the
  // scheduler does that once it hears of the cancel, just after the reply.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (server_stats(client).worker_restarts == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server_stats(client).worker_restarts, 1u);
  client.send_message(Opcode::kCancel, protocol::JobId{999});
  reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "unknown-job");
  // The pool is free again: a new job runs.
  const auto next = submit(client, word_count_request({"after cancel"}));
  EXPECT_EQ(as_map(result_of(wait_for(client, next))).at("cancel"), 1u);
}

TEST(Server, ListShowsJobsWithTheirStates) {
  ServerProcess server;
  RawClient client(server.port());
  const auto a = submit(client, word_count_request({"a"}));
  wait_for(client, a);
  const auto b = submit(client, {"matmul", "rows", {}, protocol::MatrixPair{{1, 2, {1, 2}}, {}}});
  wait_for(client, b);
  client.send(bytes({0x04, 0, 0, 0, 0}));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  const auto list = protocol::decode<protocol::JobList>(reply->body);
  ASSERT_TRUE(list) << list.error;
  EXPECT_EQ(list.value->jobs,
            (std::vector<protocol::JobSummary>{{a, JobState::kDone}, {b, JobState::kFailed}}));
}

TEST(Server, QueueFullIsAnAnswerNotAHang) {
  ServerProcess server({"--workers", "1", "--max-queued-jobs", "1"});
  RawClient client(server.port());
  const auto big = submit(client, word_count_request({random_text(400000, 5)}, 4096));
  client.send_message(Opcode::kSubmit, word_count_request({"one more"}));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "queue-full");
  EXPECT_NE(error_text(*reply).find("try again later"), std::string::npos);
  result_of(wait_for(client, big));
  submit(client, word_count_request({"room again"}));  // once the big one is done
}

TEST(Server, ASmallJobFinishesBeforeABigOneSubmittedEarlier) {
  ServerProcess server({"--workers", "2", "--enable-test-jobs"});
  RawClient big_client(server.port());
  RawClient small_client(server.port());
  // The big job: 120 map tasks of 250 ms each (test-slow sleeps as long as a document's name
  // says), so 15 s of work on two workers however fast the machine. The small one, submitted
  // after it, must not wait for all of that: it finishes while the big one is still running.
  protocol::Documents slow;
  for (int i = 0; i < 120; ++i)
    slow.documents.push_back({"250", "slow " + std::to_string(i)});
  const auto big = submit(big_client, {"test-slow", "sum", {1, 0}, slow});
  const auto small = submit(small_client, word_count_request({"tiny job"}));
  const auto small_reply = wait_for(small_client, small);
  EXPECT_EQ(small_reply.status, kOk);
  big_client.send_message(Opcode::kStatus, protocol::JobId{big});
  const auto status = big_client.read_reply();
  ASSERT_TRUE(status);
  const auto progress = protocol::decode<protocol::JobProgress>(status->body);
  ASSERT_TRUE(progress);
  EXPECT_FALSE(protocol::is_finished(progress.value->state))
      << "the big job finished before the small one";
  EXPECT_GT(progress.value->map_total, 100u) << "one map task per document";
  big_client.send_message(Opcode::kCancel, protocol::JobId{big});
  ASSERT_TRUE(big_client.read_reply());
}

TEST(Server, ManyConcurrentClientsAllGetTheirOwnResults) {
  ServerProcess server;
  constexpr int kClients = 16, kJobsEach = 20;
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      RawClient client(server.port());
      for (int j = 0; j < kJobsEach; ++j) {
        const std::string text =
            "client" + std::to_string(c) + " job" + std::to_string(j) + " job" + std::to_string(j);
        const auto id = submit(client, word_count_request({text}));
        const auto reply = wait_for(client, id);
        const auto counts = as_map(protocol::decode<protocol::JobResult>(reply.body).value.value());
        if (counts == reference_word_count({text})) ++correct;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(correct.load(), kClients * kJobsEach);
}

TEST(Server, IdleConnectionsAreClosedAfterTheTimeout) {
  ServerProcess server({"--idle-timeout", "1"});
  RawClient client(server.port());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closed_by_server(5s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 900ms);
}

TEST(Server, ConnectionsOverTheLimitGetServerBusy) {
  ServerProcess server({"--max-connections", "2"});
  RawClient a(server.port()), b(server.port());
  a.send(bytes({0x04, 0, 0, 0, 0}));
  b.send(bytes({0x04, 0, 0, 0, 0}));
  ASSERT_TRUE(a.read_reply());
  ASSERT_TRUE(b.read_reply());
  RawClient c(server.port());
  const auto reply = c.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "server-busy");
  EXPECT_TRUE(c.closed_by_server());
}

TEST(Server, OldResultsExpireOverTheRetentionCap) {
  ServerProcess server({"--max-retained-mib", "1"});
  RawClient client(server.port());
  // Each result holds ~40,000 distinct words: about 0.7 MB encoded.
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < 3; ++i) {
    const auto id = submit(client, word_count_request({random_text(200000, 10 + i, 40000)}));
    EXPECT_EQ(wait_for(client, id).status, kOk);
    ids.push_back(id);
  }
  client.send_message(Opcode::kFetch, protocol::JobId{ids[0]});
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "job-expired");
  client.send_message(Opcode::kFetch, protocol::JobId{ids[2]});
  EXPECT_EQ(client.read_reply()->status, kOk);
}

TEST(Server, AKilledWorkerIsReplacedAndTheJobStillSucceeds) {
  ServerProcess server({"--workers", "2", "--enable-test-jobs"});
  RawClient client(server.port());
  const auto before = server.worker_pids();
  ASSERT_EQ(before.size(), 2u);
  // Four map tasks of 1.5 s each (test-slow counts words too, after sleeping as long as each
  // document's name says; one word a document, and chunks of one byte, make a task a document):
  // once the job runs, both workers are busy with one for a while.
  protocol::Documents slow;
  std::vector<std::string> texts;
  for (int i = 0; i < 4; ++i) {
    texts.push_back("word" + std::to_string(i % 2));
    slow.documents.push_back({"1500", texts.back()});
  }
  const auto id = submit(client, {"test-slow", "sum", {1, 0}, slow});
  wait_until_running(client, id);
  ::kill(before[0], SIGKILL);
  EXPECT_EQ(as_map(result_of(wait_for(client, id))), reference_word_count(texts));
  // The worker was killed in the middle of a task, which ran again.
  EXPECT_NE(server.log().find("killed by signal 9 (Killed) running job " + std::to_string(id)),
            std::string::npos)
      << server.log();
  client.send(bytes({0x05, 0, 0, 0, 0}));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  const auto stats = protocol::decode<protocol::ServerStats>(reply->body);
  ASSERT_TRUE(stats);
  EXPECT_GE(stats.value->worker_restarts, 1u);
  EXPECT_EQ(stats.value->workers, 2u);
  EXPECT_EQ(server.worker_pids().size(), 2u);
}

TEST(Server, StatsCountWhatHappened) {
  ServerProcess server({"--workers", "1"});
  RawClient client(server.port());
  const auto id = submit(client, word_count_request({"x"}));
  wait_for(client, id);
  client.send(bytes({0x2a, 0, 0, 0, 0}));  // one rejected request
  client.read_reply();
  client.send(bytes({0x05, 0, 0, 0, 0}));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  const auto stats = protocol::decode<protocol::ServerStats>(reply->body);
  ASSERT_TRUE(stats) << stats.error;
  EXPECT_EQ(stats.value->jobs_submitted, 1u);
  EXPECT_EQ(stats.value->jobs_done, 1u);
  EXPECT_EQ(stats.value->jobs_unfinished, 0u);
  EXPECT_EQ(stats.value->connections_open, 1u);
  EXPECT_EQ(stats.value->requests_rejected, 1u);
  EXPECT_EQ(stats.value->workers, 1u);
  EXPECT_GT(stats.value->retained_result_bytes, 0u);
}

TEST(Server, SigtermStopsCleanlyWithExitZeroAndNoWorkersLeft) {
  ServerProcess server;
  const auto workers = server.worker_pids();
  ASSERT_FALSE(workers.empty());
  const int status = server.stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (const auto pid : workers)
    EXPECT_NE(::kill(pid, 0), 0) << "worker " << pid << " survived";
}

}  // namespace
}  // namespace mrd::testing
