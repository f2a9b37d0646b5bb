#include "server/server.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fstream>
#include <limits>

#include "protocol/codec.hpp"
#include "server/connection.hpp"
#include "server/engine/hash_key.hpp"
#include "server/log.hpp"

namespace mrd::server {

using asio::ip::tcp;

Server::Server(asio::io_context& io, ServerConfig config)
    : io_(io),
      config_(std::move(config)),
      budget_(std::make_shared<MemoryBudget>(config_.max_memory_bytes
                                                 ? config_.max_memory_bytes
                                                 : std::numeric_limits<std::uint64_t>::max())),
      database_(config_.data_dir.empty()
                    ? nullptr
                    : std::make_unique<JobDatabase>(
                          config_.data_dir,
                          config_.fsync ? JobDatabase::Sync::kFull : JobDatabase::Sync::kNormal)),
      store_(config_.max_retained_bytes, database_.get(), budget_),
      scheduler_({config_.worker_executable,
                  config_.plugins,
                  config_.workers,
                  config_.task_timeout_seconds * 1000,
                  config_.worker_memory_mib,
                  budget_.get(),
                  {engine::hash_key_to_environment()}},
                 // Called on the scheduler thread: hand the outcome to the network thread, which
                 // owns the store (progress crosses in the ticket's atomics).
                 [this](JobOutcome outcome) {
                   asio::post(io_, [this, outcome = std::move(outcome)]() mutable {
                     store_.finish(std::move(outcome));
                   });
                 }),
      handler_(config_, store_, scheduler_, counters_, *budget_),
      acceptor_(io) {}

void Server::start() {
  const tcp::endpoint endpoint(asio::ip::make_address(config_.listen_host), config_.listen_port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();

  scheduler_.start();
  restore_jobs();
  asio::co_spawn(io_, accept_loop(), asio::detached);

  log(Level::kInfo, "listening on ", config_.listen_host, ":", port_, " with ",
      scheduler_.workers(), " worker processes");
  if (!config_.port_file.empty()) {
    // Written last, so a test that sees the file can connect at once.
    const auto temporary = config_.port_file + ".tmp";
    std::ofstream(temporary) << port_ << "\n";
    std::rename(temporary.c_str(), config_.port_file.c_str());
  }
}

void Server::restore_jobs() {
  if (!database_) return;
  const auto to_run = store_.restore();
  for (const auto& [ticket, body] : to_run) {
    auto request = protocol::decode<protocol::SubmitRequest>(body);
    if (request) {
      // Its input is in memory again, so it is counted again, whether it fits or not.
      scheduler_.enqueue(ticket, std::move(*request.value),
                         MemoryCharge::force_take(*budget_, body.size()));
    } else {
      store_.finish({ticket->id, protocol::Status::kJobFailed,
                     "the stored request could not be read back: " + request.error});
    }
  }
  const auto stats = [&] {
    protocol::ServerStats s;
    store_.fill_stats(s);
    return s;
  }();
  log(Level::kInfo, "data directory ", config_.data_dir, ": ", to_run.size(),
      " unfinished jobs to run again, ", stats.retained_result_bytes, " bytes of results kept");
}

void Server::stop() {
  asio::error_code ignored;
  acceptor_.close(ignored);
  handler_.stop_accepting_jobs();
  scheduler_.stop();
}

asio::awaitable<void> Server::accept_loop() {
  while (acceptor_.is_open()) {
    auto [error, socket] =
        co_await acceptor_.async_accept(asio::experimental::as_tuple(asio::use_awaitable));
    if (error == asio::error::operation_aborted) co_return;  // stop()
    if (error) {
      // Out of file descriptors, most likely: back off briefly instead of spinning.
      log(Level::kWarn, "accept failed: ", error.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::use_awaitable);
      continue;
    }
    if (counters_.open >= config_.max_connections) {
      std::string reply;
      handler_.reject(
          protocol::Status::kServerBusy,
          "too many connections (" + std::to_string(config_.max_connections) + "); try again later",
          reply);
      asio::error_code ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(asio::buffer(reply), ignored);  // best effort: never wait for this client
      continue;                                         // closing `socket` here
    }
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> Server::serve(tcp::socket socket) {
  ++counters_.open;
  ++counters_.total;
  co_await serve_connection(std::move(socket), config_, handler_, budget_);
  --counters_.open;
}

}  // namespace mrd::server
