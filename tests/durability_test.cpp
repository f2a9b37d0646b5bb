// mrd --data-dir: the real server SIGKILLed and started again loses nothing it acknowledged.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <set>

#include "auth_file.hpp"
#include "raw_jobs.hpp"

namespace mrd::testing {
namespace {

constexpr const char* kPreviousSchema = R"sql(
  CREATE TABLE IF NOT EXISTS jobs (
    id              INTEGER PRIMARY KEY,
    idempotency_key BLOB UNIQUE,
    state           INTEGER NOT NULL,
    failure         INTEGER NOT NULL DEFAULT 0,
    request         BLOB,
    body            BLOB
  );
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
)sql";

/// An SQLite connection through which a test looks into, damages or prepares a data directory.
class Sqlite {
 public:
  explicit Sqlite(const std::filesystem::path& file) {
    if (sqlite3_open(file.c_str(), &db_) != SQLITE_OK) fail();
  }
  ~Sqlite() { sqlite3_close(db_); }
  Sqlite(const Sqlite&) = delete;
  Sqlite& operator=(const Sqlite&) = delete;

  void exec(const std::string& sql) {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) fail();
  }

  /// Runs `sql` with ?1 bound to `blob`.
  void exec_with_blob(const std::string& sql, const std::string& blob) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) fail();
    sqlite3_bind_blob64(statement, 1, blob.data(), blob.size(), SQLITE_TRANSIENT);
    const int rc = sqlite3_step(statement);
    sqlite3_finalize(statement);
    if (rc != SQLITE_DONE) fail();
  }

  /// The first column of every row of `sql`.
  std::vector<std::int64_t> integers(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) fail();
    std::vector<std::int64_t> values;
    while (sqlite3_step(statement) == SQLITE_ROW)
      values.push_back(sqlite3_column_int64(statement, 0));
    sqlite3_finalize(statement);
    return values;
  }

 private:
  [[noreturn]] void fail() {
    throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_ = nullptr;
};

/// How a start of mrd went that should have been refused.
struct StartUp {
  int exit_code = -1;  ///< -1: it did not exit, but started serving (and was stopped)
  std::string log;     ///< what it wrote to stderr
};

/// Starts mrd with `extra_args` and waits (20 s at most) until it exits or starts listening.
StartUp start_up(const std::vector<std::string>& extra_args) {
  TempDir dir;
  const auto port_file = (dir.path() / "port").string();
  const auto log_file = (dir.path() / "log").string();
  std::vector<std::string> args{mrd_binary(), "--listen", "127.0.0.1:0", "--port-file", port_file};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t test_pid = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    tie_child_to_test(test_pid, ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    execv(argv[0], argv.data());
    _exit(127);
  }
  StartUp result;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int status = 0;
  for (;;) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::filesystem::exists(port_file) || std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGTERM);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  std::ifstream in(log_file);
  result.log.assign(std::istreambuf_iterator<char>(in), {});
  return result;
}

/// A tmpfs of `size` mounted at `where` in a mount namespace of this test process's own (which
/// the servers it starts inherit): nothing outside the test sees it. Needs root.
class SmallFilesystem {
 public:
  SmallFilesystem(const std::filesystem::path& where, const std::string& size) {
    if (unshare(CLONE_NEWNS) != 0) {
      error_ = std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
      return;
    }
    // Private, so that the mount below does not propagate back to the namespace we came from.
    if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      error_ = std::string("mount --make-rprivate /: ") + std::strerror(errno);
      return;
    }
    std::filesystem::create_directories(where);
    if (mount("tmpfs", where.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) {
      error_ = std::string("mount -t tmpfs: ") + std::strerror(errno);
      return;
    }
    mounted_ = where;
  }
  ~SmallFilesystem() {
    if (!mounted_.empty()) umount2(mounted_.c_str(), MNT_DETACH);
  }
  SmallFilesystem(const SmallFilesystem&) = delete;
  SmallFilesystem& operator=(const SmallFilesystem&) = delete;

  /// Why it could not be mounted; empty if it is.
  const std::string& error() const { return error_; }

 private:
  std::filesystem::path mounted_;
  std::string error_;
};

/// Writes `file` until the filesystem holding it is full; the bytes written.
std::uint64_t fill_up(const std::filesystem::path& file, std::uint64_t at_most) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + file.string());
  const std::string block(4096, 'x');
  std::uint64_t written = 0;
  while (written < at_most) {
    const auto n = ::write(fd, block.data(), block.size());
    if (n <= 0) break;  // ENOSPC
    written += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return written;
}

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
    wait_until_running(client, slow);
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

TEST(Durability, ARunningJobCancelledBeforeASigkillStaysCancelled) {
  TempDir dir;
  const auto args = with_data_dir(dir, {"--enable-test-jobs"});
  std::uint32_t id = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    // A job of one minute, provably running (a worker has its task) when it is cancelled.
    id = submit(client, {"test-slow", "sum", {}, protocol::Documents{{{"60000", "slow"}}}});
    for (auto state = JobState::kQueued; state != JobState::kMapping;) {
      client.send_message(Opcode::kStatus, protocol::JobId{id});
      const auto reply = client.read_reply();
      ASSERT_TRUE(reply && reply->status == kOk);
      state = protocol::decode<protocol::JobProgress>(reply->body).value->state;
    }
    client.send_message(Opcode::kCancel, protocol::JobId{id});
    ASSERT_EQ(client.read_reply()->status, kOk);
    server.stop(SIGKILL);  // right after the OK: the cancellation was committed before it
  }
  ServerProcess server(args);
  RawClient client(server.port());
  // Known as cancelled from the start, not run again.
  client.send_message(Opcode::kFetch, protocol::JobId{id});
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "job-cancelled");
  EXPECT_EQ(server_stats(client).jobs_unfinished, 0u) << "the cancelled job runs again";
}

/// A SUBMIT or a CANCEL is answered once what it changed is committed, by the database writer's
/// thread: while the database cannot be written (here another process holds its write lock), that
/// request waits and every other connection is served.
TEST(Durability, ARequestWaitingForItsCommitHoldsUpOnlyItsOwnConnection) {
  TempDir dir;
  ServerProcess server(with_data_dir(dir));
  RawClient waiting(server.port());
  RawClient other(server.port());
  const auto done = submit(other, word_count_request({"before the lock"}));
  ASSERT_EQ(wait_for(other, done).status, kOk);
  const auto file = dir.path() / "data" / "mrd.sqlite3";

  std::uint32_t id = 0;
  {
    Sqlite lock(file);
    lock.exec("BEGIN IMMEDIATE");  // the write lock: the server's writes wait for it
    waiting.send_message(Opcode::kSubmit, word_count_request({"waits for the disk"}));
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(server_stats(other).jobs_done, 1u);
      EXPECT_EQ(as_map(result_of(wait_for(other, done))).at("lock"), 1u);
    }
    EXPECT_FALSE(waiting.read_reply(200ms)) << "answered before its row was committed";
    lock.exec("ROLLBACK");
    const auto reply = waiting.read_reply(30s);
    ASSERT_TRUE(reply);
    ASSERT_EQ(status_name(reply->status), "ok") << error_text(*reply);
    id = protocol::decode<protocol::JobId>(reply->body).value->id;
  }
  EXPECT_EQ(as_map(result_of(wait_for(waiting, id))).at("disk"), 1u);

  {
    Sqlite lock(file);
    lock.exec("BEGIN IMMEDIATE");
    waiting.send_message(Opcode::kCancel, protocol::JobId{id});
    EXPECT_EQ(server_stats(other).jobs_done, 2u);
    EXPECT_FALSE(waiting.read_reply(200ms)) << "answered before the cancellation was committed";
    lock.exec("ROLLBACK");
    const auto reply = waiting.read_reply(30s);
    ASSERT_TRUE(reply);
    EXPECT_EQ(status_name(reply->status), "ok");
  }
  EXPECT_EQ(status_name(wait_for(other, id).status), "job-cancelled");
}

/// SUBMITs from many clients that queue while the database is held are committed together once
/// it is free (one transaction): each gets its own id, and every one survives a SIGKILL.
TEST(Durability, SubmitsQueuedBehindACommitAreCommittedTogetherAndSurviveSigkill) {
  TempDir dir;
  std::vector<std::uint32_t> ids;
  {
    ServerProcess server(with_data_dir(dir));
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 20; ++i)
      clients.push_back(std::make_unique<RawClient>(server.port()));
    {
      Sqlite lock(dir.path() / "data" / "mrd.sqlite3");
      lock.exec("BEGIN IMMEDIATE");
      for (int i = 0; i < 20; ++i) {
        clients[i]->send_message(Opcode::kSubmit,
                                 word_count_request({"client " + std::to_string(i)}));
      }
      EXPECT_FALSE(clients[0]->read_reply(200ms)) << "answered before its row was committed";
      lock.exec("ROLLBACK");
    }
    for (auto& client : clients) {
      const auto reply = client->read_reply(30s);
      ASSERT_TRUE(reply);
      ASSERT_EQ(status_name(reply->status), "ok") << error_text(*reply);
      ids.push_back(protocol::decode<protocol::JobId>(reply->body).value->id);
    }
    server.stop(SIGKILL);
  }
  auto sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint32_t i = 0; i < sorted.size(); ++i)
    EXPECT_EQ(sorted[i], i + 1) << "ids are handed out once each, from 1";
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(as_map(result_of(wait_for(client, ids[i]))).at(std::to_string(i)), 1u)
        << "job " << ids[i];
  }
}

/// Pipelined requests behind a SUBMIT that waits for its commit are answered after it, in order.
TEST(Durability, RequestsPipelinedBehindACommitAreAnsweredInOrder) {
  TempDir dir;
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  std::string requests;
  for (int i = 0; i < 5; ++i) {
    protocol::append_message(requests, static_cast<std::uint8_t>(Opcode::kSubmit),
                             word_count_request({"job " + std::to_string(i)}));
    requests += std::string("\x05\0\0\0\0", 5);  // STATS
  }
  protocol::append_message(requests, static_cast<std::uint8_t>(Opcode::kCancel),
                           protocol::JobId{1});
  requests += std::string("\x04\0\0\0\0", 5);  // LIST
  client.send(requests);
  for (std::uint32_t i = 0; i < 5; ++i) {
    const auto submitted = client.read_reply();
    ASSERT_TRUE(submitted);
    ASSERT_EQ(status_name(submitted->status), "ok") << error_text(*submitted);
    EXPECT_EQ(protocol::decode<protocol::JobId>(submitted->body).value->id, i + 1);
    const auto stats = client.read_reply();
    ASSERT_TRUE(stats);
    // Each STATS comes after the SUBMIT before it was committed and counted.
    EXPECT_EQ(protocol::decode<protocol::ServerStats>(stats->body).value->jobs_submitted, i + 1);
  }
  const auto cancelled = client.read_reply();
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(status_name(cancelled->status), "ok");
  const auto list = client.read_reply();
  ASSERT_TRUE(list);
  const auto jobs = protocol::decode<protocol::JobList>(list->body).value->jobs;
  ASSERT_EQ(jobs.size(), 5u);
  EXPECT_EQ(jobs[0].state, protocol::JobState::kCancelled);
}

/// Sends a SUBMIT whose key was used before with another request: BAD_REQUEST, saying so.
void expect_key_refused(RawClient& client, const protocol::SubmitRequest& request) {
  client.send_message(Opcode::kSubmit, request);
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-request");
  EXPECT_NE(error_text(*reply).find("idempotency key was already used with a different request"),
            std::string::npos)
      << error_text(*reply);
}

TEST(Durability, TheSameIdempotencyKeyGetsTheSameJobAlsoAfterARestart) {
  TempDir dir;
  std::uint32_t first = 0;
  {
    ServerProcess server(with_data_dir(dir));
    RawClient client(server.port());
    first = submit(client, keyed(word_count_request({"once only"}), "key-1"));
    EXPECT_EQ(submit(client, keyed(word_count_request({"once only"}), "key-1")), first);
    expect_key_refused(client, keyed(word_count_request({"someone else's"}), "key-1"));
    EXPECT_NE(submit(client, keyed(word_count_request({"other"}), "key-2")), first);
    EXPECT_EQ(jobs_submitted(client), 2u);
    server.stop(SIGKILL);
  }
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  EXPECT_EQ(submit(client, keyed(word_count_request({"once only"}), "key-1")), first);
  EXPECT_EQ(as_map(result_of(wait_for(client, first))).at("once"), 1u);
  // Finished now: its key is still bound to its request.
  EXPECT_EQ(submit(client, keyed(word_count_request({"once only"}), "key-1")), first);
  expect_key_refused(client, keyed(word_count_request({"someone else's"}), "key-1"));
  EXPECT_EQ(jobs_submitted(client), 0u) << "a resent or refused SUBMIT started a job";
}

TEST(Durability, IdempotencyKeysWorkInMemoryToo) {
  ServerProcess server;
  RawClient client(server.port());
  const auto first = submit(client, keyed(word_count_request({"a"}), "k"));
  EXPECT_EQ(submit(client, keyed(word_count_request({"a"}), "k")), first);
  // Any other byte of the request is another request, options included.
  expect_key_refused(client, keyed(word_count_request({"b"}), "k"));
  expect_key_refused(client, keyed(word_count_request({"a"}, 4096), "k"));
  EXPECT_NE(submit(client, word_count_request({"a"})), first);  // no key: a new job each time
  EXPECT_NE(submit(client, word_count_request({"a"})), first);
  EXPECT_EQ(jobs_submitted(client), 3u);
}

/// A big SUBMIT (received into a file as it arrives, and hashed as it arrives) is bound to every
/// byte of its body, from its options to its last byte of text: in memory and with a data
/// directory.
TEST(Durability, IdempotencyKeysBindEveryByteOfABigSubmit) {
  TempDir dir;
  for (const bool durable : {false, true}) {
    ServerProcess server(durable ? with_data_dir(dir) : std::vector<std::string>{});
    RawClient client(server.port());
    const auto text = random_text(100000, 5);  // about 600 KB: an upload, not a buffered one
    const auto first = submit(client, keyed(word_count_request({text}), "big"));
    EXPECT_EQ(submit(client, keyed(word_count_request({text}), "big")), first);
    auto changed = text;
    changed.front() = changed.front() == 'x' ? 'y' : 'x';
    expect_key_refused(client, keyed(word_count_request({changed}), "big"));
    changed = text;
    changed[text.size() / 2] = changed[text.size() / 2] == 'x' ? 'y' : 'x';
    expect_key_refused(client, keyed(word_count_request({changed}), "big"));
    changed = text;
    changed.back() = changed.back() == 'x' ? 'y' : 'x';
    expect_key_refused(client, keyed(word_count_request({changed}), "big"));
    expect_key_refused(client, keyed(word_count_request({text}, 1 << 20), "big"));
    EXPECT_EQ(jobs_submitted(client), 1u) << (durable ? "with a data directory" : "in memory");
    EXPECT_EQ(as_map(result_of(wait_for(client, first))), reference_word_count({text}));
  }
}

TEST(Durability, ADatabaseOfThePreviousVersionIsMigratedAndItsKeysBound) {
  TempDir dir;
  const auto data = dir.path() / "data";
  std::filesystem::create_directories(data);
  const auto unfinished = keyed(word_count_request({"left over"}), "old-unfinished");
  {
    // As the previous version left it: no application_id, no digests, no marker.
    Sqlite old(data / "mrd.sqlite3");
    old.exec("PRAGMA journal_mode=WAL");
    old.exec(kPreviousSchema);
    old.exec(
        "INSERT INTO jobs (id, idempotency_key, state, failure, body) VALUES "
        "(1, 'old-finished', 4, " +
        std::to_string(static_cast<int>(Status::kJobFailed)) + ", 'it failed back then')");
    old.exec_with_blob(
        "INSERT INTO jobs (id, idempotency_key, state, request) VALUES (2, 'old-unfinished', 0, "
        "?1)",
        protocol::encode(unfinished));
    old.exec("INSERT INTO counters (name, value) VALUES ('highest_id', 2)");
  }
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  EXPECT_EQ(as_map(result_of(wait_for(client, 2))).at("left"), 1u);
  EXPECT_EQ(submit(client, unfinished), 2u);
  expect_key_refused(client, keyed(word_count_request({"another"}), "old-unfinished"));
  // A finished job of that version kept no request to digest: its key keeps the rule it was
  // accepted under (docs/protocol.md, "Idempotency").
  EXPECT_EQ(submit(client, keyed(word_count_request({"anything"}), "old-finished")), 1u);
  EXPECT_EQ(jobs_submitted(client), 0u);
  EXPECT_EQ(submit(client, word_count_request({"new"})), 3u);
  EXPECT_TRUE(std::filesystem::exists(data / "mrd.marker"));
}

TEST(Durability, JobsOfADatabaseWithoutTenantsBelongToNoTenant) {
  TempDir dir;
  const auto data = dir.path() / "data";
  std::filesystem::create_directories(data);
  const auto result = protocol::encode(protocol::JobResult{protocol::Counts{{{"old", 1}}}});
  {
    // As schema version 2 left it: keys unique across the whole table, no tenant column.
    Sqlite old(data / "mrd.sqlite3");
    old.exec("PRAGMA journal_mode=WAL");
    old.exec(kPreviousSchema);
    old.exec(
        "ALTER TABLE jobs ADD COLUMN request_digest BLOB; ALTER TABLE jobs ADD COLUMN input_file "
        "TEXT; ALTER TABLE jobs ADD COLUMN input_offset INTEGER; ALTER TABLE jobs ADD COLUMN "
        "input_digest BLOB; PRAGMA application_id = 1297237041; PRAGMA user_version = 2");
    old.exec_with_blob(
        "INSERT INTO jobs (id, idempotency_key, state, body) VALUES (1, 'nightly', 3, ?1)", result);
    old.exec("INSERT INTO counters (name, value) VALUES ('highest_id', 1)");
  }
  AuthFile tokens;
  ServerProcess server(with_data_dir(dir, {"--auth-file", tokens.path()}));
  auto ops = connect_as(server, kOpsToken);
  auto alice = connect_as(server, kAliceToken);
  // Submitted without a token: nobody's, so an admin's only.
  EXPECT_EQ(result_of(wait_for(*ops, 1)), protocol::decode<protocol::JobResult>(result).value);
  EXPECT_EQ(ask_about(*alice, Opcode::kFetch, 1), not_kept(1));
  // Its key is no tenant's key: Alice's "nightly" is a job of her own, beside it in the table.
  EXPECT_EQ(submit(*alice, keyed(word_count_request({"alice"}), "nightly")), 2u);
  EXPECT_EQ(submit(*alice, keyed(word_count_request({"alice"}), "nightly")), 2u);
  Sqlite now(data / "mrd.sqlite3");
  EXPECT_EQ(now.integers("PRAGMA user_version"), std::vector<std::int64_t>{4});
  EXPECT_EQ(now.integers(
                "SELECT id FROM jobs WHERE CAST(idempotency_key AS TEXT) = 'nightly' ORDER BY id"),
            (std::vector<std::int64_t>{1, 2}));
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

TEST(Durability, ADamagedDatabaseRefusesToStartAndSaysHowToRecover) {
  TempDir dir;
  const auto args = with_data_dir(dir);
  const auto file = dir.path() / "data" / "mrd.sqlite3";
  std::vector<std::uint32_t> ids;
  std::vector<std::string> texts;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    for (int i = 0; i < 600; ++i) {
      texts.push_back("job " + std::to_string(i) + " " + random_text(30, 100 + i));
      ids.push_back(submit(client, word_count_request({texts.back()})));
    }
    for (auto id : ids)
      ASSERT_EQ(wait_for(client, id).status, kOk);
    ASSERT_EQ(server.stop(), 0) << "not a clean stop";
  }
  // Two leaf pages of the jobs table, a third and two thirds of the way through, each holding
  // job rows, garbled in the main file (checkpointed, so the rows are there and not in the log).
  std::vector<std::int64_t> pages;
  std::int64_t page_size = 0;
  {
    Sqlite db(file);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    page_size = db.integers("PRAGMA page_size").at(0);
    pages = db.integers(
        "SELECT pageno FROM dbstat WHERE name = 'jobs' AND pagetype = 'leaf' AND ncell > 0 "
        "ORDER BY pageno");
  }
  ASSERT_GE(pages.size(), 6u);
  ASSERT_FALSE(std::filesystem::exists(file.string() + "-wal"));
  for (const auto page : {pages[pages.size() / 3], pages[2 * pages.size() / 3]}) {
    std::mt19937 random(static_cast<unsigned>(page));
    std::string noise(static_cast<std::size_t>(page_size), '\0');
    for (auto& c : noise)
      c = static_cast<char>(random());
    std::fstream out(file, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp((page - 1) * page_size);
    out.write(noise.data(), static_cast<std::streamsize>(noise.size()));
    ASSERT_TRUE(out.good());
  }

  const auto refused = start_up(args);
  EXPECT_EQ(refused.exit_code, 5) << refused.log;
  EXPECT_NE(refused.log.find(file.string() + " is damaged"), std::string::npos) << refused.log;
  EXPECT_NE(refused.log.find("salvage-data-dir.sh"), std::string::npos) << refused.log;

  // The recovery path of docs/reliability.md: what can be read is served again, the rest is
  // expired, and ids go on from where they were.
  const auto aside = dir.path() / "old";
  std::filesystem::rename(dir.path() / "data", aside);
  const auto salvage = std::string("bash " MRD_SALVAGE_SCRIPT " ") +
                       (aside / "mrd.sqlite3").string() + " " + (dir.path() / "data").string();
  ASSERT_EQ(std::system(salvage.c_str()), 0) << salvage;
  ServerProcess server(args);
  RawClient client(server.port());
  std::size_t served = 0, expired = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    client.send_message(Opcode::kFetch, protocol::JobId{ids[i]});
    const auto reply = client.read_reply();
    ASSERT_TRUE(reply);
    if (reply->status == kOk) {
      ++served;
      EXPECT_EQ(as_map(result_of(*reply)), reference_word_count({texts[i]})) << "job " << ids[i];
    } else {
      ++expired;
      EXPECT_EQ(status_name(reply->status), "job-expired");
    }
  }
  EXPECT_GT(served, ids.size() / 2);
  std::cout << "recovered " << served << " of " << ids.size() << " jobs; " << expired
            << " were on the garbled pages\n";
  EXPECT_EQ(submit(client, word_count_request({"next"})), ids.back() + 1);
}

TEST(Durability, ADirectoryThatHadJobsIsNeverTreatedAsNew) {
  TempDir dir;
  const auto args = with_data_dir(dir);
  const auto data = dir.path() / "data";
  const auto file = data / "mrd.sqlite3";
  std::uint32_t id = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    id = submit(client, word_count_request({"remember me"}));
    ASSERT_EQ(wait_for(client, id).status, kOk);
    ASSERT_EQ(server.stop(), 0) << "not a clean stop";
  }
  ASSERT_TRUE(std::filesystem::exists(data / "mrd.marker"));
  ASSERT_FALSE(std::filesystem::exists(file.string() + "-wal"));
  const auto saved = dir.path() / "saved.sqlite3";
  std::filesystem::rename(file, saved);

  auto refused = start_up(args);
  EXPECT_EQ(refused.exit_code, 5) << refused.log;
  EXPECT_NE(refused.log.find(file.string() + " is missing"), std::string::npos) << refused.log;
  EXPECT_NE(refused.log.find("mrd.marker"), std::string::npos) << refused.log;
  EXPECT_FALSE(std::filesystem::exists(file)) << "the refused start created a new database";

  std::ofstream(file).close();
  refused = start_up(args);
  EXPECT_EQ(refused.exit_code, 5) << refused.log;
  EXPECT_NE(refused.log.find(file.string() + " is empty"), std::string::npos) << refused.log;

  {
    Sqlite other(file);
    other.exec("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('not jobs')");
  }
  refused = start_up(args);
  EXPECT_EQ(refused.exit_code, 5) << refused.log;
  EXPECT_NE(refused.log.find(file.string() + " is not an mrd database"), std::string::npos)
      << refused.log;

  std::ofstream(file, std::ios::trunc) << "not a database at all, but not empty either\n";
  refused = start_up(args);
  EXPECT_EQ(refused.exit_code, 5) << refused.log;
  EXPECT_NE(refused.log.find(file.string() + " is damaged"), std::string::npos) << refused.log;

  // With its database back, the directory serves what it held.
  std::filesystem::rename(saved, file);
  ServerProcess server(args);
  RawClient client(server.port());
  EXPECT_EQ(as_map(result_of(wait_for(client, id))).at("remember"), 1u);
}

TEST(Durability, AFullDiskSaysSoAndTheServerGoesOn) {
  TempDir dir;
  const auto data = dir.path() / "data";
  SmallFilesystem disk(data, "4m");
  if (!disk.error().empty()) GTEST_SKIP() << "needs root for a private tmpfs: " << disk.error();
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  const auto before = submit(client, word_count_request({"written before the disk filled"}));
  ASSERT_EQ(wait_for(client, before).status, kOk);

  ASSERT_GT(fill_up(data / "filler", 8u << 20), 0u);
  const auto text = random_text(100000, 5);  // about 600 KB: more than any space left
  client.send_message(Opcode::kSubmit, word_count_request({text}));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "server-error");
  EXPECT_NE(error_text(*reply).find("disk holding the database is full"), std::string::npos)
      << error_text(*reply);
  EXPECT_NE(server.log().find("disk holding the database is full"), std::string::npos)
      << server.log();
  // Finished jobs are still served, and nothing was accepted.
  EXPECT_EQ(as_map(result_of(wait_for(client, before))).at("filled"), 1u);
  EXPECT_EQ(jobs_submitted(client), 1u);

  // A little space back, less than the body: its upload to a file in inputs/ starts, then
  // fails. The rest of the body is not read, so that connection is closed; nothing is left.
  std::filesystem::resize_file(data / "filler",
                               std::filesystem::file_size(data / "filler") - (256u << 10));
  {
    RawClient uploader(server.port());
    uploader.send_message(Opcode::kSubmit, word_count_request({text}));
    const auto refused = uploader.read_reply();
    ASSERT_TRUE(refused);
    EXPECT_EQ(status_name(refused->status), "server-error");
    EXPECT_NE(error_text(*refused).find("cannot keep the job's input"), std::string::npos)
        << error_text(*refused);
    EXPECT_NE(error_text(*refused).find("No space left on device"), std::string::npos)
        << error_text(*refused);
    EXPECT_FALSE(uploader.read_reply()) << "the connection stays open";
  }
  EXPECT_TRUE(std::filesystem::is_empty(data / "inputs"));
  EXPECT_EQ(jobs_submitted(client), 1u);

  // Space back: the same SUBMIT is accepted and runs.
  std::filesystem::remove(data / "filler");
  const auto after = submit(client, word_count_request({text}));
  EXPECT_EQ(after, before + 1);
  EXPECT_EQ(as_map(result_of(wait_for(client, after))), reference_word_count({text}));
}

TEST(Durability, TheLogIsCheckpointedIntoTheDatabaseWhileTheServerRuns) {
  // Commits append to mrd.sqlite3-wal; checkpoints (on a thread of their own: checkpointer.hpp)
  // copy the log into mrd.sqlite3 once it passes 1,000 pages, without waiting for a restart.
  TempDir dir;
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < 300; ++i) {
    // 1,500 distinct words: a result of about 40 KB, kept in its row (one of 64 KiB or more would
    // be a file of its own). 12 MB in all: up to 1,000 pages (4 MB) of it may still be in the
    // log, waiting for the next checkpoint, when the database file is looked at.
    ids.push_back(submit(client, word_count_request({random_text(1500, 500 + i, 1000000)})));
  }
  for (const auto id : ids)
    ASSERT_EQ(wait_for(client, id).status, kOk);
  const auto database = dir.path() / "data" / "mrd.sqlite3";
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::filesystem::file_size(database) < (4u << 20) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  std::printf("[ figures ] database file: %llu bytes\n",
              static_cast<unsigned long long>(std::filesystem::file_size(database)));
  EXPECT_GE(std::filesystem::file_size(database), 4u << 20) << "the log was never checkpointed";
  // And a restart serves every result, from the database and what is left in the log.
  server.stop(SIGKILL);
  ServerProcess again(with_data_dir(dir));
  RawClient after(again.port());
  for (const auto id : ids)
    EXPECT_EQ(wait_for(after, id).status, kOk) << "job " << id;
}

/// An environment variable set for the processes a test starts, until the end of its scope.
class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnvironment() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

/// tests/fsync_probe.cpp, preloaded into the servers started while this exists.
class FsyncProbe {
 public:
  FsyncProbe() = default;

 private:
  ScopedEnvironment preload_{"LD_PRELOAD", MRD_FSYNC_PROBE};
  // A sanitizer's runtime wants to be loaded first; here the probe is.
  ScopedEnvironment asan_options_{
      "ASAN_OPTIONS", std::string(std::getenv("ASAN_OPTIONS") ? std::getenv("ASAN_OPTIONS") : "") +
                          ":verify_asan_link_order=0"};
};

/// How many fsync and fdatasync calls mrd, started with `extra_args` and a data directory, makes
/// while `jobs` tiny jobs are submitted one after the other (each SUBMIT is its own commit).
std::uint64_t syncs_while_submitting(const std::vector<std::string>& extra_args, int jobs) {
  TempDir dir;
  const auto log = dir.path() / "syncs";
  const auto syncs = [&] {
    return std::filesystem::exists(log) ? std::filesystem::file_size(log) : 0;
  };
  FsyncProbe probe;
  ScopedEnvironment counted_into("MRD_TEST_FSYNC_LOG", log.string());
  ServerProcess server(with_data_dir(dir, extra_args));
  RawClient client(server.port());
  // The start-up's syncs (creating the database) are not what is measured.
  EXPECT_EQ(wait_for(client, submit(client, word_count_request({"warm up"}))).status, kOk);
  const auto before = syncs();
  for (int i = 0; i < jobs; ++i)
    submit(client, word_count_request({"job " + std::to_string(i)}));
  return syncs() - before;
}

TEST(Durability, WithFsyncEveryCommitIsSyncedAndWithoutItNone) {
  // synchronous=FULL syncs the write-ahead log at every commit; NORMAL only at checkpoints,
  // which twenty tiny jobs do not reach.
  constexpr int kJobs = 20;
  const auto with_fsync = syncs_while_submitting({"--fsync"}, kJobs);
  const auto without = syncs_while_submitting({}, kJobs);
  EXPECT_GE(with_fsync, static_cast<std::uint64_t>(kJobs));
  EXPECT_EQ(without, 0u);
}

/// With --fsync a big input's bytes reach the disk before its row commits. While that sync runs
/// (here held by the probe, as a slow disk would hold it) the big SUBMIT waits for its answer,
/// and every other client's jobs are committed, answered and run.
TEST(Durability, WithFsyncABigInputsSyncHoldsUpOnlyItsOwnSubmit) {
  TempDir dir;
  const auto hold = dir.path() / "hold";
  const auto exists = [](const std::filesystem::path& path) {
    return std::filesystem::exists(path);
  };
  std::ofstream(hold).put('h');
  FsyncProbe probe;
  ScopedEnvironment held_while("MRD_TEST_FSYNC_HOLD", hold.string());
  ServerProcess server(with_data_dir(dir, {"--fsync"}));
  RawClient big_client(server.port());
  RawClient other(server.port());
  const auto text = random_text(60000, 11);
  const auto big = word_count_request({text});
  ASSERT_GT(protocol::encode(big).size(), 64u << 10);  // big enough to be received into a file
  big_client.send_message(Opcode::kSubmit, big);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!exists(hold.string() + ".waiting")) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the big input was never synced";
    std::this_thread::sleep_for(5ms);
  }
  for (int i = 0; i < 5; ++i) {
    const auto id = submit(other, word_count_request({"beside the sync " + std::to_string(i)}));
    EXPECT_EQ(as_map(result_of(wait_for(other, id))).at("sync"), 1u);
  }
  EXPECT_FALSE(exists(hold.string() + ".gave-up"))
      << "the other client's jobs waited for the big input's sync";
  EXPECT_FALSE(big_client.read_reply(100ms)) << "answered before its input was synced";

  std::filesystem::remove(hold);
  const auto reply = big_client.read_reply(30s);
  ASSERT_TRUE(reply);
  ASSERT_EQ(status_name(reply->status), "ok") << error_text(*reply);
  const auto id = protocol::decode<protocol::JobId>(reply->body).value->id;
  EXPECT_EQ(as_map(result_of(wait_for(big_client, id))), reference_word_count({text}));
}

/// The names of the files in the data directory's `folder`: inputs/ (where big inputs are kept)
/// or results/ (big results).
std::set<std::string> files_in(const TempDir& dir, const char* folder) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() / "data" / folder))
    names.insert(entry.path().filename().string());
  return names;
}

/// Waits until `folder` holds `names`; false after 20 s.
bool files_become(const TempDir& dir, const char* folder, const std::set<std::string>& names) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (files_in(dir, folder) != names) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

std::set<std::string> input_files(const TempDir& dir) {
  return files_in(dir, "inputs");
}

bool inputs_become(const TempDir& dir, const std::set<std::string>& names) {
  return files_become(dir, "inputs", names);
}

/// A job that never ends (until cancelled), holding the only worker, and a big word count queued
/// behind it: the big one's input stays on disk for the test to look at.
struct BigJobBehindAHang {
  std::uint32_t hang = 0;
  std::uint32_t big = 0;
};

BigJobBehindAHang submit_big_job_behind_a_hang(RawClient& client,
                                               const protocol::SubmitRequest& big) {
  BigJobBehindAHang ids;
  ids.hang = submit(client, {"test-hang", "sum", {}, protocol::Documents{{{"d", "x"}}}});
  ids.big = submit(client, big);
  return ids;
}

TEST(Durability, ABigInputIsAFileTheRowNamesAndTheJobRunsFromItAfterSigkill) {
  TempDir dir;
  const auto args = with_data_dir(dir, {"--enable-test-jobs", "--workers", "1"});
  const auto text = random_text(60000, 7);
  const auto request = keyed(word_count_request({text}), "big-key");
  ASSERT_GT(protocol::encode(request).size(), 64u << 10);  // big enough to be received into a file
  BigJobBehindAHang ids;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    ids = submit_big_job_behind_a_hang(client, request);
    // Acknowledged, so committed: the file under the job's name, and a row that only names it.
    EXPECT_EQ(input_files(dir), std::set<std::string>{std::to_string(ids.big) + ".input"});
    Sqlite db(dir.path() / "data" / "mrd.sqlite3");
    const auto where = " FROM jobs WHERE id = " + std::to_string(ids.big);
    EXPECT_EQ(db.integers("SELECT request IS NULL" + where), std::vector<std::int64_t>{1});
    EXPECT_EQ(db.integers("SELECT input_file = '" + std::to_string(ids.big) + ".input'" + where),
              std::vector<std::int64_t>{1});
    EXPECT_EQ(db.integers("SELECT length(input_digest)" + where), std::vector<std::int64_t>{32});
    EXPECT_EQ(db.integers("SELECT length(request_digest)" + where), std::vector<std::int64_t>{32});
    // The digest taken as the body arrived binds the key like a whole body's digest.
    EXPECT_EQ(submit(client, request), ids.big);
    expect_key_refused(client, keyed(word_count_request({text + " more"}), "big-key"));
    server.stop(SIGKILL);
  }
  ServerProcess server(args);
  RawClient client(server.port());
  client.send_message(Opcode::kCancel, protocol::JobId{ids.hang});  // it hangs again: let it go
  ASSERT_EQ(client.read_reply()->status, kOk);
  EXPECT_EQ(as_map(result_of(wait_for(client, ids.big))), reference_word_count({text}));
  // Its result is committed and its request dropped; the file is removed after that commit.
  EXPECT_TRUE(inputs_become(dir, {}));
  EXPECT_EQ(submit(client, request), ids.big);
}

/// Overwrites the byte at `offset` of `file` with '#'.
void damage_byte(const std::filesystem::path& file, std::streamoff offset) {
  std::fstream bytes(file, std::ios::in | std::ios::out | std::ios::binary);
  bytes.seekp(offset);
  bytes.put('#');
}

/// Expects job `id` to have failed, its reason saying `why`.
void expect_failed_saying(RawClient& client, std::uint32_t id, const std::string& why) {
  const auto reply = wait_for(client, id);
  EXPECT_EQ(status_name(reply.status), "job-failed");
  EXPECT_NE(error_text(reply).find(why), std::string::npos) << error_text(reply);
}

TEST(Durability, ADamagedOrMissingInputFileFailsItsJobAndSaysWhy) {
  TempDir dir;
  const auto args = with_data_dir(dir, {"--enable-test-jobs", "--workers", "1"});
  std::uint32_t hang = 0, damaged = 0, missing = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    const auto ids =
        submit_big_job_behind_a_hang(client, word_count_request({random_text(60000, 8)}));
    hang = ids.hang;
    damaged = ids.big;
    missing = submit(client, word_count_request({random_text(60000, 9)}));
    server.stop(SIGKILL);
  }
  const auto inputs = dir.path() / "data" / "inputs";
  damage_byte(inputs / (std::to_string(damaged) + ".input"), 100000);
  std::filesystem::remove(inputs / (std::to_string(missing) + ".input"));
  ServerProcess server(args);
  RawClient client(server.port());
  client.send_message(Opcode::kCancel, protocol::JobId{hang});
  ASSERT_EQ(client.read_reply()->status, kOk);
  expect_failed_saying(client, damaged, "does not hold the bytes that were stored");
  expect_failed_saying(client, missing, "cannot be opened");
  EXPECT_TRUE(inputs_become(dir, {}));
  EXPECT_EQ(as_map(result_of(wait_for(client, submit(client, word_count_request({"a b a"}))))),
            reference_word_count({"a b a"}));
}

TEST(Durability, TheSalvageScriptCarriesTheInputFilesOfUnfinishedJobs) {
  TempDir dir;
  const auto args = with_data_dir(dir, {"--enable-test-jobs", "--workers", "1"});
  const auto text = random_text(60000, 11);
  BigJobBehindAHang ids;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    ids = submit_big_job_behind_a_hang(client, word_count_request({text}));
    server.stop(SIGKILL);
  }
  const auto aside = dir.path() / "old";
  std::filesystem::rename(dir.path() / "data", aside);
  const auto salvage = std::string("bash " MRD_SALVAGE_SCRIPT " ") +
                       (aside / "mrd.sqlite3").string() + " " + (dir.path() / "data").string();
  ASSERT_EQ(std::system(salvage.c_str()), 0) << salvage;
  EXPECT_EQ(input_files(dir), std::set<std::string>{std::to_string(ids.big) + ".input"});
  ServerProcess server(args);
  RawClient client(server.port());
  client.send_message(Opcode::kCancel, protocol::JobId{ids.hang});
  ASSERT_EQ(client.read_reply()->status, kOk);
  EXPECT_EQ(as_map(result_of(wait_for(client, ids.big))), reference_word_count({text}));
}

TEST(Durability, AnUploadCutShortAndFilesNoJobNeedsLeaveNothingBehind) {
  TempDir dir;
  const auto args = with_data_dir(dir);
  std::string frame;
  protocol::append_message(frame, static_cast<std::uint8_t>(Opcode::kSubmit),
                           word_count_request({random_text(200000, 10)}));
  ASSERT_GT(frame.size(), 1u << 20);
  {
    ServerProcess server(args);
    {
      RawClient client(server.port());
      client.send(std::string_view(frame).substr(0, frame.size() / 2));
      // Half of it is in a part file in inputs/, which the client leaving removes.
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      std::set<std::string> names;
      while ((names = input_files(dir)).size() != 1 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(2ms);
      ASSERT_EQ(names.size(), 1u);
      EXPECT_TRUE(names.begin()->ends_with(".part")) << *names.begin();
    }
    EXPECT_TRUE(inputs_become(dir, {}));
    RawClient client(server.port());
    EXPECT_EQ(jobs_submitted(client), 0u);
    server.stop(SIGKILL);
  }
  // What a kill may leave: a part file, and a finished job's file not yet removed.
  const auto inputs = dir.path() / "data" / "inputs";
  std::ofstream(inputs / "upload-x1y2z3.part") << "half an upload";
  std::ofstream(inputs / "77.input") << "a finished job's input";
  ServerProcess server(args);
  EXPECT_EQ(input_files(dir), std::set<std::string>{});
}

/// A text whose word count's result is about 100 KB: 8,000 distinct words.
std::string big_result_text(unsigned seed) {
  return random_text(8000, seed, 1000000);
}

std::string result_file(std::uint32_t id) {
  return std::to_string(id) + ".result";
}

TEST(Durability, ABigResultIsAFileTheRowNamesAndIsServedAgainAfterSigkill) {
  TempDir dir;
  const auto args = with_data_dir(dir);
  const auto text = big_result_text(21);
  std::uint32_t big = 0, tiny = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    big = submit(client, word_count_request({text}));
    tiny = submit(client, word_count_request({"a b a"}));
    ASSERT_EQ(wait_for(client, big).status, kOk);
    ASSERT_EQ(wait_for(client, tiny).status, kOk);
    // FETCH shows a result once it is committed: by then its file is written, and the row names
    // it instead of holding it. The tiny one's result is in its row.
    EXPECT_EQ(files_in(dir, "results"), std::set<std::string>{result_file(big)});
    EXPECT_GE(std::filesystem::file_size(dir.path() / "data" / "results" / result_file(big)),
              64u << 10);
    Sqlite db(dir.path() / "data" / "mrd.sqlite3");
    EXPECT_EQ(db.integers("SELECT id FROM jobs WHERE body IS NULL AND result_file = id || "
                          "'.result' AND length(result_digest) = 32"),
              std::vector<std::int64_t>{big});
    EXPECT_EQ(db.integers("SELECT id FROM jobs WHERE body IS NOT NULL AND result_file IS NULL"),
              std::vector<std::int64_t>{tiny});
    server.stop(SIGKILL);
  }
  // What a kill may leave: a result written just before its row would have named it.
  std::ofstream(dir.path() / "data" / "results" / "77.result") << "a result no row names";
  ServerProcess server(args);
  RawClient client(server.port());
  EXPECT_EQ(as_map(result_of(wait_for(client, big))), reference_word_count({text}));
  EXPECT_EQ(as_map(result_of(wait_for(client, tiny))), reference_word_count({"a b a"}));
  EXPECT_EQ(files_in(dir, "results"), std::set<std::string>{result_file(big)});
  // Cancelling a finished job releases its result, and its file once that is committed.
  client.send_message(Opcode::kCancel, protocol::JobId{big});
  ASSERT_EQ(client.read_reply()->status, kOk);
  EXPECT_TRUE(files_become(dir, "results", {}));
}

TEST(Durability, AnEvictedResultTakesItsFileWithIt) {
  TempDir dir;
  ServerProcess server(with_data_dir(dir, {"--max-retained-mib", "1"}));
  RawClient client(server.port());
  // Each result is about 100 KB in memory and more with its bookkeeping: fewer than 15 fit.
  std::vector<std::uint32_t> ids;
  for (unsigned i = 0; i < 15; ++i) {
    ids.push_back(submit(client, word_count_request({big_result_text(30 + i)})));
    ASSERT_EQ(wait_for(client, ids.back()).status, kOk);
  }
  client.send_message(Opcode::kFetch, protocol::JobId{ids.front()});
  EXPECT_EQ(status_name(client.read_reply()->status), "job-expired");
  // The files left are those of the rows left, and those are the results still served.
  Sqlite db(dir.path() / "data" / "mrd.sqlite3");
  std::set<std::string> kept;
  for (const auto id : db.integers("SELECT id FROM jobs WHERE result_file IS NOT NULL")) {
    kept.insert(result_file(static_cast<std::uint32_t>(id)));
    EXPECT_EQ(wait_for(client, static_cast<std::uint32_t>(id)).status, kOk) << "job " << id;
  }
  EXPECT_LT(kept.size(), ids.size());
  EXPECT_FALSE(kept.empty());
  EXPECT_TRUE(files_become(dir, "results", kept));
}

TEST(Durability, ADamagedOrMissingResultFileFailsItsJobAndSaysWhy) {
  TempDir dir;
  const auto args = with_data_dir(dir);
  std::uint32_t damaged = 0, missing = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    damaged = submit(client, word_count_request({big_result_text(40)}));
    missing = submit(client, word_count_request({big_result_text(41)}));
    ASSERT_EQ(wait_for(client, damaged).status, kOk);
    ASSERT_EQ(wait_for(client, missing).status, kOk);
    server.stop(SIGKILL);
  }
  const auto results = dir.path() / "data" / "results";
  damage_byte(results / result_file(damaged), 1000);
  std::filesystem::remove(results / result_file(missing));
  ServerProcess server(args);
  RawClient client(server.port());
  expect_failed_saying(client, damaged, "does not hold the bytes that were stored");
  expect_failed_saying(client, missing, "cannot be opened");
  EXPECT_EQ(as_map(result_of(wait_for(client, submit(client, word_count_request({"a b a"}))))),
            reference_word_count({"a b a"}));
}

TEST(Durability, TheSalvageScriptCarriesResultFiles) {
  TempDir dir;
  const auto args = with_data_dir(dir);
  const auto text = big_result_text(50);
  std::uint32_t big = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    big = submit(client, word_count_request({text}));
    ASSERT_EQ(wait_for(client, big).status, kOk);
    server.stop(SIGKILL);
  }
  const auto aside = dir.path() / "old";
  std::filesystem::rename(dir.path() / "data", aside);
  const auto salvage = std::string("bash " MRD_SALVAGE_SCRIPT " ") +
                       (aside / "mrd.sqlite3").string() + " " + (dir.path() / "data").string();
  ASSERT_EQ(std::system(salvage.c_str()), 0) << salvage;
  EXPECT_EQ(files_in(dir, "results"), std::set<std::string>{result_file(big)});
  ServerProcess server(args);
  RawClient client(server.port());
  EXPECT_EQ(as_map(result_of(wait_for(client, big))), reference_word_count({text}));
}

TEST(Durability, ADatabaseOfSchemaVersion3KeepsItsResultsInRows) {
  TempDir dir;
  const auto data = dir.path() / "data";
  std::filesystem::create_directories(data);
  const auto result = protocol::encode(protocol::JobResult{protocol::Counts{{{"old", 1}}}});
  {
    // As schema version 3 left it: no result_* columns.
    Sqlite old(data / "mrd.sqlite3");
    old.exec("PRAGMA journal_mode=WAL");
    old.exec(R"sql(
      CREATE TABLE jobs (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL DEFAULT '',
        idempotency_key BLOB, state INTEGER NOT NULL, failure INTEGER NOT NULL DEFAULT 0,
        request BLOB, body BLOB, request_digest BLOB, input_file TEXT, input_offset INTEGER,
        input_digest BLOB, UNIQUE (tenant, idempotency_key));
      CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      PRAGMA application_id = 1297237041; PRAGMA user_version = 3;
      INSERT INTO counters (name, value) VALUES ('highest_id', 1);)sql");
    old.exec_with_blob("INSERT INTO jobs (id, state, body) VALUES (1, 3, ?1)", result);
  }
  ServerProcess server(with_data_dir(dir));
  RawClient client(server.port());
  EXPECT_EQ(result_of(wait_for(client, 1)), protocol::decode<protocol::JobResult>(result).value);
  const auto big = submit(client, word_count_request({big_result_text(60)}));
  ASSERT_EQ(wait_for(client, big).status, kOk);
  EXPECT_EQ(files_in(dir, "results"), std::set<std::string>{result_file(big)});
  Sqlite now(data / "mrd.sqlite3");
  EXPECT_EQ(now.integers("PRAGMA user_version"), std::vector<std::int64_t>{4});
}

}  // namespace
}  // namespace mrd::testing
