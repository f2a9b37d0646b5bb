// JobTicket: the part of a job that both threads touch.
//
// The network thread creates it, reads its progress for STATUS and FETCH and raises `cancelled`;
// the scheduler thread advances its progress. What either thread changes is atomic, and the rest
// (id, tenant, facts) is set before the ticket is shared and never changes, so neither thread ever
// waits for the other. A job's final state and result do not live here: the scheduler posts them
// to the network thread, which owns the job table (job_store.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "protocol/messages.hpp"

namespace mrd::server {

class ResultSegment;

/// Milliseconds since the Unix epoch, as STATUS's details give times.
inline std::uint64_t unix_ms_now() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

/// What a job is, fixed when it is accepted (STATUS's details). Empty and 0 where unknown: a
/// finished job restored from the data directory keeps its result, not these.
struct JobFacts {
  std::string mapper;
  std::string reducer;
  std::uint64_t input_bytes = 0;   ///< the SUBMIT body's length
  std::uint64_t submitted_ms = 0;  ///< Unix time it was accepted; 0 for a job from before a restart
  /// The same moment on the steady clock, for its duration; unset for a job from before a restart.
  std::optional<std::chrono::steady_clock::time_point> accepted_at{};
};

struct JobTicket {
  explicit JobTicket(std::uint32_t job_id, std::string owner = {}, JobFacts what = {})
      : id(job_id), tenant(std::move(owner)), facts(std::move(what)) {}

  const std::uint32_t id;
  const std::string tenant;  ///< who submitted it ("" without --auth-file); it sees and runs it
  const JobFacts facts;
  /// Unix times in ms, 0 until they happen: the first task handed to a worker (scheduler
  /// thread), the job done, failed or cancelled (network thread).
  std::atomic<std::uint64_t> started_ms{0};
  std::atomic<std::uint64_t> finished_ms{0};
  std::atomic<protocol::JobState> state{protocol::JobState::kQueued};
  std::atomic<std::uint32_t> map_done{0};
  std::atomic<std::uint32_t> map_total{0};
  std::atomic<std::uint32_t> reduce_done{0};
  std::atomic<std::uint32_t> reduce_total{0};
  std::atomic<bool> cancelled{false};  ///< set by the network thread; the scheduler drops the job

  protocol::JobProgress progress() const {
    return {id,
            state.load(),
            map_done.load(),
            map_total.load(),
            reduce_done.load(),
            reduce_total.load()};
  }
};

/// How a job ended, as the scheduler reports it to the network thread.
struct JobOutcome {
  std::uint32_t id = 0;
  /// kOk for a result; otherwise the failure as FETCH reports it: kJobFailed (the job's own
  /// error), kJobCrashed, kJobTimedOut or kJobOutOfMemory.
  protocol::Status status = protocol::Status::kOk;
  std::string body;  ///< kOk: the encoded JobResult; otherwise the reason
  /// kOk of a result its workers wrote in shared memory (a matrix product): the finished
  /// segment holding the encoded JobResult, and `body` is empty.
  std::shared_ptr<const ResultSegment> segment{};
};

}  // namespace mrd::server
