#include "client/connection.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "client/client_error.hpp"
#include "client/poll_backoff.hpp"
#include "client/reply_error.hpp"
#include "protocol/codec.hpp"
#include "protocol/frame.hpp"
#include "protocol/limits.hpp"

namespace mrd::client {
namespace {

using protocol::Opcode;
using protocol::Status;

/// Largest body a frame header can announce.
constexpr std::uint64_t kMaxFrameBodyBytes = 0xFFFFFFFFull;

/// Largest reply body accepted. The server is trusted further than its clients are, so this is
/// everything a header can say; the body is still read as it arrives, not allocated up front.
constexpr std::uint64_t kMaxReplyBodyBytes = kMaxFrameBodyBytes;

/// Smallest and largest single read.
constexpr std::size_t kMinReceiveBytes = 64 << 10;
constexpr std::size_t kMaxReceiveBytes = 16 << 20;

/// Requests larger than this get a hint about the server's frame limit when the server hangs up.
constexpr std::size_t kLargeRequestBytes = 1 << 20;

std::uint8_t code(Opcode opcode) {
  return static_cast<std::uint8_t>(opcode);
}

/// A request frame for a body that is a single job id.
std::string job_id_frame(Opcode opcode, std::uint32_t job_id) {
  std::string frame;
  protocol::append_message(frame, code(opcode), protocol::JobId{job_id});
  return frame;
}

std::string empty_frame(Opcode opcode) {
  std::string frame;
  protocol::append_frame(frame, code(opcode), {});
  return frame;
}

/// Why a large request may have been cut off, since the server cannot tell us after hanging up.
std::string size_hint(std::size_t request_bytes) {
  if (request_bytes < kLargeRequestBytes) return "";
  return "; the request was " + std::to_string(request_bytes >> 20) +
         " MiB, which may exceed the server's frame limit (mrd --max-frame-mib, " +
         std::to_string(protocol::kDefaultMaxFrameBytes >> 20) + " MiB by default)";
}

/// The message of an error reply, or a stand-in if even that does not decode.
std::string error_text(std::string_view body) {
  auto decoded = protocol::decode<protocol::ErrorMessage>(body);
  return decoded ? decoded.value->text
                 : "(the error message did not decode: " + decoded.error + ")";
}

/// Decodes a reply body as a T, or throws kProtocol.
template <class T>
T decode_body(std::string_view body, const std::string& what) {
  auto decoded = protocol::decode<T>(body);
  if (!decoded) {
    throw ClientError(ErrorKind::kProtocol,
                      what + ": the server's reply did not decode: " + decoded.error);
  }
  return std::move(*decoded.value);
}

/// The body of an OK reply decoded as a T; any other status is thrown as its ClientError.
template <class T>
T expect_ok(Status status, std::string_view body, const std::string& what) {
  if (status != Status::kOk) throw reply_error(what, status, error_text(body));
  return decode_body<T>(body, what);
}

}  // namespace

Connection Connection::connect(const ServerAddress& address, std::chrono::milliseconds io_timeout,
                               const TlsOptions& tls) {
  return Connection(address, TcpStream::connect(address, io_timeout, tls));
}

template <class T, class Frame>
T Connection::ask(const Frame& frame, const std::string& what) {
  const Reply reply = round_trip(frame, what);
  return expect_ok<T>(reply.status, reply.body, what);
}

std::string Connection::hello() {
  const std::string what = "hello";
  std::string frame;
  protocol::append_message(frame, code(Opcode::kHello), protocol::Hello{});
  const Reply reply = round_trip(frame, what);
  if (reply.status == Status::kVersionMismatch) {
    throw ClientError(
        ErrorKind::kProtocol,
        "the server does not speak protocol version " + std::to_string(protocol::kProtocolVersion) +
            ", the one this client speaks (server says: " + error_text(reply.body) + ")",
        reply.status);
  }
  const auto hello = expect_ok<protocol::HelloReply>(reply.status, reply.body, what);
  auth_required_ = (hello.flags & protocol::kHelloAuthRequired) != 0;
  if (hello.protocol_version != protocol::kProtocolVersion) {
    throw ClientError(ErrorKind::kProtocol,
                      "server speaks protocol version " + std::to_string(hello.protocol_version) +
                          ", this client speaks " + std::to_string(protocol::kProtocolVersion));
  }
  return hello.software;
}

protocol::AuthReply Connection::auth(std::string_view token) {
  std::string frame;
  protocol::append_message(frame, code(Opcode::kAuth), protocol::AuthRequest{std::string(token)});
  return ask<protocol::AuthReply>(frame, "auth");
}

std::uint32_t Connection::submit(const protocol::SubmitRequest& request,
                                 std::span<const PayloadFile> payload_files) {
  // A SUBMIT body can be hundreds of MiB: its texts, numbers and matrices are sent from the
  // request itself (or from their files), with only the fields around them encoded (a gather
  // write), not copied into a frame first.
  std::vector<std::uint64_t> outside(payload_files.size(), 0);
  for (std::size_t i = 0; i < payload_files.size(); ++i)
    if (payload_files[i].fd >= 0) outside[i] = payload_files[i].bytes;
  const auto frame = protocol::gather_message(code(Opcode::kSubmit), request, outside);
  // Past 4 GiB the header's u32 length cannot say the size: refuse here, since the server cannot
  // tell.
  if (frame.size() - protocol::kHeaderBytes > kMaxFrameBodyBytes) {
    throw ClientError(ErrorKind::kInput, "submit: the request is " +
                                             std::to_string(frame.size() >> 20) +
                                             " MiB; a frame holds at most 4 GiB");
  }
  std::vector<SendPiece> pieces;
  const auto in_memory = [&pieces](std::string_view bytes) {
    pieces.push_back(SendPiece::in_memory(bytes));
  };
  frame.for_each_piece(in_memory, in_memory, [&](std::size_t document, std::uint64_t bytes) {
    const auto& file = payload_files[document];
    pieces.push_back({{}, file.fd, file.offset, bytes, file.path});
  });
  return ask<protocol::JobId>(pieces, "submit").id;
}

FetchOutcome Connection::fetch(std::uint32_t job_id) {
  const auto what = job_what("fetch", job_id);
  const Reply reply = round_trip(job_id_frame(Opcode::kFetch, job_id), what);
  FetchOutcome outcome;
  outcome.status = reply.status;
  switch (reply.status) {
    case Status::kOk:
      if (matrix_result_sink_ && protocol::holds_matrix_result(reply.body)) {
        const auto matrix = decode_body<protocol::MatrixResultView>(reply.body, what);
        matrix_result_sink_(matrix);
        outcome.result = protocol::Matrix{matrix.rows, matrix.cols, {}};
      } else {
        outcome.result = decode_body<protocol::JobResult>(reply.body, what);
      }
      break;
    case Status::kPending:
      outcome.progress = decode_body<protocol::JobProgress>(reply.body, what);
      break;
    case Status::kUnknownJob:
    case Status::kJobFailed:
    case Status::kJobCrashed:
    case Status::kJobTimedOut:
    case Status::kJobOutOfMemory:
    case Status::kJobCancelled:
    case Status::kJobExpired: outcome.message = error_text(reply.body); break;
    default: throw reply_error(what, reply.status, error_text(reply.body));
  }
  return outcome;
}

protocol::JobProgress Connection::status(std::uint32_t job_id) {
  const auto what = job_what("status of", job_id);
  return ask<protocol::JobProgress>(job_id_frame(Opcode::kStatus, job_id), what);
}

void Connection::cancel(std::uint32_t job_id) {
  const auto what = job_what("cancel", job_id);
  const Reply reply = round_trip(job_id_frame(Opcode::kCancel, job_id), what);
  if (reply.status != Status::kOk) throw reply_error(what, reply.status, error_text(reply.body));
  if (!reply.body.empty()) {
    throw ClientError(ErrorKind::kProtocol,
                      what + ": the server's OK reply has an unexpected body");
  }
}

protocol::TenantJobList Connection::list() {
  std::string frame;
  protocol::append_message(frame, code(Opcode::kList), protocol::ListRequest{});
  return ask<protocol::TenantJobList>(frame, "list");
}

protocol::ServerStats Connection::stats() {
  return ask<protocol::ServerStats>(empty_frame(Opcode::kStats), "stats");
}

protocol::JobDetails Connection::details(std::uint32_t job_id) {
  std::string frame;
  protocol::append_message(frame, code(Opcode::kStatus), protocol::StatusRequest{job_id});
  return ask<protocol::JobDetails>(frame, job_what("status of", job_id));
}

protocol::DetailedStats Connection::detailed_stats() {
  std::string frame;
  protocol::append_message(frame, code(Opcode::kStats), protocol::StatsRequest{});
  return ask<protocol::DetailedStats>(frame, "stats");
}

FetchOutcome Connection::wait_for_result(std::uint32_t job_id,
                                         const ProgressCallback& on_progress) {
  return poll_until_finished([&] { return fetch(job_id); }, on_progress);
}

Connection::Reply Connection::round_trip(std::string_view frame, const std::string& what) {
  const auto whole = SendPiece::in_memory(frame);
  return round_trip(std::span<const SendPiece>(&whole, 1), what);
}

Connection::Reply Connection::round_trip(std::span<const SendPiece> frame,
                                         const std::string& what) {
  // Every request frame is built by this class, so its first byte is a valid opcode. The reply
  // is matched to it here, where it is known: an OK body's layout depends on the request.
  const auto request = static_cast<Opcode>(frame.front().bytes[0]);
  std::uint64_t frame_bytes = 0;
  for (const auto& piece : frame)
    frame_bytes += piece.size();
  if (frame_observer_) observe_sent(frame, frame_bytes, request);
  if (const auto error = stream_.send_all(frame)) {
    // The server may have answered and hung up before reading the whole request, as it does on
    // FRAME_TOO_LARGE; that answer explains more than our broken pipe, so look for it first.
    try {
      if (auto reply = read_reply(request, what)) return std::move(*reply);
    } catch (const ClientError&) {
      // Nothing readable either: report the send failure below.
    }
    throw ClientError(ErrorKind::kConnection, what + ": lost the connection to " +
                                                  to_string(address_) + " while sending (" +
                                                  error.message() + ")" + size_hint(frame_bytes));
  }
  auto reply = read_reply(request, what);
  if (!reply) {
    throw ClientError(ErrorKind::kConnection, what + ": the server at " + to_string(address_) +
                                                  " closed the connection without replying" +
                                                  size_hint(frame_bytes));
  }
  return std::move(*reply);
}

void Connection::observe_sent(std::span<const SendPiece> frame, std::uint64_t frame_bytes,
                              Opcode request) {
  // Tracing shows whole frames: only then are the pieces copied into one, files read.
  std::string whole;
  whole.reserve(frame_bytes);
  for (const auto& piece : frame) {
    if (piece.file < 0) {
      whole += piece.bytes;
      continue;
    }
    const auto start = whole.size();
    whole.resize(start + piece.file_bytes);
    for (std::uint64_t done = 0; done < piece.file_bytes;) {
      const ssize_t got = ::pread(piece.file, whole.data() + start + done, piece.file_bytes - done,
                                  static_cast<off_t>(done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;  // sending it will say what is wrong with the file
      done += static_cast<std::uint64_t>(got);
    }
  }
  frame_observer_(Direction::kSent, whole, request);
}

std::optional<Connection::Reply> Connection::read_reply(Opcode request, const std::string& what) {
  // The previous reply is no longer looked at: drop its frame, keep what came after it.
  if (reply_bytes_ > 0) {
    std::memmove(inbox_.data(), inbox_.data() + reply_bytes_, inbox_filled_ - reply_bytes_);
    inbox_filled_ -= std::exchange(reply_bytes_, 0);
  }
  for (;;) {
    const std::string_view received(inbox_.data(), inbox_filled_);
    const auto parsed = protocol::parse_frame(received, kMaxReplyBodyBytes);
    if (parsed.outcome == protocol::ParsedFrame::Outcome::kTooLarge) {
      throw ClientError(ErrorKind::kProtocol, what + ": the server announced a reply of " +
                                                  std::to_string(parsed.body_bytes) + " bytes");
    }
    // Check the status as soon as the header is in: a peer that is not mrd at all (an HTTP
    // server, say) is told apart at once instead of by a nonsense body length.
    if (inbox_filled_ >= protocol::kHeaderBytes && !protocol::is_known_status(parsed.code)) {
      throw ClientError(ErrorKind::kProtocol, what + ": the reply starts with status " +
                                                  std::to_string(parsed.code) +
                                                  ", which this client does not know; is " +
                                                  to_string(address_) + " an mrd server?");
    }
    if (parsed.outcome == protocol::ParsedFrame::Outcome::kFrame) {
      if (frame_observer_) {
        frame_observer_(Direction::kReceived, received.substr(0, parsed.frame_bytes), request);
      }
      reply_bytes_ = parsed.frame_bytes;
      return Reply{static_cast<Status>(parsed.code), parsed.body};
    }
    const std::size_t needed =
        parsed.frame_bytes == 0 ? protocol::kHeaderBytes : parsed.frame_bytes;
    if (!receive_more(needed - inbox_filled_, what)) {
      if (inbox_filled_ == 0) return std::nullopt;
      throw ClientError(ErrorKind::kConnection,
                        what + ": the server at " + to_string(address_) +
                            " closed the connection in the middle of its reply");
    }
  }
}

bool Connection::receive_more(std::size_t wanted, const std::string& what) {
  const std::size_t chunk = std::clamp(wanted, kMinReceiveBytes, kMaxReceiveBytes);
  if (inbox_.size() < inbox_filled_ + chunk) {
    inbox_.grow(std::max(inbox_.size() * 2, inbox_filled_ + chunk));
  }
  std::error_code error;
  const std::size_t received =
      stream_.receive_some({inbox_.data() + inbox_filled_, inbox_.size() - inbox_filled_}, error);
  if (error == std::errc::timed_out) {
    throw ClientError(ErrorKind::kConnection,
                      what + ": the server at " + to_string(address_) + " stopped answering");
  }
  if (error) {
    throw ClientError(
        ErrorKind::kConnection,
        what + ": lost the connection to " + to_string(address_) + " (" + error.message() + ")");
  }
  inbox_filled_ += received;
  return received > 0;
}

protocol::JobResult result_or_throw(FetchOutcome outcome, std::uint32_t job_id) {
  if (outcome.status == Status::kOk && outcome.result) return std::move(*outcome.result);
  throw reply_error("job " + std::to_string(job_id), outcome.status, outcome.message);
}

}  // namespace mrd::client
