// The scheduler: one thread that runs every job as chunked MapReduce on a pool of worker processes.
//
// Three parts, each in its own file: the pool (server/pool/worker_pool.hpp) starts, watches and
// replaces the worker processes and moves task messages without blocking; the planner
// (job_planner.hpp) decides how a job is cut; the dispatcher (dispatcher.hpp) runs the jobs:
// fair turns, retries, deadlines, results. This file is the thread that drives them: it takes
// jobs and cancels from the network thread and waits on the pool. A big result is assembled on
// a thread of its own (background_thread.hpp), so that this one never stops handing out tasks for
// long.
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
#include "server/cluster/cluster_pool.hpp"
#include "server/cluster/task_runner.hpp"
#include "server/dispatcher.hpp"
#include "server/job_planner.hpp"
#include "server/job_ticket.hpp"
#include "server/latency_histogram.hpp"
#include "server/memory_budget.hpp"
#include "server/pool/worker_pool.hpp"

namespace mrd::server {

/// Most reduce partitions a job may ask for.
inline constexpr std::uint32_t kMaxPartitions = PlanLimits{}.max_partitions;

struct SchedulerConfig {
  std::string worker_executable;           ///< this binary, started with --worker-fd
  std::vector<std::string> plugins;        ///< plugin files the workers load too
  unsigned workers = 2;                    ///< worker processes
  std::uint32_t task_timeout_ms = 300000;  ///< for jobs that set none
  std::uint32_t memory_limit_mib = 4096;   ///< for jobs that set none; 0 = unlimited
  MemoryBudget* budget = nullptr;          ///< charged for tasks and outputs in flight; may be null
  std::vector<std::string> worker_environment;  ///< "NAME=value" added for every worker
  /// On a node of a cluster (mrd --redis): the pool the dispatcher hands its tasks to, whose
  /// workers are the whole cluster's, while the workers here run the tasks run_for_cluster()
  /// brings. Null on a single server.
  std::shared_ptr<cluster::ClusterPool> cluster_pool;
  /// What became of each task run_for_cluster() brought (scheduler thread).
  cluster::TaskRunner::Ended on_cluster_task_end;
};

class Scheduler {
 public:
  using FinishCallback = std::function<void(JobOutcome)>;

  /// `on_finish` is called once per job that was not cancelled, on the scheduler thread (or, for
  /// a big result, on the thread that assembles it: background_thread.hpp).
  Scheduler(SchedulerConfig config, FinishCallback on_finish);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// Starts the worker processes and the thread. Throws if a worker cannot start.
  void start();

  /// Stops the thread and the workers; jobs not finished are abandoned. Idempotent.
  void stop();

  /// Queues a job (any thread). Its ticket's progress moves as it runs. `input_charge` pays for
  /// the input and is released once the job no longer holds it.
  /// `arriving`: the input as it arrived, if its maps started early (early_start.hpp).
  void enqueue(std::shared_ptr<JobTicket> ticket, std::unique_ptr<SubmittedInput> input,
               MemoryCharge input_charge = {}, std::shared_ptr<ArrivingInput> arriving = {});

  /// Starts the maps of a SUBMIT still arriving (any thread; early_start.hpp).
  void start_early(std::shared_ptr<ArrivingInput> input);
  /// More of an arriving input is in (any thread).
  void wake_for_arrival() { wake(); }

  /// Tells the scheduler that some ticket was cancelled (any thread).
  void notify_cancelled();

  /// Runs a task taken from the cluster on a worker here (any thread; cluster mode only).
  void run_for_cluster(cluster::TakenTask task);
  /// Stops such a task, waiting or running (any thread).
  void stop_for_cluster(std::uint64_t id);

  /// How this scheduler cuts jobs (for checks made before a job is accepted).
  PlanLimits plan_limits() const { return PlanLimits{.workers = config_.workers}; }

  std::uint64_t worker_restarts() const { return worker_restarts_.load(); }
  /// Busy workers, tasks done and their durations, as the scheduler thread publishes them.
  const PoolActivity& activity() const { return activity_; }
  unsigned workers() const { return config_.workers; }

 private:
  void wake();
  /// Adds to one of the queues the thread takes (under mutex_), and wakes the thread unless a
  /// wake is already on its way: under a flood of SUBMITs, one wake carries many.
  template <class Add>
  void add_and_wake(Add add);
  void run(WorkerPool& pool, Dispatcher& dispatcher);

  SchedulerConfig config_;
  FinishCallback on_finish_;
  std::thread thread_;
  int wake_fd_ = -1;  ///< eventfd: the thread's poll() wakes when it is written

  std::mutex mutex_;                                      ///< guards the six fields below
  std::deque<Submission> incoming_;                       ///< enqueued, not yet taken by the thread
  std::vector<std::shared_ptr<ArrivingInput>> arriving_;  ///< started early, not yet taken
  std::vector<cluster::TakenTask> for_cluster_;           ///< brought, not yet taken
  std::vector<std::uint64_t> stops_for_cluster_;          ///< to stop, not yet taken
  bool stopping_ = false;
  /// A wake was written since the thread last took the queues above: what is added to them
  /// meanwhile is taken with it, without writing (and waking) again.
  bool wake_pending_ = false;

  std::atomic<bool> cancels_pending_{false};
  std::atomic<std::uint64_t> worker_restarts_{0};
  PoolActivity activity_;
};

}  // namespace mrd::server
