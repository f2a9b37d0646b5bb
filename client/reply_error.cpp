#include "client/reply_error.hpp"

#include <string>

namespace mrd::client {
namespace {

/// What the status means, in words a person at a terminal can act on.
std::string_view explain(protocol::Status status) {
  using protocol::Status;
  switch (status) {
    case Status::kOk: return "unexpected OK reply";
    case Status::kPending: return "unexpected PENDING reply";
    case Status::kUnknownJob: return "no such job on this server";
    case Status::kJobFailed: return "the job failed";
    case Status::kJobCancelled: return "the job was cancelled";
    case Status::kJobExpired: return "the job finished but its result has been evicted";
    case Status::kQueueFull: return "the server's job queue is full; try again later";
    case Status::kBadRequest: return "the server could not decode the request";
    case Status::kUnknownOpcode: return "the server does not know this request";
    case Status::kFrameTooLarge: return "the request is larger than the server accepts";
    case Status::kVersionMismatch: return "the server speaks another protocol version";
    case Status::kBadJob: return "the server cannot run this job";
    case Status::kServerBusy:
      return "the server is busy (too many connections, or its memory budget is full); try again "
             "later";
    case Status::kShuttingDown: return "the server is shutting down and takes no new jobs";
    case Status::kJobCrashed: return "the job's worker process crashed";
    case Status::kJobTimedOut: return "the job ran past its deadline";
    case Status::kJobOutOfMemory: return "the job ran out of memory";
    case Status::kServerError: return "the server failed to do it (see its log)";
    case Status::kAuthFailed: return "the server does not accept this token";
    case Status::kNotAuthenticated: return "the server needs a token first";
    case Status::kForbidden: return "this token's role may not do that";
    case Status::kUnavailable:
      return "this node cannot reach the cluster's shared store (Redis), so nothing was done; try "
             "again, or another node";
  }
  return "unknown reply status";
}

}  // namespace

ErrorKind error_kind_of(protocol::Status status) {
  using protocol::Status;
  switch (status) {
    case Status::kJobFailed:
    case Status::kJobCrashed:
    case Status::kJobTimedOut:
    case Status::kJobOutOfMemory:
    case Status::kJobCancelled:
    case Status::kJobExpired: return ErrorKind::kJobFailed;
    case Status::kQueueFull:
    case Status::kBadJob:
    case Status::kShuttingDown:
    case Status::kUnknownJob:
    case Status::kFrameTooLarge: return ErrorKind::kRejected;
    case Status::kServerBusy:
    case Status::kUnavailable: return ErrorKind::kConnection;
    case Status::kServerError:
    case Status::kAuthFailed:
    case Status::kNotAuthenticated:
    case Status::kForbidden: return ErrorKind::kRejected;
    case Status::kOk:
    case Status::kPending:
    case Status::kBadRequest:
    case Status::kUnknownOpcode:
    case Status::kVersionMismatch: return ErrorKind::kProtocol;
  }
  return ErrorKind::kProtocol;
}

ClientError reply_error(std::string_view what, protocol::Status status,
                        std::string_view server_message) {
  std::string message = std::string(what) + ": " + std::string(explain(status));
  if (!server_message.empty()) message += " (server says: " + std::string(server_message) + ")";
  return ClientError(error_kind_of(status), message, status);
}

}  // namespace mrd::client
