// The numbers that appear on the wire: protocol version, opcodes, reply statuses, job states.
//
// docs/protocol.md is the specification; every value here is listed there. Changing any of them,
// or any byte layout, means bumping kProtocolVersion.
#pragma once

#include <cstdint>
#include <string_view>

namespace mrd::protocol {

/// Version of the wire format this code speaks, exchanged by HELLO. Version 2 added AUTH, its
/// statuses (AUTH_FAILED, NOT_AUTHENTICATED, FORBIDDEN) and the flags of HELLO's reply; version 3
/// LIST's options (a LIST that asks for each job's tenant); version 4 STATUS's and STATS's
/// options (a job's details; the pool's and the latencies'). A server answers an older client's
/// HELLO in that client's layout, and a request without options as version 1 did, so older
/// clients go on working.
inline constexpr std::uint16_t kProtocolVersion = 4;
/// The oldest version a server still answers.
inline constexpr std::uint16_t kOldestProtocolVersion = 1;

/// Default TCP port.
inline constexpr std::uint16_t kDefaultPort = 1936;

/// First byte of every request.
enum class Opcode : std::uint8_t {
  kSubmit = 0,  ///< queue a job; reply: its id
  kFetch = 1,   ///< a job's result, or why there is none yet
  kStatus = 2,  ///< a job's state and progress
  kCancel = 3,  ///< stop a job and forget it
  kList = 4,    ///< every job the server remembers, with its state
  kStats = 5,   ///< server counters
  kHello = 6,   ///< exchange protocol versions
  kAuth = 7,    ///< present a token (version 2)
};

/// First byte of every reply.
enum class Status : std::uint8_t {
  kOk = 0,                 ///< the request succeeded; the body is its answer
  kPending = 1,            ///< FETCH of a job not finished yet; the body is its progress
  kUnknownJob = 2,         ///< no such job id was ever handed out
  kJobFailed = 3,          ///< the job's own code or input refused it; the body says why
  kJobCancelled = 4,       ///< the job was cancelled
  kJobExpired = 5,         ///< the job finished but its result was evicted
  kQueueFull = 6,          ///< too many unfinished jobs; try again later
  kBadRequest = 7,         ///< the body did not decode; the connection stays usable
  kUnknownOpcode = 8,      ///< the opcode is not one of the above
  kFrameTooLarge = 9,      ///< the declared body length exceeds the limit; the server closes
  kVersionMismatch = 10,   ///< HELLO named a protocol version this server does not speak
  kBadJob = 11,            ///< SUBMIT named an unknown or incompatible mapper/reducer/input
  kServerBusy = 12,        ///< too many connections; the server closes
  kShuttingDown = 13,      ///< the server is stopping and accepts no new jobs
  kJobCrashed = 14,        ///< a task's worker process died on every attempt; the body says how
  kJobTimedOut = 15,       ///< a task ran past its deadline on every attempt
  kJobOutOfMemory = 16,    ///< a task ran out of memory in its worker
  kServerError = 17,       ///< the server could not do what was asked (its database failed)
  kAuthFailed = 18,        ///< AUTH with a token the server does not know
  kNotAuthenticated = 19,  ///< the server requires AUTH before this request
  kForbidden = 20,         ///< the token's role may not make this request (STATS needs admin)
  kUnavailable = 21,       ///< cluster mode: the shared store (Redis) cannot be reached; nothing
                           ///< was done; try again, or another node
};

/// What an authenticated connection may do (AUTH's reply says which).
enum class Role : std::uint8_t {
  kUser = 0,   ///< its own jobs
  kAdmin = 1,  ///< every job, and STATS
};

/// Bits of HELLO's reply `flags` (version 2).
inline constexpr std::uint8_t kHelloAuthRequired = 1;  ///< requests need AUTH first

/// Bits of LIST's `options` (version 3).
inline constexpr std::uint8_t kListWithTenants = 1;  ///< each job with the tenant that submitted it

/// Bits of STATUS's `options` (version 4).
inline constexpr std::uint8_t kStatusWithDetails = 1;  ///< the job's names, sizes and times

/// Bits of STATS's `options` (version 4).
inline constexpr std::uint8_t kStatsWithDetails = 1;  ///< busy workers, task and job latencies

/// Where a job is in its life.
enum class JobState : std::uint8_t {
  kQueued = 0,     ///< accepted, waiting for the scheduler
  kMapping = 1,    ///< map tasks running
  kReducing = 2,   ///< reduce tasks running
  kDone = 3,       ///< result available
  kFailed = 4,     ///< failed; a message says why
  kCancelled = 5,  ///< cancelled by a client or by shutdown
};

/// Lower-case names used in logs, the CLI and the docs ("submit", "pending", "mapping", ...).
std::string_view to_string(Opcode opcode);
std::string_view to_string(Status status);
std::string_view to_string(JobState state);

/// True for the opcodes this version understands.
bool is_known_opcode(std::uint8_t byte);

/// True for the statuses this version defines.
bool is_known_status(std::uint8_t byte);

/// True for the statuses FETCH gives a failed job: its own error, a crash, a timeout, no memory.
bool is_job_failure(Status status);

/// True once a job can change no more (done, failed or cancelled).
inline bool is_finished(JobState state) {
  return state == JobState::kDone || state == JobState::kFailed || state == JobState::kCancelled;
}

}  // namespace mrd::protocol
