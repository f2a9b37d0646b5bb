// The server: listens, accepts connections within the limit, and owns the parts every connection
// shares (the job store, the scheduler, the request handler).
//
// Threads: the caller's io_context runs the network side on one thread; the scheduler runs its own.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>

#include "server/job_store.hpp"
#include "server/memory_budget.hpp"
#include "server/request_handler.hpp"
#include "server/scheduler.hpp"
#include "server/server_config.hpp"

namespace mrd::server {

class Server {
 public:
  Server(asio::io_context& io, ServerConfig config);

  /// Binds, starts the worker processes, runs again the jobs a previous run left unfinished (with
  /// a data directory) and starts accepting. Throws on failure to do any of it.
  void start();

  /// Stops accepting, abandons unfinished jobs and stops the workers. Idempotent.
  void stop();

  /// The port actually bound (useful with port 0).
  std::uint16_t port() const { return port_; }

 private:
  void restore_jobs();
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket socket);

  asio::io_context& io_;
  ServerConfig config_;
  /// Everything clients make the server hold (--max-memory-mib). Shared with the connections and
  /// the results they hold, which the io_context may destroy after the Server.
  std::shared_ptr<MemoryBudget> budget_;
  ConnectionCounters counters_;
  std::unique_ptr<JobDatabase> database_;  ///< null in memory-only mode
  JobStore store_;
  Scheduler scheduler_;
  RequestHandler handler_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
};

}  // namespace mrd::server
