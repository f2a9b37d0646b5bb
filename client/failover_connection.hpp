// FailoverConnection: one conversation with a cluster of mrd nodes (mrd --redis), moving to the
// next node when the one in use cannot answer.
//
// The nodes of a cluster share one job namespace, so any of them answers for any job: a SUBMIT
// resent to another node with the same idempotency key gets the same job id, and a job submitted
// on one node can be fetched on any other. A FailoverConnection holds the list of nodes and one
// Connection to the node in use. Each request goes to that node; when it fails in a way that means
// "this node cannot serve now" (should_fail_over), the same request goes to the next node of the
// list, wrapping around, each node at most FailoverPolicy::attempts_per_server times, with a
// pause after every round in which all of them failed. When every attempt has failed, the request
// fails with a ClientError (kConnection) that names every node and why it failed.
//
// With one server there is nothing to fail over to: the request fails at once with the error the
// Connection threw, exactly as with a Connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "client/client_error.hpp"
#include "client/connection.hpp"
#include "client/server_address.hpp"
#include "protocol/messages.hpp"
#include "protocol/wire.hpp"

namespace mrd::client {

/// How hard a request tries before it gives up.
struct FailoverPolicy {
  int attempts_per_server = 3;  ///< each server at most this many times per request
  /// Pause after a round in which every server failed; doubled after each, up to longest_pause.
  std::chrono::milliseconds first_pause{100};
  std::chrono::milliseconds longest_pause{1000};
};

/// True if `error`, met while making a `request`, means the server cannot serve it now and
/// another node may: no connection (refused, unresolvable, timed out), a connection lost or
/// stalled mid-request, SERVER_BUSY, UNAVAILABLE (a node without its Redis), and SHUTTING_DOWN
/// for a SUBMIT. Each of these leaves the request undone or safe to send again. Any other error
/// (a rejected job, an unknown job, a TLS or protocol failure, a missing token) would be the
/// same on every node.
bool should_fail_over(const ClientError& error, protocol::Opcode request);

/// 32 random hex digits: unique enough that two clients never share an idempotency key by chance.
std::string random_idempotency_key();

class FailoverConnection {
 public:
  /// Opens a ready connection to one server: connect, HELLO, and AUTH if the server asks.
  using Connector = std::function<Connection(const ServerAddress&)>;

  /// Told, before it happens, that a request is going to another server: the error that made it
  /// move, the server it goes to, and the pause taken first (zero within a round).
  using Notice = std::function<void(const ClientError& error, const ServerAddress& next,
                                    std::chrono::milliseconds pause)>;

  /// Nothing is connected until the first request, which goes to servers.front() first. Throws
  /// ClientError (kUsage) if `servers` is empty.
  FailoverConnection(std::vector<ServerAddress> servers, Connector connector,
                     FailoverPolicy policy = {});

  /// A Connector that connects (TcpStream::connect's `io_timeout` and `tls`) and says HELLO.
  static Connector hello_connector(std::chrono::milliseconds io_timeout = kDefaultIoTimeout,
                                   const TlsOptions& tls = {});

  void set_notice(Notice notice) { notice_ = std::move(notice); }
  const Notice& notice() const { return notice_; }

  const std::vector<ServerAddress>& servers() const { return servers_; }

  /// The server requests go to now: the one connected, or the next to try.
  const ServerAddress& address() const { return servers_[current_]; }

  /// The open connection to address(), connecting if there is none (no failover: the
  /// connector's errors are thrown as they are).
  Connection& connection();

  /// Closes the connection; the next request opens a new one to the same server.
  void disconnect() { connection_.reset(); }

  /// Runs `request(connection)` on the server in use, failing over as the header says. `what`
  /// names the request in the final error ("submit", "fetch job 7"), `opcode` is what it sends.
  /// `request` may run several times, on several connections: it must be safe to repeat.
  template <class F>
  std::invoke_result_t<F&, Connection&> call(const std::string& what, protocol::Opcode opcode,
                                             F&& request);

  /// SUBMIT, sent again to the next server with the same idempotency key when a node fails, so
  /// it never makes two jobs. A request without a key is sent as a copy with a key of
  /// random_idempotency_key() (give it a key to spare the copy).
  /// `payload_files` as Connection::submit.
  std::uint32_t submit(const protocol::SubmitRequest& request,
                       std::span<const PayloadFile> payload_files = {});

  /// As the Connection methods of the same names, each on the server in use, failing over.
  FetchOutcome fetch(std::uint32_t job_id);
  protocol::JobProgress status(std::uint32_t job_id);
  protocol::JobDetails details(std::uint32_t job_id);
  void cancel(std::uint32_t job_id);
  protocol::TenantJobList list();
  protocol::ServerStats stats();
  protocol::DetailedStats detailed_stats();

  /// Polls FETCH until the job has finished, as Connection::wait_for_result does; a node lost
  /// while waiting makes it go on polling on another.
  FetchOutcome wait_for_result(std::uint32_t job_id, const ProgressCallback& on_progress = {});

 private:
  /// What a request has met so far: the last error of each server, by index.
  struct Failures {
    std::vector<std::optional<std::string>> last_error;
    int count = 0;
  };

  /// After `error` on the server in use: false if it is to be thrown as it is (not one to fail
  /// over on, or a single server); else moves to the next server, pausing after a full round,
  /// and returns true; or throws the final error once every server has had its attempts.
  bool fail_over(const ClientError& error, const std::string& what, protocol::Opcode opcode,
                 Failures& failures);

  std::vector<ServerAddress> servers_;
  Connector connector_;
  FailoverPolicy policy_;
  Notice notice_;
  std::size_t current_ = 0;
  std::optional<Connection> connection_;
};

template <class F>
std::invoke_result_t<F&, Connection&> FailoverConnection::call(const std::string& what,
                                                               protocol::Opcode opcode,
                                                               F&& request) {
  Failures failures;
  for (;;) {
    try {
      return request(connection());
    } catch (const ClientError& error) {
      if (!fail_over(error, what, opcode, failures)) throw;
    }
  }
}

}  // namespace mrd::client
