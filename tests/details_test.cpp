// Protocol version 4 against the real server: STATUS with details (what a job is, whose, when
// each step of its life happened) and STATS with details (busy workers, task and job latencies).
#include <gtest/gtest.h>

#include "auth_file.hpp"
#include "raw_jobs.hpp"

namespace mrd::testing {
namespace {

/// Now, as STATUS's details give times: Unix milliseconds.
std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

/// STATUS of `id` with details; the reply, which the caller checks.
RawReply ask_details(RawClient& client, std::uint32_t id, std::uint8_t options = 1) {
  client.send_message(Opcode::kStatus, protocol::StatusRequest{id, options});
  auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no STATUS reply");
  return *reply;
}

protocol::JobDetails details_of(RawClient& client, std::uint32_t id) {
  const auto reply = ask_details(client, id);
  if (reply.status != kOk) throw std::runtime_error("STATUS: " + error_text(reply));
  return protocol::decode<protocol::JobDetails>(reply.body).value.value();
}

protocol::DetailedStats detailed_stats(RawClient& client) {
  client.send_message(Opcode::kStats, protocol::StatsRequest{});
  const auto reply = client.read_reply();
  if (!reply || reply->status != kOk) throw std::runtime_error("no STATS reply");
  return protocol::decode<protocol::DetailedStats>(reply->body).value.value();
}

/// Asks again (every 2 ms, for up to 60 s) until `holds` is true of the answer, and returns the
/// last answer. A job's state says "mapping" from its admission; the scheduler thread records its
/// first task's start and the busy workers a moment later, when it hands the task out.
template <class Ask, class Holds>
auto ask_until(Ask ask, Holds holds) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    auto answer = ask();
    if (holds(answer) || std::chrono::steady_clock::now() > deadline) return answer;
    std::this_thread::sleep_for(2ms);
  }
}

protocol::SubmitRequest test_job(const std::string& mapper) {
  return {mapper, "sum", {}, protocol::Documents{{{"doc", "words for a test job"}}}};
}

TEST(Details, AFinishedJobSaysWhatItIsAndWhenEachStepHappened) {
  ServerProcess server;
  RawClient client(server.port());
  const auto request = word_count_request({"one two two"});
  const auto before = unix_ms();
  const auto id = submit(client, request);
  ASSERT_EQ(wait_for(client, id).status, kOk);
  const auto after = unix_ms();
  const auto d = details_of(client, id);
  EXPECT_EQ(d.progress,
            (protocol::JobProgress{id, JobState::kDone, d.progress.map_total, d.progress.map_total,
                                   d.progress.reduce_total, d.progress.reduce_total}));
  EXPECT_EQ(d.mapper, "words");
  EXPECT_EQ(d.reducer, "sum");
  EXPECT_EQ(d.tenant, "");
  EXPECT_EQ(d.input_bytes, protocol::encode(request).size()) << "the SUBMIT body's length";
  EXPECT_LE(before, d.submitted_ms);
  EXPECT_LE(d.submitted_ms, d.started_ms);
  EXPECT_LE(d.started_ms, d.finished_ms);
  EXPECT_LE(d.finished_ms, after);
  EXPECT_EQ(d.failure, "");
  // Without options (or with 00) STATUS answers as version 1 did: the progress alone.
  EXPECT_EQ(ask_details(client, id, 0).body, protocol::encode(d.progress));
  client.send_message(Opcode::kStatus, protocol::JobId{id});
  EXPECT_EQ(client.read_reply()->body, protocol::encode(d.progress));
}

TEST(Details, ARunningJobHasNotFinishedAndACancelledOneHas) {
  ServerProcess server({"--enable-test-jobs"});
  RawClient client(server.port());
  const auto id = submit(client, test_job("test-hang"));
  wait_until_running(client, id);
  auto d = ask_until([&] { return details_of(client, id); },
                     [](const auto& details) { return details.started_ms > 0; });
  EXPECT_GT(d.started_ms, 0u);
  EXPECT_EQ(d.finished_ms, 0u) << "still running";
  EXPECT_EQ(d.mapper, "test-hang");
  client.send_message(Opcode::kCancel, protocol::JobId{id});
  ASSERT_EQ(client.read_reply()->status, kOk);
  d = details_of(client, id);
  EXPECT_EQ(d.progress.state, JobState::kCancelled);
  EXPECT_GE(d.finished_ms, d.started_ms);
}

TEST(Details, AFailedJobSaysWhyAsFetchDoes) {
  ServerProcess server({"--enable-test-jobs"});
  RawClient client(server.port());
  const auto id = submit(client, test_job("test-throw"));
  const auto fetched = wait_for(client, id);
  ASSERT_EQ(status_name(fetched.status), "job-failed");
  const auto d = details_of(client, id);
  EXPECT_EQ(d.progress.state, JobState::kFailed);
  EXPECT_EQ(d.failure, error_text(fetched));
  EXPECT_GT(d.finished_ms, 0u);
}

TEST(Details, UnknownOptionBitsAreABadRequestAndOthersJobsLookExpired) {
  const AuthFile auth;
  ServerProcess server({"--auth-file", auth.path()});
  auto alice_connection = connect_as(server, kAliceToken);
  auto bob_connection = connect_as(server, kBobToken);
  auto& alice = *alice_connection;
  auto& bob = *bob_connection;
  const auto id = submit(alice, word_count_request({"alice's words"}));
  ASSERT_EQ(wait_for(alice, id).status, kOk);
  EXPECT_EQ(details_of(alice, id).tenant, "alice");
  const auto refused = ask_details(alice, id, 3);
  EXPECT_EQ(status_name(refused.status), "bad-request");
  EXPECT_NE(error_text(refused).find("unknown option bits 3"), std::string::npos);
  EXPECT_EQ(status_name(ask_details(bob, id).status), "job-expired") << "not bob's";
  alice.send_message(Opcode::kStats, protocol::StatsRequest{2});
  EXPECT_EQ(status_name(alice.read_reply()->status), "bad-request");
}

TEST(Details, StatsCountTasksAndBusyWorkersAndTimeThem) {
  ServerProcess server({"--enable-test-jobs", "--workers", "2"});
  RawClient client(server.port());
  const auto idle = detailed_stats(client);
  EXPECT_EQ(idle.workers_busy, 0u);
  const auto hung = submit(client, test_job("test-hang"));
  wait_until_running(client, hung);
  const auto busy = ask_until([&] { return detailed_stats(client); },
                              [](const auto& stats) { return stats.workers_busy == 1; });
  EXPECT_EQ(busy.workers_busy, 1u) << "the hung job's task";
  const auto id = submit(client, word_count_request({"some words to count"}));
  ASSERT_EQ(wait_for(client, id).status, kOk);
  const auto d = details_of(client, id);
  const auto stats = detailed_stats(client);
  // One task or more: a small job may map and reduce in one (docs/protocol.md, STATS).
  const auto tasks = std::uint64_t{d.progress.map_total} + d.progress.reduce_total;
  EXPECT_GE(stats.tasks_done, idle.tasks_done + 1);
  EXPECT_LE(stats.tasks_done, idle.tasks_done + tasks);
  EXPECT_EQ(stats.task_us.count(), stats.tasks_done);
  EXPECT_EQ(stats.job_us.count(), 1u) << "one job finished (the hung one has not)";
  for (const auto* h : {&stats.task_us, &stats.job_us}) {
    ASSERT_EQ(h->buckets.size(), 17u);
    EXPECT_EQ(h->buckets.back().upper_us, UINT64_MAX);
    for (std::size_t i = 1; i < h->buckets.size(); ++i) {
      EXPECT_LT(h->buckets[i - 1].upper_us, h->buckets[i].upper_us);
      EXPECT_LE(h->buckets[i - 1].count, h->buckets[i].count) << "cumulative";
    }
  }
  // The job took at most as long as the test watched it, and at least as long as its tasks did.
  EXPECT_LE(stats.job_us.sum_us, (d.finished_ms - d.submitted_ms + 1) * 1000);
  client.send_message(Opcode::kCancel, protocol::JobId{hung});
  ASSERT_EQ(client.read_reply()->status, kOk);
}

TEST(Details, AJobRestoredAfterARestartSaysWhatItKnows) {
  TempDir dir;
  const std::vector<std::string> args{"--enable-test-jobs", "--workers", "1", "--data-dir",
                                      (dir.path() / "data").string()};
  std::uint32_t done = 0, queued = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    done = submit(client, word_count_request({"finished before the restart"}));
    ASSERT_EQ(wait_for(client, done).status, kOk);
    const auto hung = submit(client, test_job("test-hang"));
    wait_until_running(client, hung);
    queued = submit(client, word_count_request({"queued behind it"}));
    server.stop(SIGKILL);
  }
  ServerProcess server(args);
  RawClient client(server.port());
  const auto finished = details_of(client, done);
  EXPECT_EQ(finished.progress.state, JobState::kDone);
  EXPECT_EQ(finished.submitted_ms, 0u) << "not kept across the restart";
  EXPECT_EQ(finished.mapper, "") << "a finished job keeps its result, not its request";
  const auto again = details_of(client, queued);
  EXPECT_EQ(again.mapper, "words") << "read from the request it runs again from";
  EXPECT_EQ(again.submitted_ms, 0u);
}

}  // namespace
}  // namespace mrd::testing
