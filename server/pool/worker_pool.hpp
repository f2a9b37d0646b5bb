// WorkerPool: the worker processes, one per slot, and one poll() over all of them.
//
// The pool knows processes and messages, not jobs: it hands a task message to an idle worker,
// reports each answer as it completes and each worker it lost, and replaces lost workers. No
// call blocks on a worker: messages are written and read in pieces as the sockets allow
// (worker_channel.hpp), so a stopped or slow worker holds up its own task only.
//
// A replacement that cannot start (out of file descriptors, out of memory) is retried with
// back-off; meanwhile the slot is empty and the other workers go on. Only the first start is
// all or nothing, so that a missing executable is a start-up error.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/memory_budget.hpp"
#include "server/pool/task_pool.hpp"
#include "server/pool/worker_process.hpp"

namespace mrd::server {

struct PoolConfig {
  std::string executable;                ///< this binary, started with --worker-fd
  std::vector<std::string> plugins;      ///< plugin files the workers load too
  std::vector<std::string> environment;  ///< "NAME=value" added to each worker's environment
  unsigned workers = 2;
  MemoryBudget* budget = nullptr;  ///< pays for answers being received; may be null
};

class WorkerPool final : public TaskPool {
 public:
  using Clock = std::chrono::steady_clock;

  /// Starts every worker. Throws std::runtime_error if one cannot start.
  explicit WorkerPool(PoolConfig config);

  unsigned size() const override { return static_cast<unsigned>(slots_.size()); }
  bool idle(unsigned slot) const override { return slots_[slot].process && !slots_[slot].busy; }
  /// The answer (or the worker's loss) comes from wait().
  void send(unsigned slot, std::uint32_t job, TaskMessageType type, std::string body,
            MemoryCharge charge, int attached, int result) override;
  std::string replace(unsigned slot) override;
  bool takes_batches() const override { return true; }

  /// Waits until a worker answers or is lost, `wake_fd` (an eventfd) is written, or `until`
  /// passes (forever if empty), and returns what happened.
  std::vector<PoolEvent> wait(int wake_fd, std::optional<Clock::time_point> until);

  /// Worker processes started to replace others since the pool started.
  /// Any thread may ask (a big result's outcome is reported from the thread that assembles it).
  std::uint64_t restarts() const { return restarts_.load(); }

 private:
  struct Slot {
    std::unique_ptr<WorkerProcess> process;  ///< null while a replacement is pending
    bool busy = false;                       ///< a task was sent and is not answered yet
    Clock::time_point retry_at{};            ///< when to try starting a replacement again
    std::chrono::milliseconds backoff{0};    ///< the delay before the next retry after that
  };

  /// Starts the slot's process; on failure schedules a retry with back-off.
  void start(unsigned slot);
  /// Reaps the slot's process and starts a replacement; returns how the old one ended.
  std::string lose(unsigned slot);
  /// Starts the replacements whose retry time has come; true if one started.
  bool retry_pending_starts();

  PoolConfig config_;
  std::vector<Slot> slots_;
  std::atomic<std::uint64_t> restarts_{0};
};

}  // namespace mrd::server
