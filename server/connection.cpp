#include "server/connection.hpp"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <string>

#include "protocol/frame.hpp"
#include "protocol/limits.hpp"
#include "server/log.hpp"
#include "server/reply_queue.hpp"

namespace mrd::server {
namespace {

using asio::use_awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

/// Every connection reads into this first (one network thread, so one buffer suffices). Only bytes
/// of an incomplete frame are copied into the connection's own buffer, so an idle connection
/// holds no read buffer at all.
thread_local char scratch[64 * 1024];

/// Keeps `deadline` in the future or returns, which cancels the connection (see operator||).
asio::awaitable<void> watchdog(const Clock::time_point& deadline, asio::steady_timer& timer) {
  for (auto now = Clock::now(); deadline > now; now = Clock::now()) {
    timer.expires_at(deadline);
    auto [error] = co_await timer.async_wait(asio::experimental::as_tuple(use_awaitable));
    if (error && (co_await asio::this_coro::cancellation_state).cancelled() !=
                     asio::cancellation_type::none) {
      co_return;
    }
  }
}

/// How much a connection queues before it stops answering and writes: a client that pipelines
/// many requests and never reads holds at most this (shared results cost a reference each).
constexpr std::size_t kMaxQueuedReplyBytes = 1 << 20;
constexpr std::size_t kMaxQueuedReplyPieces = 1024;

/// The per-connection state and loop.
class Connection {
 public:
  Connection(tcp::socket& socket, const std::string& peer, const ServerConfig& config,
             RequestHandler& handler, asio::steady_timer& watchdog_timer)
      : socket_(socket),
        peer_(peer),
        config_(config),
        handler_(handler),
        watchdog_timer_(watchdog_timer) {}

  asio::awaitable<void> serve(Clock::time_point& deadline);
  asio::awaitable<void> serve_loop(Clock::time_point& deadline);

 private:
  /// Answers the whole requests at the start of `data`, in order, until the reply queue is full;
  /// returns the bytes consumed.
  std::size_t answer_requests(std::string_view data);
  /// When the connection must be closed if nothing more happens.
  Clock::time_point next_deadline() const;

  tcp::socket& socket_;
  const std::string& peer_;  ///< "address:port", for logs
  const ServerConfig& config_;
  RequestHandler& handler_;
  asio::steady_timer& watchdog_timer_;
  std::string pending_;              ///< received bytes not answered yet (an incomplete request)
  std::size_t next_frame_ = 0;       ///< size of the incomplete request, once its header is in
  Clock::time_point request_start_;  ///< when the first byte of the incomplete request came
  ReplyQueue replies_;               ///< replies not yet written
  bool close_ = false;               ///< framing can no longer be trusted: close after the replies
};

std::size_t Connection::answer_requests(std::string_view data) {
  std::size_t consumed = 0;
  next_frame_ = 0;
  while (!close_ && replies_.owned_bytes() < kMaxQueuedReplyBytes &&
         replies_.pieces() < kMaxQueuedReplyPieces) {
    const auto frame = protocol::parse_request(data.substr(consumed), config_.max_frame_bytes);
    if (frame.outcome == protocol::ParsedFrame::Outcome::kNeedMore) {
      next_frame_ = frame.frame_bytes;
      break;
    }
    if (frame.outcome == protocol::ParsedFrame::Outcome::kTooLarge) {
      // The body is not read: skipping gigabytes to stay in sync would cost more than a reconnect.
      handler_.reject(
          protocol::Status::kFrameTooLarge,
          "a body of " + std::to_string(frame.body_bytes) + " bytes for opcode " +
              std::to_string(frame.code) + " exceeds the limit of " +
              std::to_string(protocol::request_body_limit(frame.code, config_.max_frame_bytes)) +
              " bytes; closing the connection",
          replies_.bytes());
      log(Level::kInfo, "closing ", peer_, ": frame too large (header ",
          hex_prefix(data.substr(consumed), protocol::kHeaderBytes), ")");
      close_ = true;
      break;
    }
    handler_.handle(frame.code, frame.body, replies_);
    consumed += frame.frame_bytes;
  }
  return consumed;
}

Clock::time_point Connection::next_deadline() const {
  const auto now = Clock::now();
  const auto idle = now + std::chrono::seconds(config_.idle_timeout_seconds);
  if (pending_.empty()) return idle;
  // A request that has started must be complete in time, however slowly its bytes trickle in.
  return std::min(idle, request_start_ + std::chrono::seconds(config_.request_timeout_seconds));
}

asio::awaitable<void> Connection::serve(Clock::time_point& deadline) {
  try {
    co_await serve_loop(deadline);
  } catch (const std::system_error& e) {
    // A reset or EOF mid-request ends the connection now: returning (not throwing) is what makes
    // operator|| cancel the watchdog instead of waiting for it.
    log(Level::kDebug, "connection ", peer_, " ended: ", e.what());
  }
}

asio::awaitable<void> Connection::serve_loop(Clock::time_point& deadline) {
  socket_.non_blocking(true);
  for (;;) {
    deadline = next_deadline();
    if (deadline < watchdog_timer_.expiry()) watchdog_timer_.cancel();  // wake it: sooner now
    std::string_view data;
    bool in_scratch = false;
    if (pending_.empty()) {
      co_await socket_.async_wait(tcp::socket::wait_read, use_awaitable);
      asio::error_code error;
      const auto n = socket_.read_some(asio::buffer(scratch), error);
      if (error == asio::error::would_block) continue;
      if (error) co_return;  // EOF or reset: the client left
      data = std::string_view(scratch, n);
      in_scratch = true;
      request_start_ = Clock::now();
    } else {
      // Part of a request is here: read the rest straight into place. The buffer grows with what
      // actually arrives (at most doubling per read), never to a size a header merely claims:
      // five bytes declaring a 384 MiB body must not cost 384 MiB.
      const auto have = pending_.size();
      const auto missing = next_frame_ > have ? next_frame_ - have : 0;
      const auto want =
          std::clamp<std::size_t>(missing, 4096, std::max<std::size_t>(64 * 1024, have));
      pending_.resize(have + want);
      const auto n = co_await socket_.async_read_some(asio::buffer(pending_.data() + have, want),
                                                      use_awaitable);
      pending_.resize(have + n);
      data = pending_;
    }

    auto consumed = answer_requests(data);
    if (in_scratch) {
      pending_.assign(data.substr(consumed));
    } else {
      pending_.erase(0, consumed);
    }

    // Write, then answer what the full reply queue held back, until nothing complete is left.
    while (!replies_.empty()) {
      deadline = Clock::now() + std::chrono::seconds(config_.idle_timeout_seconds);
      co_await asio::async_write(socket_, replies_.buffers(), use_awaitable);
      replies_.clear();
      if (close_) break;
      consumed = answer_requests(pending_);
      pending_.erase(0, consumed);
      if (consumed) request_start_ = Clock::now();
    }
    if (pending_.empty()) pending_.shrink_to_fit();  // a finished big upload frees its buffer now
    if (close_) {
      asio::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_both, ignored);
      co_return;
    }
  }
}

}  // namespace

asio::awaitable<void> serve_connection(tcp::socket socket, const ServerConfig& config,
                                       RequestHandler& handler) {
  std::string peer = "?";
  try {
    asio::error_code ignored;
    const auto endpoint = socket.remote_endpoint(ignored);
    peer = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    log(Level::kDebug, "connection from ", peer);
    asio::steady_timer timer(socket.get_executor());
    Connection connection(socket, peer, config, handler, timer);
    Clock::time_point deadline = Clock::now();
    // Whichever finishes first cancels the other: the client leaving, or the idle timer.
    co_await (connection.serve(deadline) || watchdog(deadline, timer));
  } catch (const std::system_error& e) {
    // Resets, broken pipes and cancelled operations are how connections end, not faults.
    log(Level::kDebug, "connection ", peer, " ended: ", e.what());
  } catch (const std::exception& e) {
    log(Level::kError, "connection ", peer, " failed: ", e.what());
  }
  log(Level::kDebug, "connection ", peer, " closed");
}

}  // namespace mrd::server
