// The dispatcher: the jobs the scheduler thread runs, and which task goes to which worker.
//
// Life of a job here: admitted (planned, paid for, split into chunks), its map tasks handed to
// idle workers, their outputs grouped by partition, its reduce tasks handed out the same way, the
// result assembled and encoded, then given to the finish callback. Tasks of all running jobs take
// turns, tenants first and then their jobs (tenant_turns.hpp), so that a small job is not stuck
// behind a big one, nor one tenant's job behind another's thousand. A task whose worker dies, at
// any moment, runs again up to kMaxTaskAttempts times; one past its deadline has its worker
// killed and counts as an attempt too. A job that cannot get the memory it needs fails with
// JOB_OUT_OF_MEMORY; the dispatcher itself never fails because of one job.
//
// Only the scheduler thread touches it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/messages.hpp"
#include "server/early_start.hpp"
#include "server/job_planner.hpp"
#include "server/job_ticket.hpp"
#include "server/latency_histogram.hpp"
#include "server/memory_budget.hpp"
#include "server/pool/task_pool.hpp"
#include "server/submitted_input.hpp"
#include "server/tenant_turns.hpp"

namespace mrd::engine {
class JobKind;
}

namespace mrd::server {

/// How many times a task may meet a dying worker before its job fails.
inline constexpr int kMaxTaskAttempts = 3;

/// Most chunks one map task runs together, when its job runs alone (Dispatcher::dispatch).
inline constexpr std::size_t kMaxChunksPerTask = 4;

/// Most tiny jobs' tasks sent to one worker in one message (kBatch), and the most input bytes
/// such a job may have. Eight keep both workers' batches short when a crowd of tiny jobs waits.
inline constexpr std::size_t kMostTasksPerBatch = 8;
inline constexpr std::size_t kMostBatchedInputBytes = 16 << 10;

/// Results whose parts come to this many bytes or more are assembled elsewhere
/// (DispatcherConfig::assemble_elsewhere): below it the merge costs less than the hop.
inline constexpr std::uint64_t kAssembleElsewhereBytes = 64 << 10;

/// A job handed to the dispatcher, waiting to be admitted.
struct Submission {
  std::shared_ptr<JobTicket> ticket;
  std::unique_ptr<SubmittedInput> input;
  MemoryCharge input_charge;  ///< pays for `input` until the job no longer holds it
  /// The input as it arrived, if the job's maps started early (early_start.hpp).
  std::shared_ptr<ArrivingInput> arriving{};
};

struct DispatcherConfig {
  PlanLimits limits;
  std::uint32_t task_timeout_ms = 300000;  ///< for jobs that set none
  std::uint32_t memory_limit_mib = 4096;   ///< for jobs that set none; 0 = unlimited
  MemoryBudget* budget = nullptr;          ///< pays for chunks and task messages; may be null
  /// Runs a big result's assembly elsewhere (a BackgroundThread: background_thread.hpp), which then
  /// reports the job's outcome itself; null: every result is assembled in place, on the caller's
  /// thread.
  std::function<void(std::function<void()>)> assemble_elsewhere;
  /// Where busy workers, tasks done and task durations are published for STATS; may be null.
  PoolActivity* activity = nullptr;
  /// Tasks carry their input bytes and answer with their output, with no memory file sent along:
  /// for a pool whose workers are on other machines (cluster/cluster_pool.hpp).
  bool carry_bytes = false;
  /// How long other jobs count as about after the last was seen: until then a big job's map
  /// tasks take one chunk each, and an upload's early maps leave a worker free.
  std::chrono::milliseconds quiet_before_joining{100};
};

class Dispatcher {
 public:
  using Clock = std::chrono::steady_clock;
  using FinishCallback = std::function<void(JobOutcome)>;

  Dispatcher(DispatcherConfig config, TaskPool& pool, FinishCallback on_finish);
  ~Dispatcher();

  /// Queues a job for admission; it is admitted as soon as its memory fits in the budget. A job
  /// whose maps started early goes on from them.
  void submit(Submission submission);

  /// Starts the maps of a SUBMIT still arriving (early_start.hpp), under its placeholder ticket:
  /// chunks are cut as their bytes arrive. Nothing starts if its working memory does not fit now.
  void start_early(std::shared_ptr<ArrivingInput> input);

  /// Drops every job whose ticket was cancelled; kills the workers running their tasks.
  void drop_cancelled();

  /// Admits what fits and hands tasks to every idle worker.
  void dispatch();

  /// Takes in what the pool reported.
  void handle(std::vector<PoolEvent> events);

  /// Kills the workers whose task is past its deadline (the task runs again or its job fails).
  void enforce_deadlines();

  /// The earliest task deadline, if a task is running.
  std::optional<Clock::time_point> next_deadline() const;

  /// True while a job runs or waits to.
  bool busy() const { return !jobs_.empty() || !waiting_.empty(); }

 private:
  struct RunningJob;
  struct InFlight;
  /// A task taken from its job's line for a batch, and its encoded message.
  struct BatchedTask {
    std::shared_ptr<RunningJob> job;
    std::uint32_t index = 0;
    std::string body;
  };
  enum class Loss { kDied, kTimedOut };

  /// A new job running `layout`'s pair with its options, under `ticket`.
  std::shared_ptr<RunningJob> new_job(std::shared_ptr<JobTicket> ticket,
                                      const protocol::SubmitLayout& layout);
  /// Admits the oldest waiting jobs while their working memory fits.
  void admit_waiting();
  /// Plans, charges and splits one job; false if it must wait for memory.
  bool admit(Submission& submission);
  /// Admits a job whose maps started early, going on from them; false if there are none to go on
  /// from (the job is then admitted as any other).
  bool adopt(Submission& submission);
  /// Cuts the chunks whose bytes arrived for every job whose input is still arriving.
  void cut_arrived();
  /// Cuts `job`'s input up to `arrived` body bytes and queues the new chunks' map tasks.
  void cut(const std::shared_ptr<RunningJob>& job, std::uint64_t arrived);
  /// Kills the workers running tasks of dropped jobs (they are replaced).
  void stop_dropped_tasks();
  void start_next_task(unsigned slot);
  /// The message of task `index` of the job's phase; a map task may run `count` chunks.
  std::string encode_task(const RunningJob& job, std::uint32_t index, std::uint32_t count) const;
  /// The job's input is no longer needed: its segment goes (unmapped, its memory file closed).
  void release_input(RunningJob& job);
  /// Whether `job`'s task may go in a batch: a tiny job's only task, on its first attempt.
  bool batchable(const RunningJob& job) const;
  /// Adds to `batch` the tasks of the jobs whose turns come next, while they are batchable.
  void gather_batch(std::vector<BatchedTask>& batch);
  /// Sends `batch` to the slot's worker as one kBatch message.
  void send_batch(unsigned slot, std::vector<BatchedTask> batch);
  /// Notes that the slot's worker now runs the job's task `index` (of `count` chunks), sent at
  /// `now`, to be answered by `deadline`.
  void handed_over(unsigned slot, const std::shared_ptr<RunningJob>& job, std::uint32_t index,
                   std::uint32_t count, Clock::time_point deadline, Clock::time_point now);
  void on_answer(unsigned slot, TaskMessage answer, MemoryCharge charge);
  /// What one task's answer means for its job.
  void settle(InFlight task, TaskMessage answer, MemoryCharge charge);
  void on_task_lost(unsigned slot, Loss loss, const std::string& how);
  /// A task whose worker died or ran past its deadline: it runs again, or its job fails.
  void lose(InFlight task, Loss loss, const std::string& how);
  void on_over_budget(unsigned slot, const std::string& what);
  void on_phase_complete(RunningJob& job);
  void requeue(const std::shared_ptr<RunningJob>& job, std::uint32_t index, std::uint32_t count);
  void finish(RunningJob& job, protocol::Status status, std::string body,
              std::shared_ptr<const ResultSegment> segment = {});
  void finish_out_of_memory(RunningJob& job, const std::string& what);
  /// Hands the parts of `job`'s result to config_.assemble_elsewhere, and forgets the job.
  void assemble_elsewhere(RunningJob& job, std::vector<std::string> parts);
  /// Publishes how many workers run a task (config_.activity).
  void publish_busy_workers();

  DispatcherConfig config_;
  TaskPool& pool_;
  FinishCallback on_finish_;
  std::deque<Submission> waiting_;  ///< submitted, not admitted yet (in order)
  /// Per tenant, when it last had a job admitted (a count of admissions): whose turn is next.
  std::unordered_map<std::string, std::uint64_t> last_admitted_;
  std::uint64_t admissions_ = 0;
  /// Running jobs, by ticket (a job whose input is still arriving has a placeholder, without id).
  std::unordered_map<const JobTicket*, std::shared_ptr<RunningJob>> jobs_;
  std::vector<std::shared_ptr<RunningJob>> arriving_;  ///< jobs whose input is still arriving
  bool early_cancelled_ = false;  ///< a job cancelled before admission had started early maps
  /// Jobs with a task to send, in turn order: tenants take turns, then their jobs.
  TenantTurns<std::shared_ptr<RunningJob>> ready_;
  /// The same for jobs whose input is still arriving. Their maps only fill workers that no job of
  /// ready_ wants: a SUBMIT not acknowledged yet yields to every job that is.
  TenantTurns<std::shared_ptr<RunningJob>> ready_arriving_;
  /// Whether a job whose input is still arriving may have one more task started now.
  bool may_start_arriving() const;
  /// The line a job with a task to send waits in.
  TenantTurns<std::shared_ptr<RunningJob>>& line_of(const RunningJob& job);
  /// Per pool slot: its task, or a batch's tasks; empty while its worker is idle.
  std::vector<std::vector<InFlight>> in_flight_;
  Clock::time_point last_crowded_{};  ///< when more than one job was last running or waiting
  bool others_recently_ = false;      ///< last_crowded_ was less than quiet_before_joining ago
};

}  // namespace mrd::server
