// JobTicket: the part of a job that both threads touch.
//
// The network thread creates it, reads its progress for STATUS and FETCH and raises `cancelled`;
// the scheduler thread advances its progress. Everything in it is atomic, so neither thread ever
// waits for the other. A job's final state and result do not live here: the scheduler posts them
// to the network thread, which owns the job table (job_store.hpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "protocol/messages.hpp"

namespace mrd::server {

class ResultSegment;

struct JobTicket {
  explicit JobTicket(std::uint32_t job_id, std::string owner = {})
      : id(job_id), tenant(std::move(owner)) {}

  const std::uint32_t id;
  const std::string tenant;  ///< who submitted it ("" without --auth-file); it sees and runs it
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
