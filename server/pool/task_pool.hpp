// TaskPool: what the dispatcher needs of a pool of workers.
//
// The dispatcher decides which task goes to which slot and what becomes of each answer; the pool
// moves the messages. WorkerPool is the real one (worker processes and one poll() over them);
// tests/dispatcher_test.cpp drives the dispatcher with a fake one, so that fair turns, retries,
// deadlines and memory admission are tested one event at a time, without processes or timing.
#pragma once

#include <cstdint>
#include <string>

#include "server/memory_budget.hpp"
#include "server/pool/task_message.hpp"

namespace mrd::server {

/// Something that happened to one slot.
struct PoolEvent {
  enum class Kind {
    kAnswer,      ///< the slot's worker answered its task: `answer`, paid for by `charge`
    kLost,        ///< the worker died, or broke the framing; `how` says how it ended
    kOverBudget,  ///< the answer did not fit in the memory budget; the worker was replaced
    /// The slot's task started to run: for a pool whose tasks may wait before a worker takes
    /// them (cluster/cluster_pool.hpp), the task's deadline runs from now.
    kStarted,
  };
  Kind kind = Kind::kAnswer;
  unsigned slot = 0;
  TaskMessage answer;
  MemoryCharge charge;
  std::string how;
};

class TaskPool {
 public:
  virtual ~TaskPool() = default;

  /// Slots, busy or not; a slot's index never changes.
  virtual unsigned size() const = 0;

  /// True if the slot has a live worker with no task.
  virtual bool idle(unsigned slot) const = 0;

  /// Hands a task of job `job` to an idle worker; its answer, or the worker's loss, comes as a
  /// PoolEvent. A copy of `attached` (if >= 0: the memory file of the task's input), then one of
  /// `result` (if >= 0: the memory file its output goes into) go with it. Throws
  /// std::system_error, the worker still idle, if a copy cannot be made.
  virtual void send(unsigned slot, std::uint32_t job, TaskMessageType type, std::string body,
                    MemoryCharge charge, int attached, int result) = 0;

  /// True if a slot's worker may be sent a kBatch (several tasks whose bytes travel in the
  /// message), answered with one kBatchDone.
  virtual bool takes_batches() const { return false; }

  /// Kills the slot's worker, whatever it is doing, and starts a replacement; says how the old
  /// one ended. Its task, if any, is forgotten: no event will come for it.
  virtual std::string replace(unsigned slot) = 0;
};

}  // namespace mrd::server
