// Worker faults injected through the real protocol: the test-* jobs crash, hang, stall and run out
// of memory inside real worker processes of the real mrd binary.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raw_jobs.hpp"

namespace mrd::testing {
namespace {

protocol::SubmitRequest fault_job(const std::string& mapper, protocol::Documents docs,
                                  protocol::JobOptions options = {}) {
  return {mapper, "sum", options, std::move(docs)};
}

protocol::Documents one_document(const std::string& name = "doc", const std::string& text = "a b") {
  return protocol::Documents{{{name, text}}};
}

protocol::ServerStats stats_of(RawClient& client) {
  client.send(bytes({0x05, 0, 0, 0, 0}));
  const auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no STATS reply");
  return protocol::decode<protocol::ServerStats>(reply->body).value.value();
}

/// A normal job still gets the right answer: the fault cost nothing else.
void expect_server_still_works(RawClient& client) {
  const auto id = submit(client, word_count_request({"still serving"}));
  EXPECT_EQ(as_map(result_of(wait_for(client, id))),
            (std::map<std::string, std::uint64_t>{{"serving", 1}, {"still", 1}}));
}

TEST(Faults, TestJobsAreRefusedUnlessEnabled) {
  ServerProcess server;
  RawClient client(server.port());
  client.send_message(Opcode::kSubmit, fault_job("test-crash", one_document()));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-job");
  EXPECT_NE(error_text(*reply).find("unknown mapper 'test-crash'"), std::string::npos);
}

TEST(Faults, ASegfaultingMapperFailsTheJobAfterThreeAttemptsNamingTheSignal) {
  ServerProcess server({"--enable-test-jobs", "--workers", "2"});
  RawClient client(server.port());
  const auto id = submit(client, fault_job("test-crash", one_document()));
  const auto reply = wait_for(client, id);
  EXPECT_EQ(status_name(reply.status), "job-crashed");
  EXPECT_EQ(error_text(reply),
            "map task 1 of 1 crashed 3 times; last worker killed by signal 11 (Segmentation "
            "fault)");
  EXPECT_EQ(stats_of(client).worker_restarts, 3u);
  expect_server_still_works(client);
  EXPECT_EQ(server.worker_pids().size(), 2u);
}

TEST(Faults, AnAbortAndAnExitAreCrashesToo) {
  ServerProcess server({"--enable-test-jobs"});
  RawClient client(server.port());
  auto reply = wait_for(client, submit(client, fault_job("test-abort", one_document())));
  EXPECT_EQ(status_name(reply.status), "job-crashed");
  EXPECT_NE(error_text(reply).find("killed by signal 6 (Aborted)"), std::string::npos)
      << error_text(reply);
  reply = wait_for(client, submit(client, fault_job("test-exit", one_document())));
  EXPECT_EQ(status_name(reply.status), "job-crashed");
  EXPECT_NE(error_text(reply).find("exited with status 3"), std::string::npos) << error_text(reply);
  expect_server_still_works(client);
}

TEST(Faults, ATaskWhoseWorkerCrashedOnceIsRetriedAndTheJobSucceeds) {
  ServerProcess server({"--enable-test-jobs"});
  RawClient client(server.port());
  const auto id = submit(client, fault_job("test-crash-once", one_document("first", "x y x")));
  EXPECT_EQ(as_map(result_of(wait_for(client, id))),
            (std::map<std::string, std::uint64_t>{{"x", 2}, {"y", 1}}));
  EXPECT_EQ(stats_of(client).worker_restarts, 1u);
  // The same document name again: its marker is there, so no crash this time.
  const auto again = submit(client, fault_job("test-crash-once", one_document("first", "z")));
  EXPECT_EQ(as_map(result_of(wait_for(client, again))).at("z"), 1u);
  EXPECT_EQ(stats_of(client).worker_restarts, 1u);
}

/// The line of the server's log that names the test jobs' directory, or "".
std::string test_job_directory(const std::string& log) {
  const std::string intro = "test jobs write only in ";
  const auto at = log.find(intro);
  if (at == std::string::npos) return {};
  const auto start = at + intro.size();
  return log.substr(start, log.find('\n', start) - start);
}

TEST(Faults, TestJobsWriteOnlyInTheServersPrivateDirectory) {
  // Document names a client could use to make root create files anywhere.
  const auto tag = std::to_string(getpid());
  const auto absolute = (std::filesystem::temp_directory_path() / ("mrd-evil-" + tag)).string();
  const auto climbing = "../../mrd-evil-" + tag;
  ASSERT_FALSE(std::filesystem::exists(absolute));
  ASSERT_FALSE(std::filesystem::exists(climbing));
  std::string directory;
  {
    ServerProcess server({"--enable-test-jobs"});
    RawClient client(server.port());
    for (const auto& name : {absolute, climbing}) {
      const auto id = submit(client, fault_job("test-crash-once", one_document(name, "a b a")));
      EXPECT_EQ(as_map(result_of(wait_for(client, id))),
                (std::map<std::string, std::uint64_t>{{"a", 2}, {"b", 1}}));
    }
    EXPECT_EQ(stats_of(client).worker_restarts, 2u) << "each name crashes once";
    EXPECT_FALSE(std::filesystem::exists(absolute));
    EXPECT_FALSE(std::filesystem::exists(climbing));

    directory = test_job_directory(server.log());
    ASSERT_FALSE(directory.empty()) << server.log();
    ASSERT_TRUE(std::filesystem::is_directory(directory));
    EXPECT_EQ(std::filesystem::status(directory).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_all);
    std::size_t markers = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(directory))
      ++markers;
    EXPECT_EQ(markers, 2u);
    EXPECT_EQ(server.stop(), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(directory)) << "not removed when the server stopped";
}

TEST(Faults, AHangingTaskTimesOutThreeTimesThenTheJobFails) {
  ServerProcess server({"--enable-test-jobs"});
  RawClient client(server.port());
  const auto start = std::chrono::steady_clock::now();
  const auto id = submit(client, fault_job("test-hang", one_document(), {0, 0, 200, 0}));
  const auto reply = wait_for(client, id);
  EXPECT_EQ(status_name(reply.status), "job-timed-out");
  EXPECT_EQ(error_text(reply), "map task 1 of 1 ran past its 200 ms deadline 3 times");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 600ms);
  expect_server_still_works(client);
}

TEST(Faults, TheServerDefaultTimeoutAppliesWhenTheJobSetsNone) {
  ServerProcess server({"--enable-test-jobs", "--task-timeout", "1"});
  RawClient client(server.port());
  const auto reply = wait_for(client, submit(client, fault_job("test-hang", one_document())));
  EXPECT_EQ(status_name(reply.status), "job-timed-out");
  EXPECT_NE(error_text(reply).find("1000 ms deadline"), std::string::npos) << error_text(reply);
}

TEST(Faults, ASlowTaskWithinItsDeadlineSucceeds) {
  ServerProcess server({"--enable-test-jobs"});
  RawClient client(server.port());
  const auto id =
      submit(client, fault_job("test-slow", one_document("300", "slow but fine"), {0, 0, 5000, 0}));
  EXPECT_EQ(as_map(result_of(wait_for(client, id))).at("fine"), 1u);
}

TEST(Faults, AJobOverItsMemoryLimitFailsAsOutOfMemory) {
  ServerProcess server({"--enable-test-jobs"});
  RawClient client(server.port());
  const auto id = submit(client, fault_job("test-oom", one_document(), {0, 0, 0, 512}));
  const auto reply = wait_for(client, id);
  EXPECT_EQ(status_name(reply.status), "job-out-of-memory");
  EXPECT_EQ(error_text(reply), "map task 1 of 1 ran out of memory (limit 512 MiB)");
  expect_server_still_works(client);
}

TEST(Faults, AJobsLowMemoryLimitDoesNotFollowItsWorkerToTheNextJob) {
  ServerProcess server({"--enable-test-jobs", "--workers", "1"});
  RawClient client(server.port());
  // 100,000 distinct words: a table of megabytes, well past 1 MiB and past the 2 MiB steps in
  // which a worker's malloc grows its heap (it asks for huge pages), which a job may find unused.
  auto text = random_text(200000, 9, 100000);
  const auto starved =
      submit(client, {"words", "sum", {0, 0, 0, 1}, protocol::Documents{{{"d", text}}}});
  EXPECT_EQ(status_name(wait_for(client, starved).status), "job-out-of-memory");
  // The same worker takes the next job, with the default limit: it must not inherit 1 MiB.
  for (int i = 0; i < 3; ++i) {
    const auto id = submit(client, word_count_request({text}));
    EXPECT_EQ(as_map(result_of(wait_for(client, id))), reference_word_count({text}));
  }
}

TEST(Faults, AJobCannotRaiseItsMemoryLimitAboveTheServers) {
  ServerProcess server({"--enable-test-jobs", "--worker-memory-mib", "512"});
  RawClient client(server.port());
  const auto id = submit(client, fault_job("test-oom", one_document(), {0, 0, 0, 1000000}));
  const auto reply = wait_for(client, id);
  EXPECT_EQ(status_name(reply.status), "job-out-of-memory");
  EXPECT_EQ(error_text(reply), "map task 1 of 1 ran out of memory (limit 512 MiB)");
}

TEST(Faults, AMapperThatRefusesItsInputIsAnOrdinaryJobFailure) {
  ServerProcess server({"--enable-test-jobs"});
  RawClient client(server.port());
  const auto reply = wait_for(client, submit(client, fault_job("test-throw", one_document())));
  EXPECT_EQ(status_name(reply.status), "job-failed");
  EXPECT_EQ(error_text(reply), "test-throw: the mapper refused its input, as asked");
  EXPECT_EQ(stats_of(client).worker_restarts, 0u);
}

TEST(Faults, CancellingAHangingJobFreesItsWorkerAtOnce) {
  ServerProcess server({"--enable-test-jobs", "--workers", "1"});
  RawClient client(server.port());
  const auto hung = submit(client, fault_job("test-hang", one_document()));
  wait_until_running(client, hung);  // the task is in the only worker's hands
  client.send_message(Opcode::kCancel, protocol::JobId{hung});
  ASSERT_EQ(client.read_reply()->status, kOk);
  // The hung task never ends by itself: the next job can only run if its worker was replaced.
  expect_server_still_works(client);  // needs the only worker
  EXPECT_EQ(stats_of(client).worker_restarts, 1u);
  EXPECT_EQ(status_name(wait_for(client, hung).status), "job-cancelled");
}

TEST(Faults, AWorkerKilledWhileIdleIsReplacedBeforeItIsNeeded) {
  ServerProcess server({"--workers", "2"});
  RawClient client(server.port());
  const auto before = server.worker_pids();
  ASSERT_EQ(before.size(), 2u);
  ::kill(before[1], SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (stats_of(client).worker_restarts < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(stats_of(client).worker_restarts, 1u);
  const auto after = server.worker_pids();
  EXPECT_EQ(after.size(), 2u);
  EXPECT_EQ(std::count(after.begin(), after.end(), before[1]), 0);
  expect_server_still_works(client);
}

TEST(Faults, OtherJobsGoOnWhileOneKeepsCrashing) {
  ServerProcess server({"--enable-test-jobs", "--workers", "2"});
  RawClient client(server.port());
  const auto crashing = submit(client, fault_job("test-crash", one_document()));
  std::vector<std::uint32_t> normal;
  for (int i = 0; i < 10; ++i) {
    normal.push_back(submit(client, word_count_request({"job " + std::to_string(i)})));
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(as_map(result_of(wait_for(client, normal[i]))).at(std::to_string(i)), 1u);
  }
  EXPECT_EQ(status_name(wait_for(client, crashing).status), "job-crashed");
}

/// Submits a test-hang job to a server with one worker and waits until that worker runs it: jobs
/// submitted next wait together, and go in one batch once the hung job is cancelled.
std::uint32_t hold_the_only_worker(RawClient& client) {
  const auto hung = submit(client, fault_job("test-hang", one_document()));
  wait_until_running(client, hung);
  return hung;
}

void cancel(RawClient& client, std::uint32_t id) {
  client.send_message(Opcode::kCancel, protocol::JobId{id});
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->status, kOk);
}

TEST(Faults, TinyJobsWaitingTogetherRunInOneBatchEachWithItsOwnResult) {
  ServerProcess server({"--enable-test-jobs", "--workers", "1", "--log-level", "debug"});
  RawClient client(server.port());
  const auto hung = hold_the_only_worker(client);
  std::vector<std::uint32_t> tiny;
  for (int i = 0; i < 4; ++i)
    tiny.push_back(submit(client, word_count_request({"job " + std::to_string(i)})));
  cancel(client, hung);  // its worker is replaced, and finds the four waiting

  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(as_map(result_of(wait_for(client, tiny[i]))).at(std::to_string(i)), 1u);
  const auto log = server.log();
  EXPECT_NE(log.find("a batch of 4 tasks to worker slot 0, jobs " + std::to_string(tiny[0]) +
                     " to " + std::to_string(tiny[3])),
            std::string::npos)
      << log;
  EXPECT_EQ(stats_of(client).worker_restarts, 1u) << "only the hung job's worker";
}

TEST(Faults, AJobThatMayHangIsNeverBatchedWithOthers) {
  // A test job is not the server's own code, as a plugin's is not: it may hang. Batched, it
  // would hold the jobs of its batch until its deadline, and cancelling it could not free them.
  ServerProcess server({"--enable-test-jobs", "--workers", "1", "--log-level", "debug"});
  RawClient client(server.port());
  const auto first_hung = hold_the_only_worker(client);
  const auto before = submit(client, word_count_request({"before"}));
  const auto hanging = submit(client, fault_job("test-hang", one_document()));
  const auto after = submit(client, word_count_request({"after"}));
  cancel(client, first_hung);

  // The job before the hanging one runs alone, and ends while the next one hangs.
  EXPECT_EQ(as_map(result_of(wait_for(client, before))).at("before"), 1u);
  wait_until_running(client, hanging);
  cancel(client, hanging);
  EXPECT_EQ(as_map(result_of(wait_for(client, after))).at("after"), 1u);
  EXPECT_EQ(server.log().find("a batch of"), std::string::npos) << server.log();
  EXPECT_EQ(stats_of(client).worker_restarts, 2u) << "the two hung jobs' workers";
}

/// Starts `mrd --worker-fd 3` on one end of a socketpair, with MRD_SERVER_PID set to `server`;
/// returns its pid and the other end in `fd`.
pid_t start_worker(const std::string& server, int& fd) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    throw std::runtime_error("socketpair");
  const std::string mrd = mrd_binary();  // before fork: the child only execs
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pair[1], 3);  // without close-on-exec
    setenv("MRD_SERVER_PID", server.c_str(), 1);
    execl(mrd.c_str(), mrd.c_str(), "--worker-fd", "3", static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(pair[1]);
  fd = pair[0];
  return pid;
}

/// Waits up to 20 s for `pid` to exit; its exit status (128 + the signal if one killed it), or -1
/// if it is still running.
int exit_status_within(pid_t pid, std::chrono::seconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(5ms);
  }
  return -1;
}

/// The body length in a task message's header (u8 type, u64 length, little-endian).
std::size_t answer_length(const std::string& header) {
  std::uint64_t length = 0;
  for (int i = 8; i >= 1; --i)
    length = (length << 8) | static_cast<unsigned char>(header[static_cast<std::size_t>(i)]);
  return static_cast<std::size_t>(length);
}

TEST(Faults, AWorkerWhoseServerDiedBeforeItStartedLeavesAtOnce) {
  // Its server (as MRD_SERVER_PID says) is not its parent: it died before the worker could ask
  // to die with it. The worker must go, even with its socket still open and a task waiting on
  // it (a hanging one would otherwise keep it forever).
  int fd = -1;
  const pid_t orphan = start_worker("1", fd);
  const std::string not_a_task("\x03\0\0\0\0\0\0\0\0", 9);  // kDone, empty body
  ASSERT_EQ(::write(fd, not_a_task.data(), not_a_task.size()), 9);
  const int status = exit_status_within(orphan);
  if (status < 0) ::kill(orphan, SIGKILL), waitpid(orphan, nullptr, 0);
  EXPECT_EQ(status, 0);
  char byte = 0;
  EXPECT_NE(::read(fd, &byte, 1), 1) << "it answered instead of leaving";
  ::close(fd);

  // Its parent is its server: it stays, and answers (here, that the message is not a task).
  const pid_t worker = start_worker(std::to_string(::getpid()), fd);
  ASSERT_EQ(::write(fd, not_a_task.data(), not_a_task.size()), 9);
  // The whole answer is read first: a worker whose server leaves mid-answer dies of SIGPIPE.
  std::string answer;
  for (char buffer[256]; answer.size() < 9 || answer.size() < 9 + answer_length(answer);) {
    const auto n = ::read(fd, buffer, sizeof buffer);
    ASSERT_GT(n, 0) << "the worker left without answering";
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(answer[0], 4) << "kError";
  ::close(fd);  // the server closes the channel: the worker exits
  EXPECT_EQ(exit_status_within(worker), 0);
}

}  // namespace
}  // namespace mrd::testing
