#include "server/server.hpp"

#include <sys/resource.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <limits>

#include "protocol/codec.hpp"
#include "protocol/submit_layout.hpp"
#include "server/connection.hpp"
#include "server/engine/hash_key.hpp"
#include "server/input_file.hpp"
#include "server/log.hpp"
#include "server/submitted_input.hpp"

namespace mrd::server {

using asio::ip::tcp;

namespace {

/// Descriptors kept free beyond those open at start: the spare descriptor, the database's
/// journal and temporary files, a log file, and room for the pool to grow its own.
constexpr std::uint32_t kFdReserve = 32;
/// And per worker: a replacement's socket pair while the old channel is still open.
constexpr std::uint32_t kFdReservePerWorker = 4;
/// A failing accept (out of descriptors, most likely) is logged at most this often, with a count.
constexpr auto kAcceptWarningInterval = std::chrono::seconds(10);
/// How long accepting pauses when not even the reserve descriptor can answer a client.
constexpr auto kAcceptBackOff = std::chrono::milliseconds(100);
/// Connections accepted in a row before the connections being served get a turn.
constexpr int kAcceptBatch = 64;
/// How often a drain looks whether every job has finished.
constexpr auto kDrainPoll = std::chrono::milliseconds(20);

/// Descriptors the process has open now.
std::uint32_t open_fds() {
  std::error_code error;
  std::uint32_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error))
    ++n;
  return n > 0 ? n - 1 : 0;  // less the one reading the directory
}

/// EMFILE (this process) or ENFILE (the whole system).
bool out_of_fds(const asio::error_code& error) {
  return error == asio::error::no_descriptors || error.value() == ENFILE;
}

}  // namespace

Server::Server(asio::io_context& io, ServerConfig config,
               std::unique_ptr<asio::ssl::context> tls_context)
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
      writer_(database_ ? std::make_unique<DatabaseWriter>(*database_, io) : nullptr),
      store_(config_.max_retained_bytes, database_.get(), writer_.get(), budget_),
      cluster_pool_(make_cluster_pool()),
      scheduler_({config_.worker_executable,
                  config_.plugins,
                  config_.workers,
                  config_.task_timeout_seconds * 1000,
                  config_.worker_memory_mib,
                  budget_.get(),
                  {engine::hash_key_to_environment()},
                  cluster_pool_,
                  // A task the cluster brought ended here: its answer goes to Redis.
                  [this](std::uint64_t id, PoolEvent event) {
                    asio::post(io_, [this, id, event = std::move(event)]() mutable {
                      if (cluster_) cluster_->task_ended(id, std::move(event));
                    });
                  }},
                 // Called on the scheduler thread: hand the outcome to the network thread, which
                 // owns the store (progress crosses in the ticket's atomics).
                 [this](JobOutcome outcome) {
                   asio::post(io_, [this, outcome = std::move(outcome)]() mutable {
                     if (cluster_) return cluster_->finished(std::move(outcome));
                     store_.finish(std::move(outcome));
                   });
                 }),
      cluster_(make_cluster_node()),
      handler_(config_, store_, scheduler_, counters_, budget_, cluster_.get()),
      acceptor_(io),
      tls_acceptor_(io),
      tls_context_(std::move(tls_context)),
      sweeper_(io) {}

Server::~Server() = default;

std::uint16_t Server::listen(tcp::acceptor& acceptor, const std::string& host, std::uint16_t port) {
  const tcp::endpoint endpoint(asio::ip::make_address(host), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  // Accepting with the reserve descriptor must not block when the waiting client has gone.
  acceptor.non_blocking(true);
  return acceptor.local_endpoint().port();
}

/// Writes `port` to `file` (if named) through a rename, so that a reader sees all of it or none.
static void write_port_file(const std::string& file, std::uint16_t port) {
  if (file.empty()) return;
  const auto temporary = file + ".tmp";
  std::ofstream(temporary) << port << "\n";
  std::rename(temporary.c_str(), file.c_str());
}

void Server::start() {
  if (!config_.listen_host.empty()) {
    port_ = listen(acceptor_, config_.listen_host, config_.listen_port);
  }
  if (config_.tls.enabled()) {
    if (!tls_context_) throw std::logic_error("a TLS listener needs a TLS context");
    tls_port_ = listen(tls_acceptor_, config_.tls.listen_host, config_.tls.listen_port);
  }

  scheduler_.start();
  restore_jobs();
  if (cluster_) cluster_->start();
  connection_limit_ = limit_connections_to_fds();
  sweeper_.start();
  const auto on_accept_loop_end = [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log(Level::kError, "no longer accepting connections: ", e.what());
    }
  };
  if (acceptor_.is_open()) {
    asio::co_spawn(io_, accept_loop(acceptor_, false), on_accept_loop_end);
    log(Level::kInfo, "listening on ", config_.listen_host, ":", port_);
  }
  if (tls_acceptor_.is_open()) {
    asio::co_spawn(io_, accept_loop(tls_acceptor_, true), on_accept_loop_end);
    log(Level::kInfo, "listening for TLS on ", config_.tls.listen_host, ":", tls_port_,
        config_.tls.client_certificates == ClientCertificates::kRequired
            ? " (client certificates required)"
        : config_.tls.client_certificates == ClientCertificates::kOptional
            ? " (client certificates checked if sent)"
            : "");
  }
  log(Level::kInfo, scheduler_.workers(), " worker processes, up to ", connection_limit_,
      " connections");
  // Written last, so a test that sees the file can connect at once.
  write_port_file(config_.tls.port_file, tls_port_);
  write_port_file(config_.port_file, port_);
}

std::shared_ptr<cluster::ClusterPool> Server::make_cluster_pool() {
  if (!config_.cluster.enabled()) return nullptr;
  // Called on the scheduler thread: the node, on the network thread, talks to Redis.
  return std::make_shared<cluster::ClusterPool>(
      [this](cluster::ClusterPool::Offer task) {
        asio::post(io_, [this, task = std::move(task)]() mutable {
          if (cluster_) cluster_->offer(std::move(task));
        });
      },
      [this](std::uint64_t task) {
        asio::post(io_, [this, task] {
          if (cluster_) cluster_->abandon(task);
        });
      },
      [this] {
        asio::post(io_, [this] {
          if (cluster_) cluster_->worker_free();
        });
      });
}

std::unique_ptr<cluster::ClusterNode> Server::make_cluster_node() {
  if (!config_.cluster.enabled()) return nullptr;
  cluster::ClusterNode::Workers workers{
      scheduler_.workers(), cluster_pool_,
      [this](cluster::TakenTask task) { scheduler_.run_for_cluster(std::move(task)); },
      [this](std::uint64_t id) { scheduler_.stop_for_cluster(id); }, budget_.get()};
  return std::make_unique<cluster::ClusterNode>(
      io_, config_.cluster, std::move(workers), config_.max_queued_jobs,
      [this](std::shared_ptr<JobTicket> ticket, std::string body, std::string& why) {
        return run_cluster_job(std::move(ticket), std::move(body), why);
      },
      [this] { scheduler_.notify_cancelled(); });
}

bool Server::run_cluster_job(std::shared_ptr<JobTicket> ticket, std::string body,
                             std::string& error) {
  auto layout = protocol::decode_submit_layout(body);
  if (!layout) {
    error = "the stored request could not be read back: " + layout.error;
    return false;
  }
  try {
    auto input = SubmittedInput::copy_of(body, std::move(*layout.value));
    // Taken because this node had a free worker: counted, whether it fits or not.
    auto charge = MemoryCharge::force_take(*budget_, input->held_bytes());
    scheduler_.enqueue(std::move(ticket), std::move(input), std::move(charge));
    return true;
  } catch (const std::exception& e) {
    error = std::string("the stored request could not be loaded: ") + e.what();
    return false;
  }
}

void Server::restore_jobs() {
  if (!database_) return;
  const auto to_run = store_.restore();
  for (const auto& [ticket, stored] : to_run) {
    // A big body was kept as a file: mapped again, once it is checked against its digest.
    std::unique_ptr<Segment> file;
    if (!stored.input_file.empty()) {
      try {
        file = open_stored_input(stored.input_file, stored.input_offset, stored.input_digest);
      } catch (const std::exception& e) {
        store_.finish({ticket->id, protocol::Status::kJobFailed,
                       std::string("the stored request could not be read back: ") + e.what()});
        continue;
      }
    }
    const std::string_view body =
        file ? std::string_view(file->data() + stored.input_offset,
                                static_cast<std::size_t>(file->size() - stored.input_offset))
             : std::string_view(stored.request);
    auto layout = protocol::decode_submit_layout(body);
    if (!layout) {
      store_.finish({ticket->id, protocol::Status::kJobFailed,
                     "the stored request could not be read back: " + layout.error});
      continue;
    }
    try {
      auto input = file ? std::make_unique<SubmittedInput>(std::move(file), stored.input_offset,
                                                           std::move(*layout.value))
                        : SubmittedInput::copy_of(body, std::move(*layout.value));
      // Its input is in memory again, so it is counted again, whether it fits or not.
      auto charge = MemoryCharge::force_take(*budget_, input->held_bytes());
      scheduler_.enqueue(ticket, std::move(input), std::move(charge));
    } catch (const std::exception& e) {
      store_.finish({ticket->id, protocol::Status::kJobFailed,
                     std::string("the stored request could not be loaded again: ") + e.what()});
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
  if (stopped_) return;
  stopped_ = true;
  asio::error_code ignored;
  acceptor_.close(ignored);
  tls_acceptor_.close(ignored);
  handler_.stop_accepting_jobs();
  if (cluster_) {
    if (cluster_->running() > 0) {
      log(Level::kWarn, "leaving ", cluster_->running(),
          " unfinished jobs to the other nodes: they run again once this node's lease ends");
    }
    if (cluster_->holding() > 0) {
      log(Level::kWarn, "leaving ", cluster_->holding(),
          " tasks of the cluster's jobs: they run again once this node's lease ends");
    }
    cluster_->stop();
  }
  scheduler_.stop();
  if (store_.unfinished() == 0) return;
  // Say which jobs were given up, and what becomes of them.
  std::string ids;
  std::size_t listed = 0;
  for (const auto& job : store_.list(JobScope{}).jobs) {
    if (job.state >= protocol::JobState::kDone) continue;
    if (++listed > 20) {
      ids += ", ...";
      break;
    }
    ids += (listed > 1 ? ", " : "") + std::to_string(job.id) + " (" +
           std::string(protocol::to_string(job.state)) + ")";
  }
  log(Level::kWarn, "abandoned ", store_.unfinished(), " unfinished jobs: ", ids,
      database_ ? "; they run again at the next start on this data directory"
                : "; they are lost (no --data-dir)");
}

void Server::drain(std::function<void()> on_stopped) {
  if (draining_ || stopped_) return;
  draining_ = true;
  handler_.stop_accepting_jobs();
  if (cluster_) cluster_->stop_taking();
  asio::co_spawn(io_, wait_for_drain(std::move(on_stopped)), asio::detached);
}

asio::awaitable<void> Server::wait_for_drain(std::function<void()> on_stopped) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(config_.drain_seconds);
  if (unfinished() > 0 && config_.drain_seconds > 0) {
    log(Level::kInfo, "draining: new jobs are refused; waiting up to ", config_.drain_seconds,
        " s for ", unfinished(), " unfinished jobs (a second signal stops at once)");
  }
  asio::steady_timer poll(io_);
  while (unfinished() > 0 && std::chrono::steady_clock::now() < deadline && !stopped_) {
    poll.expires_after(kDrainPoll);
    co_await poll.async_wait(asio::use_awaitable);
  }
  stop();
  on_stopped();
}

std::uint32_t Server::limit_connections_to_fds() const {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
    return config_.max_connections;
  }
  const std::uint64_t needed = std::uint64_t{open_fds()} + kFdReserve +
                               kFdReservePerWorker * std::uint64_t{config_.workers} +
                               kMaxSharedSegments;
  const std::uint64_t available = limit.rlim_cur > needed ? limit.rlim_cur - needed : 0;
  if (available >= config_.max_connections) return config_.max_connections;
  const auto lowered = static_cast<std::uint32_t>(std::max<std::uint64_t>(available, 1));
  log(Level::kWarn, "open-files limit ", limit.rlim_cur, " (hard ", limit.rlim_max, "): serving ",
      lowered, " connections at once instead of --max-connections ", config_.max_connections, " (",
      needed,
      " descriptors are kept for the listener, workers, the database and job inputs; raise the"
      " limit with ulimit -n or LimitNOFILE=)");
  return lowered;
}

void Server::refuse_busy(ConnectionSocket& socket, bool tls) {
  asio::error_code ignored;
  if (tls) {
    // No handshake just to say no: the client sees the connection close.
    socket.close(ignored);
    return;
  }
  std::string reply;
  protocol::append_message(
      reply, static_cast<std::uint8_t>(protocol::Status::kServerBusy),
      protocol::ErrorMessage{"too many connections (" + std::to_string(connection_limit_) +
                             "); try again later"});
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(reply), ignored);  // best effort: never wait for this client
  socket.close(ignored);
}

Server::Refusal Server::refuse_with_reserve_fd(tcp::acceptor& acceptor, bool tls) {
  if (!reserve_fd_.held() && !reserve_fd_.restore()) return Refusal::kNoReserve;
  reserve_fd_.release();
  asio::error_code error;
  ConnectionSocket socket(io_);
  acceptor.accept(socket, error);  // non-blocking: would_block if no client is waiting
  if (!error) refuse_busy(socket, tls);
  // Taking the reserve back fails only if another thread took the descriptor meanwhile.
  if (!reserve_fd_.restore()) return Refusal::kNoReserve;
  return error ? Refusal::kNoneWaiting : Refusal::kRefusedOne;
}

void Server::warn_accept_failed(const asio::error_code& error) {
  ++accept_failures_since_warning_;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_accept_warning_ < kAcceptWarningInterval) return;
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  log(Level::kWarn, "accept: ", error.message(), " (open-files limit ", limit.rlim_cur, ", ",
      counters_.open, " connections open), ", accept_failures_since_warning_,
      " times since the last warning",
      out_of_fds(error) ? "; new clients are answered SERVER_BUSY" : "");
  last_accept_warning_ = now;
  accept_failures_since_warning_ = 0;
}

asio::awaitable<void> Server::accept_loop(tcp::acceptor& acceptor, bool tls) {
  // Waiting for the listener to be readable, then accepting without blocking, rather than
  // async_accept: accept() fails with EMFILE even when no client is waiting, so retrying it until
  // it succeeds would spin for as long as descriptors are short.
  asio::steady_timer pause(io_);
  while (acceptor.is_open()) {
    auto [wait_error] = co_await acceptor.async_wait(
        tcp::acceptor::wait_read, asio::experimental::as_tuple(asio::use_awaitable));
    if (wait_error == asio::error::operation_aborted) co_return;  // stop()
    bool back_off = static_cast<bool>(wait_error);
    if (wait_error) warn_accept_failed(wait_error);
    // Take the clients waiting, a batch at a time so that the connections being served get turns.
    for (int n = 0; n < kAcceptBatch && !back_off && acceptor.is_open(); ++n) {
      asio::error_code error;
      ConnectionSocket socket(io_);
      acceptor.accept(socket, error);
      if (error == asio::error::would_block || error == asio::error::try_again) break;
      if (error == asio::error::connection_aborted) continue;  // the client left first
      if (error) {
        warn_accept_failed(error);
        // The client waits in the listen queue for an answer: give it one with the reserve
        // descriptor. Without one (or on any other error) pause, not to spin.
        const auto refusal =
            out_of_fds(error) ? refuse_with_reserve_fd(acceptor, tls) : Refusal::kNoReserve;
        if (refusal == Refusal::kRefusedOne) continue;
        back_off = refusal == Refusal::kNoReserve;
        break;
      }
      if (counters_.open >= connection_limit_) {
        refuse_busy(socket, tls);
        continue;
      }
      asio::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // fails only if the client already left
      serve(std::move(socket), tls);
    }
    if (back_off) {
      pause.expires_after(kAcceptBackOff);
      co_await pause.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
  }
}

void Server::serve(ConnectionSocket socket, bool tls) {
  ++counters_.open;
  ++counters_.total;
  // serve_connection is the connection's only coroutine (no wrapper here: each would be one more
  // frame per connection); it lets no exception out, so the handler has only to count.
  const auto on_end = [this](std::exception_ptr error) {
    --counters_.open;
    if (error) log(Level::kError, "a connection ended by an unknown exception");
  };
  if (tls) {
    asio::co_spawn(io_,
                   serve_tls_connection(std::move(socket), *tls_context_, config_, handler_,
                                        budget_, sweeper_),
                   on_end);
  } else {
    asio::co_spawn(io_, serve_connection(std::move(socket), config_, handler_, budget_, sweeper_),
                   on_end);
  }
}

}  // namespace mrd::server
