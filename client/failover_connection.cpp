#include "client/failover_connection.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include "client/poll_backoff.hpp"
#include "client/reply_error.hpp"

namespace mrd::client {
namespace {

using protocol::Opcode;
using protocol::Status;

}  // namespace

bool should_fail_over(const ClientError& error, Opcode request) {
  // kConnection: no connection, a lost or stalled one, SERVER_BUSY and UNAVAILABLE
  // (reply_error.hpp). A TLS failure is left out: it is the client's settings or the node's
  // certificate, which another node would not make right.
  if (error.kind() == ErrorKind::kConnection) return true;
  // A node that is stopping takes no new job, and another node can; its other answers stand.
  return request == Opcode::kSubmit && error.server_status() == Status::kShuttingDown;
}

std::string random_idempotency_key() {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::random_device random;
  std::string key;
  for (int i = 0; i < 32; ++i)
    key += kDigits[random() % 16];
  return key;
}

FailoverConnection::FailoverConnection(std::vector<ServerAddress> servers, Connector connector,
                                       FailoverPolicy policy)
    : servers_(std::move(servers)), connector_(std::move(connector)), policy_(policy) {
  if (servers_.empty()) throw ClientError(ErrorKind::kUsage, "no server to connect to");
  policy_.attempts_per_server = std::max(policy_.attempts_per_server, 1);
}

FailoverConnection::Connector FailoverConnection::hello_connector(
    std::chrono::milliseconds io_timeout, const TlsOptions& tls) {
  return [io_timeout, tls](const ServerAddress& address) {
    auto connection = Connection::connect(address, io_timeout, tls);
    connection.hello();
    return connection;
  };
}

Connection& FailoverConnection::connection() {
  if (!connection_) connection_.emplace(connector_(servers_[current_]));
  return *connection_;
}

bool FailoverConnection::fail_over(const ClientError& error, const std::string& what, Opcode opcode,
                                   Failures& failures) {
  if (!should_fail_over(error, opcode)) return false;
  // Broken, busy, or on a node that cannot serve now: the next request connects again.
  connection_.reset();
  if (servers_.size() == 1) return false;

  failures.last_error.resize(servers_.size());
  failures.last_error[current_] = error.what();
  ++failures.count;
  const auto attempts = static_cast<int>(servers_.size()) * policy_.attempts_per_server;
  if (failures.count >= attempts) {
    std::string message = what + ": gave up after trying each of the " +
                          std::to_string(servers_.size()) + " servers " +
                          std::to_string(policy_.attempts_per_server) +
                          (policy_.attempts_per_server == 1 ? " time:" : " times:");
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      message += "\n  " + to_string(servers_[i]) + ": " + failures.last_error[i].value_or("?");
    }
    throw ClientError(ErrorKind::kConnection, message);
  }

  current_ = (current_ + 1) % servers_.size();
  std::chrono::milliseconds pause{0};
  const auto rounds = failures.count / static_cast<int>(servers_.size());
  if (failures.count % static_cast<int>(servers_.size()) == 0) {
    // Every server failed once more: give them a moment before the next round, longer each time.
    pause = policy_.first_pause;
    for (int round = 1; round < rounds && pause < policy_.longest_pause; ++round)
      pause *= 2;
    pause = std::min(pause, policy_.longest_pause);
  }
  if (notice_) notice_(error, servers_[current_], pause);
  std::this_thread::sleep_for(pause);
  return true;
}

std::uint32_t FailoverConnection::submit(const protocol::SubmitRequest& request,
                                         std::span<const PayloadFile> payload_files) {
  if (request.idempotency_key.empty()) {
    auto keyed = request;
    keyed.idempotency_key = random_idempotency_key();
    return submit(keyed, payload_files);
  }
  return call("submit", Opcode::kSubmit, [&request, payload_files](Connection& connection) {
    return connection.submit(request, payload_files);
  });
}

FetchOutcome FailoverConnection::fetch(std::uint32_t job_id) {
  return call(job_what("fetch", job_id), Opcode::kFetch,
              [job_id](Connection& connection) { return connection.fetch(job_id); });
}

protocol::JobProgress FailoverConnection::status(std::uint32_t job_id) {
  return call(job_what("status of", job_id), Opcode::kStatus,
              [job_id](Connection& connection) { return connection.status(job_id); });
}

protocol::JobDetails FailoverConnection::details(std::uint32_t job_id) {
  return call(job_what("status of", job_id), Opcode::kStatus,
              [job_id](Connection& connection) { return connection.details(job_id); });
}

void FailoverConnection::cancel(std::uint32_t job_id) {
  // Safe to send again: cancelling a cancelled job is OK (docs/protocol.md, CANCEL).
  call(job_what("cancel", job_id), Opcode::kCancel,
       [job_id](Connection& connection) { connection.cancel(job_id); });
}

protocol::TenantJobList FailoverConnection::list() {
  return call("list", Opcode::kList, [](Connection& connection) { return connection.list(); });
}

protocol::ServerStats FailoverConnection::stats() {
  return call("stats", Opcode::kStats, [](Connection& connection) { return connection.stats(); });
}

protocol::DetailedStats FailoverConnection::detailed_stats() {
  return call("stats", Opcode::kStats,
              [](Connection& connection) { return connection.detailed_stats(); });
}

FetchOutcome FailoverConnection::wait_for_result(std::uint32_t job_id,
                                                 const ProgressCallback& on_progress) {
  return poll_until_finished([&] { return fetch(job_id); }, on_progress);
}

}  // namespace mrd::client
