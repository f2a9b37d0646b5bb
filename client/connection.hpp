// Connection: one blocking conversation with an mrd server, one request at a time.
//
// Every method sends one request, waits for its reply and returns the decoded answer, or throws
// ClientError. Replies that are about the job rather than the request (a FETCH of a job that
// failed) come back as values in a FetchOutcome, since a caller usually handles them in-line.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/frame_observer.hpp"
#include "client/receive_buffer.hpp"
#include "client/server_address.hpp"
#include "client/tcp_stream.hpp"
#include "protocol/codec.hpp"
#include "protocol/messages.hpp"
#include "protocol/wire.hpp"

namespace mrd::client {

/// Default stall timeout: how long one send or receive may make no progress at all.
inline constexpr std::chrono::milliseconds kDefaultIoTimeout = std::chrono::seconds(60);

/// What a FETCH found. `status` is one of kOk, kPending, kUnknownJob, kJobFailed,
/// kJobCancelled, kJobExpired; every other reply status is thrown as a ClientError.
struct FetchOutcome {
  protocol::Status status = protocol::Status::kPending;
  std::optional<protocol::JobResult> result;      ///< set for kOk
  std::optional<protocol::JobProgress> progress;  ///< set for kPending
  std::string message;                            ///< the server's words for the error statuses

  bool finished() const { return status != protocol::Status::kPending; }
};

/// A payload that a SUBMIT sends from a file, read as it is sent rather than first into memory:
/// `bytes` bytes from `offset` of the open file `fd` (not owned), named `path` in errors. A
/// document's text (the whole file), or a matrix's values (those of a .npy file, after its
/// header).
struct PayloadFile {
  int fd = -1;  ///< -1: the payload is in the request
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  std::string path;
};

/// Takes a FETCH's matrix result where it was received (Connection::set_matrix_result_sink).
using MatrixResultSink = std::function<void(const protocol::MatrixResultView&)>;

/// Called with each progress report while wait_for_result polls.
using ProgressCallback = std::function<void(const protocol::JobProgress&)>;

class Connection {
 public:
  /// Connects (over TLS if `tls.enabled`); see TcpStream::connect for `io_timeout`. Sends
  /// nothing: call hello() next.
  static Connection connect(const ServerAddress& address,
                            std::chrono::milliseconds io_timeout = kDefaultIoTimeout,
                            const TlsOptions& tls = {});

  /// HELLO: checks the server speaks this client's protocol version and returns its software
  /// name ("mrd 0.1.0"). Throws ClientError (kProtocol) on a version mismatch.
  std::string hello();

  /// True if the server said (in HELLO's reply) that requests need AUTH first.
  bool auth_required() const { return auth_required_; }

  /// AUTH: presents `token`; returns the tenant and role it names. Throws ClientError (kRejected)
  /// for AUTH_FAILED, with the server's message.
  protocol::AuthReply auth(std::string_view token);

  /// SUBMIT: queues a job and returns its id. Throws ClientError (kRejected) for QUEUE_FULL,
  /// BAD_JOB, SHUTTING_DOWN and FRAME_TOO_LARGE, with the server's message. `payload_files[i]`, if
  /// open, holds the payload in slot i (protocol::gather_message: document i's text, or of a
  /// matrix pair A's values for 0 and B's for 1), which the request then leaves empty; it is sent
  /// as it is read. ClientError (kInput) if such a file got shorter meanwhile, after which this
  /// connection is of no use.
  std::uint32_t submit(const protocol::SubmitRequest& request,
                       std::span<const PayloadFile> payload_files = {});

  /// FETCH once: the result, the progress so far, or why there will be no result.
  FetchOutcome fetch(std::uint32_t job_id);

  /// STATUS: a job's state and progress. Throws ClientError (kRejected) for an unknown job.
  protocol::JobProgress status(std::uint32_t job_id);

  /// CANCEL: stops a job and makes the server forget it.
  void cancel(std::uint32_t job_id);

  /// LIST: the jobs the server remembers that this connection may see (with tokens: its tenant's,
  /// or every job for an admin), each with its tenant.
  protocol::TenantJobList list();

  /// STATS: the server's counters.
  protocol::ServerStats stats();

  /// STATUS with details (version 4): what the job is, whose, and when each step happened.
  protocol::JobDetails details(std::uint32_t job_id);

  /// STATS with details (version 4): the counters, busy workers, task and job latencies.
  protocol::DetailedStats detailed_stats();

  /// Polls FETCH until the job has finished, pausing 1 ms, 2 ms, 4 ms ... up to 200 ms between
  /// polls, and calls `on_progress` (if set) with every PENDING report. Returns the final outcome.
  FetchOutcome wait_for_result(std::uint32_t job_id, const ProgressCallback& on_progress = {});

  /// From now on a FETCH's matrix result goes to `sink` (if set), its values still in the receive
  /// buffer, instead of being decoded into the outcome, whose result is then a Matrix of its shape
  /// without values: `mrctl matmul --out C.npy` writes a 32 MiB product to its file from there.
  void set_matrix_result_sink(MatrixResultSink sink) { matrix_result_sink_ = std::move(sink); }

  /// The server this connection talks to.
  const ServerAddress& address() const { return address_; }

  /// Shows `observer` every frame from now on, both ways (mrctl --trace); an empty one stops.
  void set_frame_observer(FrameObserver observer) { frame_observer_ = std::move(observer); }

 private:
  /// A reply frame: its status and its still-encoded body, a view into inbox_ that stays valid
  /// until the next reply is read (no copy: a result can be 32 MiB).
  struct Reply {
    protocol::Status status = protocol::Status::kOk;
    std::string_view body;
  };

  Connection(ServerAddress address, TcpStream stream)
      : address_(std::move(address)), stream_(std::move(stream)) {}

  /// Sends a whole request frame and reads its reply. `what` names the request in errors.
  Reply round_trip(std::string_view frame, const std::string& what);
  /// The same for a frame sent in pieces (a gathered SUBMIT: protocol::GatheredMessage).
  Reply round_trip(std::span<const SendPiece> frame, const std::string& what);

  /// round_trip, then the OK reply's body decoded as a T; any other reply is thrown. `Frame` is
  /// either of round_trip's.
  template <class T, class Frame>
  T ask(const Frame& frame, const std::string& what);

  /// Shows frame_observer_ the whole of a request frame sent in pieces.
  void observe_sent(std::span<const SendPiece> frame, std::uint64_t frame_bytes,
                    protocol::Opcode request);

  /// Reads the next reply frame, the answer to a `request`; nullopt if the server closed
  /// cleanly before its first byte.
  std::optional<Reply> read_reply(protocol::Opcode request, const std::string& what);

  /// Receives at least one more byte into inbox_; false if the server has closed.
  /// `wanted` is how many more the current frame needs, to size the read.
  bool receive_more(std::size_t wanted, const std::string& what);

  ServerAddress address_;
  TcpStream stream_;
  /// Received bytes: [0, inbox_filled_) not yet consumed; the rest is room for the next read.
  /// Grown as bytes arrive, never to a declared length up front.
  ReceiveBuffer inbox_;
  std::size_t inbox_filled_ = 0;
  /// The frame at the start of inbox_ that the last Reply views: dropped when the next is read.
  std::size_t reply_bytes_ = 0;
  FrameObserver frame_observer_;         ///< empty unless someone is watching
  MatrixResultSink matrix_result_sink_;  ///< empty: matrix results are decoded
  bool auth_required_ = false;           ///< from HELLO's reply
};

/// The result of an outcome with status kOk. Otherwise throws ClientError: kJobFailed for a
/// failed, cancelled or expired job, kRejected for an unknown one, kProtocol if still pending.
protocol::JobResult result_or_throw(FetchOutcome outcome, std::uint32_t job_id);

}  // namespace mrd::client
