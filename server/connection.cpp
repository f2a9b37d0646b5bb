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
#include <vector>

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

/// Every connection reads into this (one network thread, so one buffer suffices). Only bytes of an
/// incomplete frame are copied into the connection's own buffer, so an idle connection holds no
/// read buffer at all, and a connection's buffer only ever holds bytes that arrived.
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
             RequestHandler& handler, std::shared_ptr<MemoryBudget> budget,
             asio::steady_timer& watchdog_timer)
      : socket_(socket),
        peer_(peer),
        config_(config),
        handler_(handler),
        budget_(std::move(budget)),
        watchdog_timer_(watchdog_timer) {}

  asio::awaitable<void> serve(Clock::time_point& deadline);
  asio::awaitable<void> serve_loop(Clock::time_point& deadline);

 private:
  /// Answers the whole requests at the start of `data`, in order, until the reply queue is full;
  /// returns the bytes consumed.
  std::size_t answer_requests(std::string_view data);
  /// When the connection must be closed if nothing more happens.
  Clock::time_point next_deadline() const;
  /// Appends received bytes to pending_, its growth charged to the budget first; false (nothing
  /// appended) if the budget cannot hold it.
  bool hold(std::string_view bytes);
  /// Drops the bytes of answered requests from pending_, and its buffer once it is empty.
  void drop_pending(std::size_t consumed);
  /// Answers SERVER_BUSY (the memory budget is exhausted) and marks the connection for closing.
  void refuse_for_memory(std::size_t wanted);

  tcp::socket& socket_;
  const std::string& peer_;  ///< "address:port", for logs
  const ServerConfig& config_;
  RequestHandler& handler_;
  /// Shared, not referenced: charges held by a connection outlive the Server when the io_context
  /// destroys connections after it.
  std::shared_ptr<MemoryBudget> budget_;
  asio::steady_timer& watchdog_timer_;
  /// Received bytes not answered yet (an incomplete request). A vector, since its reserve() makes
  /// exactly the capacity asked for, and that capacity is what pending_charge_ pays for.
  std::vector<char> pending_;
  MemoryCharge pending_charge_;      ///< pending_.capacity(), on budget_
  MemoryCharge reply_charge_;        ///< the bytes copied into replies_, on budget_
  std::size_t next_frame_ = 0;       ///< size of the incomplete request, once its header is in
  Clock::time_point request_start_;  ///< when the first byte of the incomplete request came
  ReplyQueue replies_;               ///< replies not yet written
  bool close_ = false;               ///< framing can no longer be trusted: close after the replies
};

bool Connection::hold(std::string_view bytes) {
  const auto needed = pending_.size() + bytes.size();
  if (needed > pending_.capacity()) {
    // Double what is held, which arrived, but never past the size the header declared (known
    // once its five bytes are in): five bytes claiming a 384 MiB body buy nothing.
    auto capacity = std::max(needed, 2 * pending_.capacity());
    if (next_frame_ >= needed) capacity = std::min(capacity, next_frame_);
    // While the bytes move, the old buffer and the new one both exist: both are paid for.
    const auto moving = capacity + pending_.capacity();
    const bool charged = pending_charge_
                             ? pending_charge_.resize(moving)
                             : bool(pending_charge_ = MemoryCharge::try_take(*budget_, moving));
    if (!charged) return false;
    pending_.reserve(capacity);
    pending_charge_.resize(capacity);  // shrinking always succeeds
  }
  pending_.insert(pending_.end(), bytes.begin(), bytes.end());
  return true;
}

void Connection::drop_pending(std::size_t consumed) {
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(consumed));
  if (pending_.empty()) {
    std::vector<char>().swap(pending_);  // a finished big upload frees its buffer now
    pending_charge_.reset();
  }
}

void Connection::refuse_for_memory(std::size_t wanted) {
  const auto used = budget_->used();
  handler_.reject(protocol::Status::kServerBusy,
                  "the server's memory budget is exhausted (" + std::to_string(mebibytes(used)) +
                      " of " + std::to_string(budget_->limit() >> 20) +
                      " MiB in use; this request needs " + std::to_string(mebibytes(wanted)) +
                      " MiB more); try again later; closing the connection",
                  replies_.bytes());
  log(Level::kInfo, "closing ", peer_, ": memory budget exhausted (", used, " of ",
      budget_->limit(), " bytes in use)");
  std::vector<char>().swap(pending_);
  pending_charge_.reset();
  close_ = true;
}

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
  // Small replies are copies: they are counted too, as long as they are queued.
  reply_charge_ = MemoryCharge::force_take(*budget_, replies_.owned_bytes());
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
    co_await socket_.async_wait(tcp::socket::wait_read, use_awaitable);
    // While a request is incomplete, read no further than its end (at least 4 KiB): its reply
    // then goes out before the requests behind it are read.
    const auto have = pending_.size();
    const auto missing = next_frame_ > have ? next_frame_ - have : sizeof scratch;
    asio::error_code error;
    const auto n = socket_.read_some(
        asio::buffer(scratch, std::clamp<std::size_t>(missing, 4096, sizeof scratch)), error);
    if (error == asio::error::would_block) continue;
    if (error) co_return;  // EOF or reset: the client left
    const std::string_view received(scratch, n);

    if (pending_.empty()) {
      // Whole requests are answered straight from the scratch buffer; only the incomplete one
      // at its end, if any, is kept.
      request_start_ = Clock::now();
      const auto consumed = answer_requests(received);
      if (consumed < received.size() && !close_ && !hold(received.substr(consumed))) {
        refuse_for_memory(received.size() - consumed);
      }
    } else if (!hold(received)) {
      refuse_for_memory(received.size());
    } else {
      drop_pending(answer_requests({pending_.data(), pending_.size()}));
    }

    // Write, then answer what the full reply queue held back, until nothing complete is left.
    while (!replies_.empty()) {
      // A client that stops reading is closed once its reply has made no progress for the idle
      // timeout: that bounds how long it can keep a result alive that the store has let go.
      const auto idle = std::chrono::seconds(config_.idle_timeout_seconds);
      deadline = Clock::now() + idle;
      std::size_t progress = 0;
      co_await asio::async_write(
          socket_, replies_.buffers(),
          [&](const asio::error_code& write_error, std::size_t written) {
            if (written > progress) {
              progress = written;
              deadline = Clock::now() + idle;
            }
            return asio::transfer_all()(write_error, written);
          },
          use_awaitable);
      replies_.clear();
      reply_charge_.reset();
      if (close_) break;
      const auto consumed = answer_requests({pending_.data(), pending_.size()});
      drop_pending(consumed);
      if (consumed) request_start_ = Clock::now();
    }
    if (close_) {
      asio::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_both, ignored);
      co_return;
    }
  }
}

}  // namespace

asio::awaitable<void> serve_connection(tcp::socket socket, const ServerConfig& config,
                                       RequestHandler& handler,
                                       std::shared_ptr<MemoryBudget> budget) {
  std::string peer = "?";
  try {
    asio::error_code ignored;
    const auto endpoint = socket.remote_endpoint(ignored);
    peer = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    log(Level::kDebug, "connection from ", peer);
    asio::steady_timer timer(socket.get_executor());
    Connection connection(socket, peer, config, handler, std::move(budget), timer);
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
