// The scheduler: one thread that runs every job as chunked MapReduce on a pool of worker processes.
//
// Life of a job here: admitted (validated and split into chunks), map tasks handed to idle workers,
// their outputs grouped by partition, reduce tasks handed out the same way, the result assembled
// and encoded, then given to the finish callback. Tasks of all running jobs take turns (round
// robin), so a small job is not stuck behind a big one. A worker that dies is replaced and its task
// runs again, up to kMaxTaskAttempts times.
//
// The scheduler never touches a socket: the owner's finish callback hands the outcome over to
// the network thread (by posting to its io_context).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/messages.hpp"
#include "server/job_ticket.hpp"
#include "server/memory_budget.hpp"

namespace mrd::server {

/// How many times a task may meet a dying worker before its job fails.
inline constexpr int kMaxTaskAttempts = 3;

/// Most map tasks per job: a smaller chunk size is enlarged to respect it.
inline constexpr std::uint64_t kMaxMapTasks = 65536;

/// Most reduce partitions a job may ask for.
inline constexpr std::uint32_t kMaxPartitions = 1024;

/// How a job ended, as the scheduler reports it.
struct JobOutcome {
  std::uint32_t id = 0;
  /// kOk for a result; otherwise the failure as FETCH reports it: kJobFailed (the job's own
  /// error), kJobCrashed, kJobTimedOut or kJobOutOfMemory.
  protocol::Status status = protocol::Status::kOk;
  std::string body;  ///< kOk: the encoded JobResult; otherwise the reason
};

struct SchedulerConfig {
  std::string worker_executable;           ///< this binary, started with --worker-fd
  std::vector<std::string> plugins;        ///< plugin files the workers load too
  unsigned workers = 2;                    ///< worker processes
  std::uint32_t task_timeout_ms = 300000;  ///< for jobs that set none
  std::uint32_t memory_limit_mib = 4096;   ///< for jobs that set none; 0 = unlimited
  MemoryBudget* budget = nullptr;          ///< charged for tasks and outputs in flight; may be null
};

class Scheduler {
 public:
  using FinishCallback = std::function<void(JobOutcome)>;

  /// `on_finish` is called on the scheduler thread once per job that was not cancelled.
  Scheduler(SchedulerConfig config, FinishCallback on_finish);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// Starts the worker processes and the thread. Throws if a worker cannot start.
  void start();

  /// Stops the thread and the workers; jobs not finished are abandoned. Idempotent.
  void stop();

  /// Queues a job (any thread). Its ticket's progress moves as it runs. `input_charge` pays for
  /// the request's input and is released once the job no longer holds it.
  void enqueue(std::shared_ptr<JobTicket> ticket, protocol::SubmitRequest request,
               MemoryCharge input_charge = {});

  /// Tells the scheduler that some ticket was cancelled (any thread).
  void notify_cancelled();

  std::uint64_t worker_restarts() const { return worker_restarts_.load(); }
  unsigned workers() const { return config_.workers; }

 private:
  struct Submission {
    std::shared_ptr<JobTicket> ticket;
    protocol::SubmitRequest request;
    MemoryCharge input_charge;
  };

  void wake();

  SchedulerConfig config_;
  FinishCallback on_finish_;
  std::thread thread_;
  int wake_fd_ = -1;  ///< eventfd: poll() in the thread wakes when it is written

  std::mutex mutex_;                 ///< guards the two fields below
  std::deque<Submission> incoming_;  ///< enqueued, not yet admitted by the thread
  bool stopping_ = false;

  std::atomic<bool> cancels_pending_{false};
  std::atomic<std::uint64_t> worker_restarts_{0};
};

}  // namespace mrd::server
