#include "protocol/wire.hpp"

namespace mrd::protocol {

std::string_view to_string(Opcode opcode) {
  switch (opcode) {
    case Opcode::kSubmit: return "submit";
    case Opcode::kFetch: return "fetch";
    case Opcode::kStatus: return "status";
    case Opcode::kCancel: return "cancel";
    case Opcode::kList: return "list";
    case Opcode::kStats: return "stats";
    case Opcode::kHello: return "hello";
    case Opcode::kAuth: return "auth";
  }
  return "unknown-opcode";
}

std::string_view to_string(Status status) {
  switch (status) {
    case Status::kOk: return "ok";
    case Status::kPending: return "pending";
    case Status::kUnknownJob: return "unknown-job";
    case Status::kJobFailed: return "job-failed";
    case Status::kJobCancelled: return "job-cancelled";
    case Status::kJobExpired: return "job-expired";
    case Status::kQueueFull: return "queue-full";
    case Status::kBadRequest: return "bad-request";
    case Status::kUnknownOpcode: return "unknown-opcode";
    case Status::kFrameTooLarge: return "frame-too-large";
    case Status::kVersionMismatch: return "version-mismatch";
    case Status::kBadJob: return "bad-job";
    case Status::kServerBusy: return "server-busy";
    case Status::kShuttingDown: return "shutting-down";
    case Status::kJobCrashed: return "job-crashed";
    case Status::kJobTimedOut: return "job-timed-out";
    case Status::kJobOutOfMemory: return "job-out-of-memory";
    case Status::kServerError: return "server-error";
    case Status::kAuthFailed: return "auth-failed";
    case Status::kNotAuthenticated: return "not-authenticated";
    case Status::kForbidden: return "forbidden";
    case Status::kUnavailable: return "unavailable";
  }
  return "unknown-status";
}

std::string_view to_string(JobState state) {
  switch (state) {
    case JobState::kQueued: return "queued";
    case JobState::kMapping: return "mapping";
    case JobState::kReducing: return "reducing";
    case JobState::kDone: return "done";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown-state";
}

bool is_known_opcode(std::uint8_t byte) {
  return byte <= static_cast<std::uint8_t>(Opcode::kAuth);
}

bool is_known_status(std::uint8_t byte) {
  return byte <= static_cast<std::uint8_t>(Status::kUnavailable);
}

bool is_job_failure(Status status) {
  return status == Status::kJobFailed || status == Status::kJobCrashed ||
         status == Status::kJobTimedOut || status == Status::kJobOutOfMemory;
}

}  // namespace mrd::protocol
