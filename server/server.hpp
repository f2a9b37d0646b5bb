// The server: listens, accepts connections within the limit, and owns the parts every connection
// shares (the job store, the scheduler, the request handler).
//
// Threads: the caller's io_context runs the network side on one thread; the scheduler runs its own.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "server/cluster/cluster_node.hpp"
#include "server/deadline_sweeper.hpp"
#include "server/job_store.hpp"
#include "server/memory_budget.hpp"
#include "server/request_handler.hpp"
#include "server/reserve_fd.hpp"
#include "server/scheduler.hpp"
#include "server/server_config.hpp"

namespace asio::ssl {
class context;  // asio/ssl/context.hpp, included where it is used
}  // namespace asio::ssl

namespace mrd::server {

class Server {
 public:
  /// `tls_context` is for the TLS listener (config.tls), made by make_server_tls_context; null
  /// without one.
  Server(asio::io_context& io, ServerConfig config,
         std::unique_ptr<asio::ssl::context> tls_context = nullptr);
  ~Server();  // in server.cpp, where asio::ssl::context is complete

  /// Binds, starts the worker processes, runs again the jobs a previous run left unfinished (with
  /// a data directory) and starts accepting. Throws on failure to do any of it.
  void start();

  /// Stops accepting, abandons unfinished jobs (and logs which) and stops the workers. Idempotent.
  void stop();

  /// The graceful stop: SUBMIT answers SHUTTING_DOWN from now on, while every other request is
  /// still answered and the accepted jobs go on running. Once none is left unfinished, or after
  /// --drain-seconds, stop() runs and then `on_stopped`. Only the first call counts.
  void drain(std::function<void()> on_stopped);

  /// The tokens AUTH accepts from now on (see RequestHandler::set_tokens).
  void set_tokens(std::shared_ptr<const AuthTokens> tokens) {
    handler_.set_tokens(std::move(tokens));
  }

  /// The ports actually bound (useful with port 0); 0 for a listener that is off.
  std::uint16_t port() const { return port_; }
  std::uint16_t tls_port() const { return tls_port_; }

  /// Connections served at once: --max-connections, or fewer if the open-files limit is lower.
  std::uint32_t connection_limit() const { return connection_limit_; }

 private:
  void restore_jobs();
  /// The cluster node, with --redis; null otherwise.
  std::unique_ptr<cluster::ClusterNode> make_cluster_node();
  /// The pool of the cluster's workers, with --redis; null otherwise.
  std::shared_ptr<cluster::ClusterPool> make_cluster_pool();
  /// Runs a job a cluster node took (its SUBMIT `body`) on this server's scheduler.
  bool run_cluster_job(std::shared_ptr<JobTicket> ticket, std::string body, std::string& error);
  /// Jobs this server still has to finish: its own, or on a cluster node those it took and the
  /// tasks it runs for the cluster.
  std::uint64_t unfinished() const {
    return cluster_ ? cluster_->running() + cluster_->holding() : store_.unfinished();
  }
  /// Opens, binds and listens; returns the port bound.
  static std::uint16_t listen(asio::ip::tcp::acceptor& acceptor, const std::string& host,
                              std::uint16_t port);
  /// Accepts connections on `acceptor` (the plain one, or the TLS one if `tls`) until stop().
  asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor, bool tls);
  asio::awaitable<void> wait_for_drain(std::function<void()> on_stopped);
  /// --max-connections, lowered to what the open-files limit leaves after the server's own needs.
  std::uint32_t limit_connections_to_fds() const;
  /// Writes SERVER_BUSY to a connection over the limit (best effort, never waiting) and drops it.
  void refuse_busy(ConnectionSocket& socket, bool tls);
  enum class Refusal { kRefusedOne, kNoneWaiting, kNoReserve };
  /// Out of descriptors: answers one waiting client SERVER_BUSY with the reserve descriptor.
  /// kNoReserve if no descriptor could be had even so (the caller then backs off).
  Refusal refuse_with_reserve_fd(asio::ip::tcp::acceptor& acceptor, bool tls);
  /// Logs a failed accept, at most once per kAcceptWarningInterval (it may fail for every client).
  void warn_accept_failed(const asio::error_code& error);
  /// Spawns the coroutine that serves `socket` (over TLS if `tls`), counted in counters_.open
  /// until it ends.
  void serve(ConnectionSocket socket, bool tls);

  asio::io_context& io_;
  ServerConfig config_;
  /// Everything clients make the server hold (--max-memory-mib). Shared with the connections and
  /// the results they hold, which the io_context may destroy after the Server.
  std::shared_ptr<MemoryBudget> budget_;
  ConnectionCounters counters_;
  std::unique_ptr<JobDatabase> database_;   ///< null in memory-only mode
  std::unique_ptr<DatabaseWriter> writer_;  ///< writes to database_ off this thread; null without
  JobStore store_;
  /// With --redis: the pool the scheduler's dispatcher hands tasks to, the cluster's workers.
  std::shared_ptr<cluster::ClusterPool> cluster_pool_;
  Scheduler scheduler_;
  std::unique_ptr<cluster::ClusterNode> cluster_;  ///< with --redis
  RequestHandler handler_;
  asio::ip::tcp::acceptor acceptor_;                 ///< plain TCP; closed if --listen none
  asio::ip::tcp::acceptor tls_acceptor_;             ///< TLS; closed without --tls-listen
  std::unique_ptr<asio::ssl::context> tls_context_;  ///< set with --tls-listen
  DeadlineSweeper sweeper_;  ///< closes connections past their idle, request or write deadline
  std::uint16_t port_ = 0;
  std::uint16_t tls_port_ = 0;
  std::uint32_t connection_limit_ = 0;  ///< set by start()
  ReserveFd reserve_fd_;                ///< spent to answer a client when descriptors run out
  std::chrono::steady_clock::time_point last_accept_warning_{};
  std::uint64_t accept_failures_since_warning_ = 0;
  bool draining_ = false;
  bool stopped_ = false;
};

}  // namespace mrd::server
