// The server's life at its edges, against the real binary: running out of file descriptors, worker
// replacements that must not hold clients' sockets, the graceful stop (SIGTERM, SIGINT,
// --drain-seconds), and what the log says about it all.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <set>

#include "raw_jobs.hpp"

namespace mrd::testing {
namespace {

protocol::SubmitRequest test_job(const std::string& mapper, const std::string& name = "doc") {
  return {mapper, "sum", {}, protocol::Documents{{{name, "slow but fine"}}}};
}

protocol::ServerStats stats_of(RawClient& client) {
  client.send(bytes({0x05, 0, 0, 0, 0}));
  const auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no STATS reply");
  return protocol::decode<protocol::ServerStats>(reply->body).value.value();
}

protocol::JobProgress status_of(RawClient& client, std::uint32_t id) {
  client.send_message(Opcode::kStatus, protocol::JobId{id});
  const auto reply = client.read_reply();
  if (!reply || reply->status != kOk) throw std::runtime_error("no STATUS reply");
  return protocol::decode<protocol::JobProgress>(reply->body).value.value();
}

/// Waits (at most `limit`) until `condition` holds; returns whether it did.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// How many times `text` occurs in `log`.
std::size_t occurrences(const std::string& log, std::string_view text) {
  std::size_t n = 0;
  for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1))
    ++n;
  return n;
}

/// Waits for the server to exit by itself; its waitpid status, or nothing if it still runs.
std::optional<int> exit_within(ServerProcess& server, std::chrono::milliseconds limit) {
  if (!eventually([&] { return !server.running(); }, limit)) return std::nullopt;
  return server.exit_status();
}

/// Socket inodes ("socket:[123]") among the open descriptors of a process, by descriptor.
std::map<int, std::string> sockets_of(pid_t pid) {
  std::map<int, std::string> sockets;
  std::error_code error;
  const auto dir = std::filesystem::path("/proc") / std::to_string(pid) / "fd";
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const auto target = std::filesystem::read_symlink(entry.path(), error);
    if (!error && target.string().rfind("socket:", 0) == 0) {
      sockets[std::stoi(entry.path().filename().string())] = target.string();
    }
  }
  return sockets;
}

/// Every open descriptor number of a process.
std::set<int> fds_of(pid_t pid) {
  std::set<int> fds;
  std::error_code error;
  const auto dir = std::filesystem::path("/proc") / std::to_string(pid) / "fd";
  for (const auto& entry : std::filesystem::directory_iterator(dir, error))
    fds.insert(std::stoi(entry.path().filename().string()));
  return fds;
}

/// True once `pid` runs as a worker (`mrd --worker-fd N`): spawned, and past its exec.
bool is_worker(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  const std::string cmdline(std::istreambuf_iterator<char>(in), {});
  return cmdline.find("--worker-fd") != std::string::npos;
}

/// Kills one worker and waits for its replacement to run; returns its pid (0 if none came).
pid_t replace_a_worker(ServerProcess& server) {
  const auto before = server.worker_pids();
  if (before.empty()) return 0;
  ::kill(before.front(), SIGKILL);
  pid_t replacement = 0;
  eventually([&] {
    for (const auto pid : server.worker_pids()) {
      if (std::find(before.begin(), before.end(), pid) == before.end() && is_worker(pid)) {
        replacement = pid;
      }
    }
    return replacement != 0;
  });
  return replacement;
}

/// How the server treated a client that connected: served, turned away, or neither (hanging).
enum class Treated { kServed, kBusy, kUnanswered };

/// Asks for STATS on a client and classifies the answer. A client over a limit gets SERVER_BUSY
/// unasked, so a STATS reply means it was served.
Treated treatment(RawClient& client) {
  auto reply = client.read_reply(1ms);  // SERVER_BUSY comes unasked
  if (!reply) {
    try {
      client.send(bytes({0x05, 0, 0, 0, 0}));
    } catch (const std::exception&) {
      // The server closed it already; its SERVER_BUSY may still be there to read.
    }
    reply = client.read_reply(10s);
  }
  if (!reply) return Treated::kUnanswered;
  if (reply->status == static_cast<std::uint8_t>(Status::kServerBusy)) return Treated::kBusy;
  return reply->status == kOk ? Treated::kServed : Treated::kUnanswered;
}

/// The connection limit the server logged when it lowered --max-connections, or 0.
std::uint32_t logged_connection_limit(const std::string& log) {
  const auto at = log.find("): serving ");
  if (at == std::string::npos) return 0;
  return static_cast<std::uint32_t>(std::stoul(log.substr(at + 11)));
}

// ---- File descriptors ----------------------------------------------------------------------

TEST(Descriptors, ALowOpenFilesLimitCapsConnectionsAndTheRestGetServerBusy) {
  ServerProcess server({"--workers", "2"},
                       ProcessLimits{.address_space_mib = 4096, .open_files = 64});
  const auto limit = logged_connection_limit(server.log());
  ASSERT_GT(limit, 0u) << "the lowered connection limit is logged:\n" << server.log();
  ASSERT_LT(limit, 64u);

  constexpr std::size_t kClients = 100;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (std::size_t i = 0; i < kClients; ++i)
    clients.push_back(std::make_unique<RawClient>(server.port()));
  std::size_t served = 0, busy = 0;
  for (std::size_t i = 0; i < kClients; ++i) {
    switch (treatment(*clients[i])) {
      case Treated::kServed: ++served; break;
      case Treated::kBusy: ++busy; break;
      case Treated::kUnanswered: ADD_FAILURE() << "client " << i << " got no answer"; break;
    }
  }
  EXPECT_EQ(served, limit);
  EXPECT_EQ(busy, kClients - limit);

  // The server is up, serves the clients it took, and runs jobs; its log did not flood.
  ASSERT_TRUE(server.running());
  RawClient& first = *clients.front();
  EXPECT_EQ(stats_of(first).connections_open, limit);
  const auto id = submit(first, word_count_request({"still serving"}));
  EXPECT_EQ(as_map(result_of(wait_for(first, id))),
            (std::map<std::string, std::uint64_t>{{"serving", 1}, {"still", 1}}));
  // A worker can still be replaced within the limit.
  EXPECT_NE(replace_a_worker(server), 0);
  const auto again = submit(first, word_count_request({"again"}));
  EXPECT_EQ(wait_for(first, again).status, kOk);
  const auto log = server.log();
  EXPECT_LT(std::count(log.begin(), log.end(), '\n'), 20) << log;
}

TEST(Descriptors, OutOfDescriptorsNewClientsGetServerBusyAndTheLogDoesNotFlood) {
  ServerProcess server({"--workers", "1"}, ProcessLimits{.address_space_mib = 4096});
  RawClient first(server.port());
  ASSERT_GT(stats_of(first).uptime_ms, 0u);

  // Leave the server no descriptor to spare, as a leak or another part of it could: its soft
  // open-files limit is lowered to its lowest free descriptor number, so the next open fails.
  const auto fds = fds_of(server.pid());
  int lowest_free = 0;
  while (fds.count(lowest_free))
    ++lowest_free;
  rlimit original{};
  ASSERT_EQ(prlimit(server.pid(), RLIMIT_NOFILE, nullptr, &original), 0);
  rlimit tight = original;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(prlimit(server.pid(), RLIMIT_NOFILE, &tight, nullptr), 0);

  constexpr std::size_t kClients = 30;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (std::size_t i = 0; i < kClients; ++i)
    clients.push_back(std::make_unique<RawClient>(server.port()));
  std::size_t busy = 0;
  for (std::size_t i = 0; i < kClients; ++i) {
    const auto treated = treatment(*clients[i]);
    EXPECT_NE(treated, Treated::kUnanswered) << "client " << i << " was left hanging";
    busy += treated == Treated::kBusy;
  }
  EXPECT_EQ(busy, kClients);

  // The client it had is still served, and a job still runs.
  ASSERT_TRUE(server.running());
  const auto id = submit(first, word_count_request({"out of descriptors"}));
  EXPECT_EQ(wait_for(first, id).status, kOk);
  const auto log = server.log();
  EXPECT_GE(occurrences(log, "open-files limit"), 1u) << log;
  EXPECT_LE(occurrences(log, "accept:"), 2u) << "a warning at most every few seconds:\n" << log;

  // With descriptors back, new clients are served again.
  ASSERT_EQ(prlimit(server.pid(), RLIMIT_NOFILE, &original, nullptr), 0);
  RawClient later(server.port());
  EXPECT_EQ(treatment(later), Treated::kServed) << server.log();
}

TEST(Descriptors, AReplacedWorkerHoldsNoClientSockets) {
  ServerProcess server({"--workers", "2"});
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 50; ++i)
    clients.push_back(std::make_unique<RawClient>(server.port()));
  ASSERT_TRUE(eventually([&] { return stats_of(*clients.front()).connections_open == 50; }));

  const auto replacement = replace_a_worker(server);
  ASSERT_NE(replacement, 0) << server.log();
  // Only its channel, and the standard streams. As it starts, its loader opens the libraries
  // for a moment: wait for that to pass, rather than catch the moment.
  std::map<int, std::string> sockets;
  std::string others;
  const auto only_its_channel = [&] {
    sockets = sockets_of(replacement);
    others.clear();
    for (const int fd : fds_of(replacement)) {
      if (fd > 2 && !sockets.count(fd)) others += " " + std::to_string(fd);
    }
    return sockets.size() == 1 && others.empty();
  };
  EXPECT_TRUE(eventually(only_its_channel))
      << sockets.size() << " sockets; other descriptors:" << others;
  // None of them is one of the server's sockets (a client's, or the listener). The server holds
  // the worker's end of the socketpair for a moment after the spawn, until it closes its copy:
  // wait for that, rather than catch the moment.
  const auto shares_a_socket = [&] {
    std::set<std::string> server_sockets;
    for (const auto& [fd, inode] : sockets_of(server.pid()))
      server_sockets.insert(inode);
    for (const auto& [fd, inode] : sockets) {
      if (server_sockets.count(inode)) return true;
    }
    return false;
  };
  EXPECT_TRUE(eventually([&] { return !shares_a_socket(); }))
      << "a worker descriptor is one of the server's sockets";

  const auto id = submit(*clients.back(), word_count_request({"fine"}));
  EXPECT_EQ(wait_for(*clients.back(), id).status, kOk);
}

TEST(Descriptors, AClientClosedByTheIdleTimeoutSeesEofAfterAWorkerWasReplaced) {
  ServerProcess server({"--workers", "1", "--idle-timeout", "1"});
  RawClient client(server.port());
  ASSERT_NE(replace_a_worker(server), 0);
  // The connection was open when the replacement started; now let it fall idle.
  client.send_message(Opcode::kHello, protocol::Hello{protocol::kProtocolVersion, ""});
  ASSERT_TRUE(client.read_reply());
  EXPECT_TRUE(client.closed_by_server(10s));
}

// ---- Stopping ------------------------------------------------------------------------------

/// The environment a process was started with, one "NAME=value" per entry.
std::vector<std::string> environment_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  std::vector<std::string> entries;
  for (std::string entry; std::getline(in, entry, '\0');)
    entries.push_back(entry);
  return entries;
}

TEST(Workers, StartWithHugePagesForMallocAndOneBlasThreadAndAReplacementToo) {
  ServerProcess server({"--workers", "2"});
  ASSERT_TRUE(eventually([&] { return server.worker_pids().size() == 2; }));
  auto workers = server.worker_pids();
  const auto replacement = replace_a_worker(server);
  ASSERT_NE(replacement, 0) << server.log();
  workers.push_back(replacement);
  for (const auto pid : workers) {
    const auto environment = environment_of(pid);
    if (!is_worker(pid)) continue;  // the one replaced, gone since
    EXPECT_EQ(
        std::count(environment.begin(), environment.end(), "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"),
        1)
        << "worker " << pid;
    EXPECT_EQ(std::count(environment.begin(), environment.end(), "OPENBLAS_NUM_THREADS=1"), 1)
        << "worker " << pid;
  }
  RawClient client(server.port());
  EXPECT_EQ(wait_for(client, submit(client, word_count_request({"still counts"}))).status, kOk);
}

TEST(Stopping, WithNothingRunningSigtermStopsAtOnce) {
  ServerProcess server({"--drain-seconds", "60"});
  RawClient client(server.port());
  ASSERT_GT(stats_of(client).uptime_ms, 0u);
  ::kill(server.pid(), SIGTERM);
  const auto status = exit_within(server, 5s);  // well inside the 60 s drain
  ASSERT_TRUE(status) << server.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.log();
  EXPECT_EQ(server.log().find("abandoned"), std::string::npos) << server.log();
}

TEST(Stopping, SigtermLetsARunningJobFinishWhileNewJobsAreRefused) {
  ServerProcess server({"--enable-test-jobs", "--workers", "1", "--drain-seconds", "60"});
  RawClient client(server.port());
  // Sleeps 4 s: long enough to still run while the refusal below is asked for, even on a loaded
  // machine (the server exits once the job is done, and a refusal needs a server).
  const auto slow = submit(client, test_job("test-slow", "4000"));
  ASSERT_TRUE(eventually([&] { return status_of(client, slow).state == JobState::kMapping; }));

  ::kill(server.pid(), SIGTERM);
  ASSERT_TRUE(eventually([&] { return server.log().find("draining") != std::string::npos; }))
      << server.log();
  client.send_message(Opcode::kSubmit, word_count_request({"too late"}));
  const auto refused = client.read_reply();
  ASSERT_TRUE(refused);
  EXPECT_EQ(status_name(refused->status), "shutting-down") << error_text(*refused);

  // The listener stays: a new client can still ask about the job, which finishes.
  RawClient later(server.port());
  EXPECT_LE(stats_of(later).jobs_unfinished, 1u);  // 0 if the job has just finished
  later.send(bytes({0x04, 0, 0, 0, 0}));           // LIST
  ASSERT_TRUE(later.read_reply());
  // The server exits as soon as the job is done, so the FETCH that would see it done may meet a
  // closed connection instead; a result that does come must be right, and the exit below (0,
  // nothing abandoned) says that the job finished.
  try {
    const auto done = wait_for(later, slow, 30s);
    EXPECT_EQ(as_map(result_of(done)), reference_word_count({"slow but fine"}));
  } catch (const std::runtime_error&) {
    EXPECT_TRUE(exit_within(server, 10s)) << "no reply, yet the server is still running";
  }

  const auto status = exit_within(server, 10s);
  ASSERT_TRUE(status) << server.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.log();
  EXPECT_EQ(server.log().find("abandoned"), std::string::npos) << server.log();
}

class StopSignal : public ::testing::TestWithParam<int> {};

TEST_P(StopSignal, AHungJobIsAbandonedAfterTheDrainSeconds) {
  ServerProcess server({"--enable-test-jobs", "--workers", "1", "--drain-seconds", "1"});
  RawClient client(server.port());
  const auto hung = submit(client, test_job("test-hang"));
  ASSERT_TRUE(eventually([&] { return status_of(client, hung).state == JobState::kMapping; }));

  ::kill(server.pid(), GetParam());
  const auto status = exit_within(server, 10s);  // 1 s of drain, and the stop itself
  ASSERT_TRUE(status) << server.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.log();
  const auto log = server.log();
  EXPECT_NE(log.find("abandoned 1 unfinished jobs: " + std::to_string(hung) + " (mapping)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("they are lost (no --data-dir)"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(SigtermAndSigint, StopSignal, ::testing::Values(SIGTERM, SIGINT),
                         [](const auto& info) { return std::string(sigabbrev_np(info.param)); });

TEST(Stopping, ASecondSignalStopsAtOnce) {
  ServerProcess server({"--enable-test-jobs", "--workers", "1", "--drain-seconds", "60"});
  RawClient client(server.port());
  const auto hung = submit(client, test_job("test-hang"));
  ::kill(server.pid(), SIGTERM);
  ASSERT_TRUE(eventually([&] { return server.log().find("draining") != std::string::npos; }))
      << server.log();
  ASSERT_TRUE(server.running());
  ::kill(server.pid(), SIGINT);
  const auto status = exit_within(server, 10s);  // well inside the 60 s drain
  ASSERT_TRUE(status) << server.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_NE(server.log().find("abandoned 1 unfinished jobs: " + std::to_string(hung)),
            std::string::npos)
      << server.log();
}

TEST(Stopping, WithADataDirectoryAnAbandonedJobRunsAgainAtTheNextStart) {
  TempDir dir;
  const std::vector<std::string> args{
      "--enable-test-jobs",          "--workers", "1", "--drain-seconds", "1", "--data-dir",
      (dir.path() / "data").string()};
  std::uint32_t slow = 0;
  {
    ServerProcess server(args);
    RawClient client(server.port());
    slow = submit(client, test_job("test-slow", "4000"));  // longer than the drain
    ASSERT_TRUE(eventually([&] { return status_of(client, slow).state == JobState::kMapping; }));
    ::kill(server.pid(), SIGTERM);
    const auto status = exit_within(server, 10s);
    ASSERT_TRUE(status) << server.log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
    EXPECT_NE(server.log().find("they run again at the next start"), std::string::npos)
        << server.log();
  }
  ServerProcess server(args);
  RawClient client(server.port());
  const auto done = wait_for(client, slow, 60s);
  EXPECT_EQ(as_map(result_of(done)), reference_word_count({"slow but fine"}));
}

/// Waits (20 s at most) until the server's log holds `text`; the log.
std::string wait_for_log(const ServerProcess& server, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  auto log = server.log();
  while (log.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    log = server.log();
  }
  return log;
}

TEST(Logs, EveryClosedConnectionIsLoggedWithItsReasonAndRequestCount) {
  ServerProcess server({"--log-level", "debug", "--idle-timeout", "2", "--request-timeout", "1"});
  {
    RawClient client(server.port());
    stats_of(client);
    stats_of(client);
  }
  auto log = wait_for_log(server, " closed (closed by the client) after 2 requests");
  EXPECT_NE(log.find(" closed (closed by the client) after 2 requests"), std::string::npos) << log;
  // One that says nothing is closed by the idle timeout, one that starts a request and never
  // finishes it by the request timeout, and one that breaks framing by the server.
  RawClient silent(server.port());
  log = wait_for_log(server, " closed (idle timeout) after 0 requests");
  EXPECT_NE(log.find(" closed (idle timeout) after 0 requests"), std::string::npos) << log;
  RawClient trickler(server.port());
  trickler.send(bytes({0x04, 0x00}));
  log = wait_for_log(server, " closed (request timeout) after 0 requests");
  EXPECT_NE(log.find(" closed (request timeout) after 0 requests"), std::string::npos) << log;
  RawClient liar(server.port());
  stats_of(liar);
  liar.send(bytes({0x00, 0xff, 0xff, 0xff, 0x7f}));  // too large: answered, then closed
  log = wait_for_log(server, " closed (closed by the server) after 1 request\n");
  EXPECT_NE(log.find(" closed (closed by the server) after 1 request\n"), std::string::npos) << log;
}

TEST(Logs, JsonLogsAreOneObjectPerLine) {
  ServerProcess server({"--log-format", "json", "--log-level", "debug"});
  {
    RawClient client(server.port());
    stats_of(client);
    // Messages with bytes JSON must escape: a mapper named with a quote, a backslash, a control
    // byte and a byte that is not UTF-8, which the debug log quotes when it refuses the job.
    client.send_message(Opcode::kSubmit,
                        protocol::SubmitRequest{"a\"\\\x01\xff", "sum", {}, protocol::Documents{}});
    ASSERT_TRUE(client.read_reply());
  }
  const auto log = wait_for_log(server, "after 2 requests");
  EXPECT_NE(log.find("a\\\"\\\\\\u0001\\ufffd"), std::string::npos) << log;
  std::istringstream lines(log);
  int parsed = 0;
  bool closed_line = false;
  for (std::string line; std::getline(lines, line);) {
    SCOPED_TRACE(line);
    const auto entry = nlohmann::json::parse(line);  // throws (and fails the test) if not JSON
    ASSERT_TRUE(entry.is_object());
    EXPECT_EQ(entry.size(), 4u);
    EXPECT_TRUE(entry.at("time").is_string());
    EXPECT_EQ(entry.at("pid").get<int>(), server.pid());
    EXPECT_TRUE(entry.at("level").is_string());
    closed_line = closed_line || entry.at("message").get<std::string>().ends_with(
                                     "closed (closed by the client) after 2 requests");
    ++parsed;
  }
  EXPECT_GE(parsed, 3) << "start-up lines and the connection's";
  EXPECT_TRUE(closed_line) << log;
}

}  // namespace
}  // namespace mrd::testing
