#include "server/connection.hpp"

#include <algorithm>
#include <asio/basic_waitable_timer.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <string>
#include <tuple>
#include <vector>

#include "protocol/frame.hpp"
#include "protocol/limits.hpp"
#include "protocol/submit_layout.hpp"
#include "server/log.hpp"
#include "server/reply_queue.hpp"
#include "server/submit_upload.hpp"

namespace mrd::server {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

/// Every connection reads into this (one network thread, so one buffer suffices). Only bytes of an
/// incomplete frame are copied into the connection's own buffer, so an idle connection holds no
/// read buffer at all, and a connection's buffer only ever holds bytes that arrived.
thread_local char scratch[64 * 1024];

/// How much a connection queues before it stops answering and writes: a client that pipelines
/// many requests and never reads holds at most this (shared results cost a reference each).
constexpr std::size_t kMaxQueuedReplyBytes = 1 << 20;
constexpr std::size_t kMaxQueuedReplyPieces = 1024;

/// Everything one connection holds, and the steps of its loop that do not wait. It lives in the
/// frame of the connection's one coroutine (serve_connection), which does the waiting.
class Connection {
 public:
  Connection(ConnectionSocket socket, const ServerConfig& config, RequestHandler& handler,
             std::shared_ptr<MemoryBudget> budget, DeadlineSweeper& sweeper)
      : socket_(std::move(socket)),
        config_(config),
        handler_(handler),
        budget_(std::move(budget)),
        deadline_(sweeper, socket_) {
    asio::error_code ignored;
    peer_ = socket_.remote_endpoint(ignored);
  }

  ConnectionSocket& socket() { return socket_; }
  const tcp::endpoint& peer() const { return peer_; }

  /// Sets the deadline for waiting for the client's next bytes: the idle timeout, or sooner the
  /// end of the request timeout if a request has started.
  void await_input();
  /// Which deadline a connection waits under, so that the log can say which one closed it.
  enum class Deadline : std::uint8_t { kIdle, kRequest, kReplyUnread, kTlsHandshake, kTlsClose };
  /// Closes the connection once `timeout` has passed (a TLS handshake, or the close that ends
  /// one), whatever it is waiting for.
  void expire_after(Clock::duration timeout, Deadline which);
  /// Why the connection ended, once it has: "idle timeout", "request timeout", ...
  const char* deadline_passed() const;
  /// Answers a client that speaks plain mrd on the TLS port, in plain mrd bytes, and marks the
  /// connection for closing.
  void refuse_plain_on_tls();
  /// How many bytes to read next: no further than the end of an incomplete request (at least
  /// 4 KiB), so that its reply goes out before the requests behind it are read; at most `room`.
  std::size_t read_size(std::size_t room) const;
  /// Reads what the socket holds (plain TCP, without blocking) and takes it in. False if the
  /// client left (EOF or reset); `why` then says how.
  bool receive(asio::error_code& why);
  /// Answers every whole request in `bytes` (just received), and keeps the incomplete one.
  void take(std::string_view received);
  /// Sets the deadline for a reply being written: the idle timeout from now, moved on by every
  /// byte the client takes (see write_progress).
  void await_write();
  /// Called as the reply goes out: `written` bytes so far.
  void write_progress(std::size_t written);
  /// The replies queued, as buffers for one gathered write.
  std::vector<asio::const_buffer> reply_buffers() const { return replies_.buffers(); }
  bool has_replies() const { return !replies_.empty(); }
  /// After the replies were written: forgets them, then answers the requests the full reply queue
  /// held back. False if the connection is to be closed instead.
  bool replies_written();
  /// True while a reply waits for the database (a SUBMIT or CANCEL being committed): nothing more
  /// is read or answered until it is resolved.
  bool waiting() const { return replies_.waiting(); }
  /// The reply being waited for.
  const std::shared_ptr<DeferredReply>& deferred() const { return replies_.deferred(); }
  /// Once the reply waited for is resolved: queues it, then answers the requests held back.
  void resume();
  /// True if the connection must close once its replies are written (framing lost, or memory).
  bool closing() const { return close_; }
  /// Requests handed to the handler so far, for the log line that says the connection closed.
  std::uint32_t requests() const { return requests_; }
  /// True once the sweeper closed the socket: a deadline passed.
  bool timed_out() const { return deadline_.expired(); }
  /// How long to hold the replies back before writing them: a failed AUTH is answered slowly, so
  /// that guessing tokens is slow. Zero otherwise; cleared by asking.
  Clock::duration take_pause();

 private:
  /// Answers the whole requests at the start of `data`, in order, until the reply queue is full;
  /// returns the bytes consumed.
  std::size_t answer_requests(std::string_view data);
  /// Appends received bytes to pending_, its growth charged to the budget first; false (nothing
  /// appended) if the budget cannot hold it.
  bool hold(std::string_view bytes);
  /// Drops the bytes of answered requests from pending_, and its buffer once it is empty.
  void drop_pending(std::size_t consumed);
  /// Answers the whole requests waiting in pending_ (held back by a full reply queue or a reply
  /// that waited), unless a reply is still waited for.
  void answer_held_back();
  /// Answers SERVER_BUSY (the memory budget is exhausted) and marks the connection for closing.
  void refuse_for_memory(std::size_t wanted);
  /// If pending_ holds the start of a big SUBMIT, moves it into an upload that receives the rest.
  void maybe_start_upload();
  /// Adds received bytes to the upload; once it is whole, answers it. Returns the bytes used.
  std::size_t continue_upload(std::string_view received);

  ConnectionSocket socket_;
  tcp::endpoint peer_;  ///< for logs (kept: the socket may be closed when the last line is logged)
  const ServerConfig& config_;
  RequestHandler& handler_;
  /// Shared, not referenced: charges held by a connection outlive the Server when the io_context
  /// destroys connections after it.
  std::shared_ptr<MemoryBudget> budget_;
  DeadlineSweeper::Entry deadline_;  ///< closes socket_ when the connection's time is up
  /// Received bytes not answered yet (an incomplete request). A vector, since its reserve() makes
  /// exactly the capacity asked for, and that capacity is what pending_charge_ pays for.
  std::vector<char> pending_;
  MemoryCharge pending_charge_;  ///< pending_.capacity(), on budget_
  /// The big SUBMIT being received straight into its segment, if any (pending_ is then empty).
  std::unique_ptr<SubmitUpload> upload_;
  std::unique_ptr<EarlyStart> early_;  ///< the upload's maps, if they started while it arrives
  MemoryCharge reply_charge_;          ///< the bytes copied into replies_, on budget_
  std::size_t next_frame_ = 0;         ///< size of the incomplete request, once its header is in
  Clock::time_point request_start_;    ///< when the first byte of the incomplete request came
  std::size_t write_progress_ = 0;     ///< bytes of the reply being written that went out
  ReplyQueue replies_;                 ///< replies not yet written
  Session session_;                    ///< who the client is (AUTH)
  bool close_ = false;  ///< framing can no longer be trusted: close after the replies
  bool pause_ = false;  ///< an AUTH failed since the last write: see take_pause
  Deadline deadline_kind_ = Deadline::kIdle;  ///< which deadline deadline_ is
  /// Requests handed to the handler (32 bits fit beside the flags: the log's figure, not a limit).
  std::uint32_t requests_ = 0;
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
  upload_.reset();
  early_.reset();
  close_ = true;
}

void Connection::maybe_start_upload() {
  // Only an incomplete request at the start of pending_ (next_frame_ is then its size), which is
  // a SUBMIT big enough for shared memory, and whose body's first bytes say how to place it.
  using protocol::kHeaderBytes;
  if (upload_ || close_ || next_frame_ == 0 || pending_.size() < kHeaderBytes) return;
  if (pending_[0] != static_cast<char>(protocol::Opcode::kSubmit)) return;
  const auto body_bytes = next_frame_ - kHeaderBytes;
  const auto have = pending_.size() - kHeaderBytes;
  if (body_bytes < kSharedSegmentBytes || have < protocol::kSubmitPrefixBytes) return;
  // With a data directory the body goes to a file there, which the job's row will name.
  upload_ = SubmitUpload::start(
      {pending_.data() + kHeaderBytes, have}, body_bytes, *budget_,
      config_.data_dir.empty() ? std::string() : inputs_directory(config_.data_dir));
  if (!upload_) return;  // it stays in pending_, the way small requests go
  early_ = handler_.start_early({pending_.data() + kHeaderBytes, have}, *upload_, session_);
  std::vector<char>().swap(pending_);
  pending_charge_.reset();
}

std::size_t Connection::continue_upload(std::string_view received) {
  const auto used =
      static_cast<std::size_t>(std::min<std::uint64_t>(received.size(), upload_->missing()));
  if (!upload_->add(received.substr(0, used))) {
    if (upload_->error().empty()) {
      refuse_for_memory(used);
    } else {
      // A full disk, say: the rest of the body is not read, so the framing is lost.
      log(Level::kError, "cannot keep a job's input: ", upload_->error());
      handler_.reject(
          protocol::Status::kServerError,
          "cannot keep the job's input: " + upload_->error() + "; closing the connection",
          replies_.bytes());
      upload_.reset();
      early_.reset();
      close_ = true;
    }
    return received.size();
  }
  if (early_) early_->arrived(upload_->received());
  if (upload_->missing()) return used;
  ReceivedBody body;
  try {
    body = upload_->finish();
  } catch (const std::exception& e) {
    log(Level::kError, "cannot keep a job's input: ", e.what());
    handler_.reject(protocol::Status::kQueueFull,
                    std::string("queue full: cannot keep the job's input now (") + e.what() +
                        "); try again later",
                    replies_.bytes());
  }
  upload_.reset();
  next_frame_ = 0;
  if (body.segment) {
    body.early = std::move(early_);
    ++requests_;
    handler_.submit_received(std::move(body), replies_, session_);
  }
  early_.reset();
  reply_charge_ = MemoryCharge::force_take(*budget_, replies_.owned_bytes());
  return used;
}

std::size_t Connection::answer_requests(std::string_view data) {
  std::size_t consumed = 0;
  next_frame_ = 0;
  // A reply that waited may have been resolved while the replies before it were being written:
  // it goes first, before anything else is answered.
  replies_.take_resolved();
  while (!close_ && !replies_.waiting() && replies_.owned_bytes() < kMaxQueuedReplyBytes &&
         replies_.pieces() < kMaxQueuedReplyPieces) {
    // Before AUTH (with --auth-file) no SUBMIT body is accepted at all: a client without a token
    // cannot make the server hold its upload.
    const bool trusted = !handler_.auth_required() || session_.identity;
    const auto frame =
        protocol::parse_request(data.substr(consumed), trusted ? config_.max_frame_bytes : 0);
    if (frame.outcome == protocol::ParsedFrame::Outcome::kTooLarge && !trusted &&
        frame.code == static_cast<std::uint8_t>(protocol::Opcode::kSubmit)) {
      handler_.refuse_unread(
          protocol::Status::kNotAuthenticated,
          "submit: this server needs AUTH with a token first (mrctl --token-file "
          "FILE, or MRD_TOKEN); closing the connection",
          replies_.bytes());
      log(Level::kInfo, "closing ", peer_, ": a SUBMIT before AUTH");
      close_ = true;
      break;
    }
    if (frame.outcome == protocol::ParsedFrame::Outcome::kNeedMore) {
      next_frame_ = frame.frame_bytes;
      break;
    }
    if (frame.outcome == protocol::ParsedFrame::Outcome::kTooLarge) {
      // The body is not read: skipping gigabytes to stay in sync would cost more than a reconnect.
      handler_.refuse_unread(
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
    const auto failed_auths = session_.failed_auths;
    ++requests_;
    handler_.handle(frame.code, frame.body, replies_, session_);
    if (session_.failed_auths != failed_auths) {
      log(Level::kWarn, "AUTH from ", peer_, " failed (", int(session_.failed_auths), " of ",
          int(RequestHandler::kMaxFailedAuths), " on this connection)");
      pause_ = true;
      if (session_.close) close_ = true;
    }
    replies_.take_resolved();  // if its reply was known at once after all
    consumed += frame.frame_bytes;
  }
  // Small replies are copies: they are counted too, as long as they are queued.
  reply_charge_ = MemoryCharge::force_take(*budget_, replies_.owned_bytes());
  return consumed;
}

void Connection::await_input() {
  const auto idle = Clock::now() + std::chrono::seconds(config_.idle_timeout_seconds);
  deadline_kind_ = Deadline::kIdle;
  deadline_.expire_at(idle);
  if (pending_.empty() && !upload_) return;
  // A request that has started must be complete in time, however slowly its bytes trickle in.
  const auto request = request_start_ + std::chrono::seconds(config_.request_timeout_seconds);
  if (request < idle) {
    deadline_kind_ = Deadline::kRequest;
    deadline_.expire_at(request);
  }
}

void Connection::expire_after(Clock::duration timeout, Deadline which) {
  deadline_kind_ = which;
  deadline_.expire_at(Clock::now() + timeout);
}

const char* Connection::deadline_passed() const {
  switch (deadline_kind_) {
    case Deadline::kIdle: return "idle timeout";
    case Deadline::kRequest: return "request timeout";
    case Deadline::kReplyUnread: return "replies not read within the idle timeout";
    case Deadline::kTlsHandshake: return "TLS handshake timeout";
    case Deadline::kTlsClose: return "TLS close timeout";
  }
  return "timeout";
}

void Connection::refuse_plain_on_tls() {
  handler_.refuse_unread(
      protocol::Status::kBadRequest,
      "this port speaks TLS: connect with TLS (mrctl --tls); closing the connection",
      replies_.bytes());
  log(Level::kInfo, "closing ", peer_, ": plain bytes on the TLS port");
  close_ = true;
}

std::size_t Connection::read_size(std::size_t room) const {
  const auto have = pending_.size();
  const auto missing = upload_              ? upload_->missing()
                       : next_frame_ > have ? next_frame_ - have
                                            : room;
  return std::clamp<std::size_t>(missing, 4096, room);
}

bool Connection::receive(asio::error_code& why) {
  const auto n = socket_.read_some(asio::buffer(scratch, read_size(sizeof scratch)), why);
  if (why == asio::error::would_block) {
    why.clear();
    return true;
  }
  if (why) return false;  // EOF or reset: the client left
  take({scratch, n});
  return true;
}

void Connection::take(std::string_view received) {
  if (upload_) {
    received.remove_prefix(continue_upload(received));
    if (received.empty()) return;  // the requests behind the upload, if any, come next
  }
  if (pending_.empty()) {
    // Whole requests are answered straight from the read buffer; only the incomplete one at
    // its end, if any, is kept.
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
  maybe_start_upload();
}

Clock::duration Connection::take_pause() {
  if (!pause_) return {};
  pause_ = false;
  // 100 ms for the first failure, 200 ms for the second...: a few guesses a second at most.
  return std::chrono::milliseconds(100) * session_.failed_auths;
}

void Connection::await_write() {
  // A client that stops reading is closed once its reply has made no progress for the idle
  // timeout: that bounds how long it can keep a result alive that the store has let go.
  write_progress_ = 0;
  expire_after(std::chrono::seconds(config_.idle_timeout_seconds), Deadline::kReplyUnread);
}

void Connection::write_progress(std::size_t written) {
  if (written <= write_progress_) return;
  write_progress_ = written;
  deadline_.expire_at(Clock::now() + std::chrono::seconds(config_.idle_timeout_seconds));
}

bool Connection::replies_written() {
  replies_.clear();
  reply_charge_.reset();
  if (close_) return false;
  answer_held_back();
  return true;
}

void Connection::resume() {
  replies_.take_resolved();
  reply_charge_ = MemoryCharge::force_take(*budget_, replies_.owned_bytes());
  if (!close_) answer_held_back();
}

void Connection::answer_held_back() {
  replies_.take_resolved();
  if (replies_.waiting()) return;
  const auto consumed = answer_requests({pending_.data(), pending_.size()});
  drop_pending(consumed);
  if (consumed) request_start_ = Clock::now();
  maybe_start_upload();
}

using WakeTimer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, ConnectionExecutor>;

/// While it lives, resolving `reply` calls `wake`; not after (the waiting frame may be gone).
class ResolvedWakes {
 public:
  ResolvedWakes(std::shared_ptr<DeferredReply> reply, std::function<void()> wake)
      : reply_(std::move(reply)) {
    reply_->on_resolved = std::move(wake);
  }
  ~ResolvedWakes() { reply_->on_resolved = nullptr; }
  ResolvedWakes(const ResolvedWakes&) = delete;
  ResolvedWakes& operator=(const ResolvedWakes&) = delete;

 private:
  std::shared_ptr<DeferredReply> reply_;  ///< kept: the queue lets go of it once resolved
};

// An idle connection costs its coroutine frame (this, plus the loop's locals), the operation
// waiting on its socket and the reactor's state for that socket: about 1.8 KiB in all (RSS of a
// Release build holding 10000 idle connections). Keep this part from growing unnoticed.
static_assert(sizeof(Connection) <= 296, "an idle connection holds all of Connection");

/// A TLS connection decrypts into a buffer of its own, a TLS record's worth: the shared scratch
/// buffer could be overwritten by another connection's read before this one has looked at it.
constexpr std::size_t kTlsReadBytes = 16 * 1024;
/// How long closing a TLS connection waits for the client's close_notify after sending its own.
constexpr auto kTlsCloseTimeout = std::chrono::seconds(2);
/// The first byte of every TLS ClientHello: a TLS record of type handshake.
constexpr char kTlsHandshakeRecord = 0x16;

using TlsStream = asio::ssl::stream<ConnectionSocket&>;

/// What a connection reads and writes through: the socket itself, or TLS over it.
template <bool kTls>
using Stream = std::conditional_t<kTls, TlsStream, ConnectionSocket&>;

template <bool kTls>
Stream<kTls> open_stream(ConnectionSocket& socket, asio::ssl::context* tls_context) {
  if constexpr (kTls) {
    return TlsStream(socket, *tls_context);
  } else {
    return socket;
  }
}

// The waits below (for the database, for a failed AUTH's pause, for a reply to be written) are
// coroutines of their own: their timers and operations take memory only while they wait, not in
// the frame every idle connection keeps.

/// Waits until the reply that waits for the database is resolved (by the database writer's
/// outcome, posted to this thread), then queues it. The timer never expires: resolving cancels
/// it, which ends the wait.
ConnectionAwaitable<void> wait_for_database(Connection& connection) {
  WakeTimer wake(connection.socket().get_executor(), Clock::time_point::max());
  const ResolvedWakes resolved(connection.deferred(), [&wake] { wake.cancel(); });
  std::tie(std::ignore) =
      co_await wake.async_wait(asio::experimental::as_tuple(connection_awaitable));
  connection.resume();
}

/// Holds the connection's replies back for `pause` (a failed AUTH is answered slowly).
ConnectionAwaitable<void> hold_replies(Connection& connection, Clock::duration pause) {
  WakeTimer wait(connection.socket().get_executor(), Clock::now() + pause);
  std::tie(std::ignore) =
      co_await wait.async_wait(asio::experimental::as_tuple(connection_awaitable));
}

/// Writes the queued replies; returns the error that ended the write, if any. Not a plain write
/// first, though most replies would go at once: measured, the connection then answered tiny jobs
/// 5-10% slower (docs/benchmarks.md, "Fresh pages, and an idle connection's frame").
template <bool kTls>
ConnectionAwaitable<asio::error_code> write_replies(Stream<kTls>& stream, Connection& connection) {
  connection.await_write();
  asio::error_code error;
  std::tie(error, std::ignore) = co_await asio::async_write(
      stream, connection.reply_buffers(),
      [&connection](const asio::error_code& error, std::size_t bytes) {
        connection.write_progress(bytes);
        return asio::transfer_all()(error, bytes);
      },
      asio::experimental::as_tuple(connection_awaitable));
  co_return error;
}

/// Serves one connection, plain (kTls false) or TLS, from accept to close; see serve_connection.
///
/// Plain TCP waits until the socket is readable, then reads without blocking into the shared
/// scratch buffer, so an idle connection holds no read buffer. TLS cannot: OpenSSL may hold
/// decrypted bytes the socket no longer shows, so a TLS connection waits in a read, into a buffer
/// of its own. Everything else (answering, writing, deadlines) is the same code.
// GCC 12 mistakes asio's recycling allocator for coroutine frames (its own operator new and
// delete) for a mismatched pair in the TLS instantiation; it is not one.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
template <bool kTls>
ConnectionAwaitable<void> serve(ConnectionSocket accepted, asio::ssl::context* tls_context,
                                const ServerConfig& config, RequestHandler& handler,
                                std::shared_ptr<MemoryBudget> budget, DeadlineSweeper& sweeper) {
  // The connection lives in this coroutine's frame: one frame per connection, no other.
  Connection connection(std::move(accepted), config, handler, std::move(budget), sweeper);
  const auto as_tuple = asio::experimental::as_tuple(connection_awaitable);
  // Why the connection ended, for the debug log; expected endings are values, not exceptions.
  // A reason of its own (a deadline, the server closing) is named in `why`; else `ended` says it.
  asio::error_code ended;
  const char* why = nullptr;
  try {
    log(Level::kDebug, kTls ? "TLS connection from " : "connection from ", connection.peer());
    auto& socket = connection.socket();
    socket.non_blocking(true, ended);
    Stream<kTls> stream = open_stream<kTls>(socket, tls_context);
    std::unique_ptr<char[]> tls_buffer;
    bool ready = !kTls;  // a TLS connection is, once its handshake succeeded
    if constexpr (kTls) {
      // The handshake, like a request, must be over within the request timeout. A client that
      // speaks plain mrd here is told so in plain mrd, rather than left to guess at TLS alerts.
      connection.expire_after(std::chrono::seconds(config.request_timeout_seconds),
                              Connection::Deadline::kTlsHandshake);
      // Readiness is a hint, not a promise: a wake-up that finds nothing to peek at yet waits
      // again, rather than dropping a client that is about to say hello.
      char first = 0;
      do {
        std::tie(ended) = co_await socket.async_wait(tcp::socket::wait_read, as_tuple);
        if (!ended) socket.receive(asio::buffer(&first, 1), tcp::socket::message_peek, ended);
      } while (ended == asio::error::would_block && !connection.timed_out());
      if (!ended && first != kTlsHandshakeRecord) {
        connection.refuse_plain_on_tls();
        std::tie(ended, std::ignore) =
            co_await asio::async_write(socket, connection.reply_buffers(), as_tuple);
        asio::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
      } else if (!ended) {
        std::tie(ended) = co_await stream.async_handshake(asio::ssl::stream_base::server, as_tuple);
        if (ended && !connection.timed_out()) {
          log(Level::kInfo, "TLS handshake with ", connection.peer(), " failed: ", ended.message());
        }
        ready = !ended;
        if (ready) tls_buffer = std::make_unique<char[]>(kTlsReadBytes);
      }
    }
    // Wait for bytes, read and answer, write the replies (and answer what the full reply queue
    // held back) until nothing complete is left; repeat. The sweeper closes the socket when the
    // deadline set before each wait passes, which fails the wait.
    while (ready && !ended) {
      if (connection.waiting()) {
        // A reply waits for the database: this connection reads and answers nothing more until
        // it is resolved; the others go on.
        co_await wait_for_database(connection);
      } else if constexpr (kTls) {
        connection.await_input();
        std::size_t n = 0;
        std::tie(ended, n) = co_await stream.async_read_some(
            asio::buffer(tls_buffer.get(), connection.read_size(kTlsReadBytes)), as_tuple);
        if (ended || connection.timed_out()) break;
        connection.take({tls_buffer.get(), n});
      } else {
        connection.await_input();
        std::tie(ended) = co_await socket.async_wait(tcp::socket::wait_read, as_tuple);
        if (ended || connection.timed_out() || !connection.receive(ended)) break;
      }
      if (const auto pause = connection.take_pause(); pause.count() > 0) {
        co_await hold_replies(connection, pause);
      }
      bool written = true;
      while (written && connection.has_replies()) {
        ended = co_await write_replies<kTls>(stream, connection);
        written = !ended && !connection.timed_out() && connection.replies_written();
      }
      if (!written || connection.closing()) break;
    }
    // Why it ends, named before the goodbye below, whose own timeout must not hide the reason.
    if (connection.timed_out()) {
      why = connection.deadline_passed();
    } else if (connection.closing()) {
      why = "closed by the server";  // its reason was logged when it decided
    } else if (!ended || ended == asio::error::eof) {
      why = "closed by the client";
    }
    // The server closes (framing lost, memory), or a TLS client said close_notify: say goodbye
    // the way the transport expects. A TLS close waits for the client's close_notify at most
    // kTlsCloseTimeout, so it cannot hang.
    const bool tls_said_goodbye = kTls && ended == asio::error::eof;
    if (ready && (connection.closing() || tls_said_goodbye) && !connection.timed_out()) {
      asio::error_code ignored;
      if constexpr (kTls) {
        connection.expire_after(kTlsCloseTimeout, Connection::Deadline::kTlsClose);
        std::tie(ignored) = co_await stream.async_shutdown(as_tuple);
      } else {
        socket.shutdown(tcp::socket::shutdown_both, ignored);
      }
    }
  } catch (const std::exception& e) {
    log(Level::kError, "connection ", connection.peer(), " failed: ", e.what());
    why = "failed (logged above)";
  }
  log(Level::kDebug, "connection ", connection.peer(), " closed (",
      why ? std::string(why) : ended.message(), ") after ", connection.requests(),
      connection.requests() == 1 ? " request" : " requests");
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace

ConnectionAwaitable<void> serve_connection(ConnectionSocket socket, const ServerConfig& config,
                                           RequestHandler& handler,
                                           std::shared_ptr<MemoryBudget> budget,
                                           DeadlineSweeper& sweeper) {
  return serve<false>(std::move(socket), nullptr, config, handler, std::move(budget), sweeper);
}

ConnectionAwaitable<void> serve_tls_connection(ConnectionSocket socket,
                                               asio::ssl::context& tls_context,
                                               const ServerConfig& config, RequestHandler& handler,
                                               std::shared_ptr<MemoryBudget> budget,
                                               DeadlineSweeper& sweeper) {
  return serve<true>(std::move(socket), &tls_context, config, handler, std::move(budget), sweeper);
}

}  // namespace mrd::server
