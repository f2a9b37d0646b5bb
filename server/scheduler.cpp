#include "server/scheduler.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "protocol/codec.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/job_kind.hpp"
#include "server/log.hpp"
#include "server/pool/worker_process.hpp"

namespace mrd::server {
namespace {

using protocol::JobState;

/// The chunk size for a job: the client's choice, or a few chunks per worker so that the pool
/// stays busy and a big job's tasks interleave with others'; never more than kMaxMapTasks chunks.
std::uint64_t choose_chunk_bytes(std::uint64_t requested, const protocol::JobInput& input,
                                 unsigned workers) {
  const std::uint64_t total = engine::input_bytes(input);
  std::uint64_t chunk = requested;
  if (chunk == 0 && std::holds_alternative<protocol::MatrixPair>(input)) {
    // Every chunk of a product carries all of B: one chunk per worker sends B the fewest times.
    chunk = std::max<std::uint64_t>((total + workers - 1) / workers, 1);
  } else if (chunk == 0) {
    // Small enough that a worker is free again within milliseconds for other jobs' tasks (a
    // 2 MiB map takes about 10 ms), large enough that per-task costs stay small.
    constexpr std::uint64_t kMinAuto = 64 << 10, kMaxAuto = 2 << 20;
    chunk = std::clamp<std::uint64_t>(total / (4ull * workers), kMinAuto, kMaxAuto);
  }
  const std::uint64_t floor_for_task_cap = (total + kMaxMapTasks - 1) / kMaxMapTasks;
  return std::max<std::uint64_t>({chunk, floor_for_task_cap, 1});
}

using Clock = std::chrono::steady_clock;

enum class Phase { kMap, kReduce };

/// A job the scheduler thread is running.
struct RunningJob {
  std::shared_ptr<JobTicket> ticket;
  const engine::JobKind* kind = nullptr;
  std::string mapper, reducer;
  std::uint32_t partitions = 1;
  std::chrono::milliseconds task_timeout{0};
  std::uint32_t memory_limit_mib = 0;
  Phase phase = Phase::kMap;
  std::vector<protocol::JobInput> chunks;             ///< map inputs, kept until the map phase ends
  std::vector<std::vector<std::string>> map_outputs;  ///< [chunk][partition]
  std::vector<std::string> reduced;                   ///< [partition]
  std::deque<std::uint32_t> todo;                     ///< task indexes of this phase not yet sent
  std::vector<int> attempts;                          ///< per task of this phase
  std::uint32_t outstanding = 0;                      ///< tasks sent, not yet answered
  bool dropped = false;                               ///< failed or cancelled: ignore answers
  /// One chunk and a reduce: its single task maps and reduces in one go (kMapReduce).
  bool fused = false;

  std::uint32_t id() const { return ticket->id; }
  std::uint32_t task_count() const {
    return static_cast<std::uint32_t>(phase == Phase::kMap ? chunks.size() : partitions);
  }
};

/// A task in a worker's hands.
struct InFlight {
  std::shared_ptr<RunningJob> job;
  Phase phase = Phase::kMap;
  std::uint32_t index = 0;
  Clock::time_point deadline;  ///< the worker is killed if the task is still running then
};

/// Why a worker is being replaced.
enum class Loss { kDied, kTimedOut, kCancelled };

/// One place in the pool: a process and what it is working on.
struct Slot {
  std::unique_ptr<WorkerProcess> process;
  std::optional<InFlight> task;
};

/// The state that only the scheduler thread touches.
class Loop {
 public:
  Loop(const SchedulerConfig& config, const Scheduler::FinishCallback& on_finish,
       std::atomic<std::uint64_t>& restarts)
      : config_(config), on_finish_(on_finish), restarts_(restarts) {
    for (unsigned i = 0; i < config.workers; ++i) {
      slots_.push_back(
          Slot{WorkerProcess::spawn(config.worker_executable, config.plugins), std::nullopt});
    }
  }

  void admit(std::shared_ptr<JobTicket> ticket, protocol::SubmitRequest request);
  void drop_cancelled();
  void dispatch();
  /// Waits for answers, a dead worker, or the wake fd; handles what arrived.
  void wait_and_collect(int wake_fd);

 private:
  void start_next_task(Slot& slot);
  std::string encode_task(const RunningJob& job, Phase phase, std::uint32_t index) const;
  void on_answer(Slot& slot, const TaskMessage& answer);
  void on_worker_lost(Slot& slot, Loss loss);
  void replace_worker(Slot& slot, Loss loss, std::string& how);
  int poll_timeout_ms() const;
  void on_phase_complete(RunningJob& job);
  void requeue(const std::shared_ptr<RunningJob>& job, std::uint32_t index);
  void finish(RunningJob& job, protocol::Status status, std::string body);

  const SchedulerConfig& config_;
  const Scheduler::FinishCallback& on_finish_;
  std::atomic<std::uint64_t>& restarts_;
  std::vector<Slot> slots_;
  std::unordered_map<std::uint32_t, std::shared_ptr<RunningJob>> jobs_;
  std::deque<std::shared_ptr<RunningJob>> ready_;  ///< jobs with a task to send, in turn order
};

void Loop::admit(std::shared_ptr<JobTicket> ticket, protocol::SubmitRequest request) {
  auto job = std::make_shared<RunningJob>();
  job->ticket = std::move(ticket);
  job->mapper = std::move(request.mapper);
  job->reducer = std::move(request.reducer);
  job->kind = engine::find_job_kind(job->mapper, job->reducer);
  if (job->ticket->cancelled) return;
  job->task_timeout = std::chrono::milliseconds(
      request.options.task_timeout_ms ? request.options.task_timeout_ms : config_.task_timeout_ms);
  // A job may lower its workers' memory limit, never raise it above the server's.
  job->memory_limit_mib = config_.memory_limit_mib;
  if (request.options.memory_limit_mib &&
      (config_.memory_limit_mib == 0 ||
       request.options.memory_limit_mib < config_.memory_limit_mib)) {
    job->memory_limit_mib = request.options.memory_limit_mib;
  }
  try {
    if (!job->kind) throw engine::JobError("no job '" + job->mapper + "' + '" + job->reducer + "'");
    job->kind->validate(request.input);
    const auto chunk =
        choose_chunk_bytes(request.options.chunk_bytes, request.input, config_.workers);
    job->chunks = job->kind->split(request.input, chunk);
  } catch (const std::exception& e) {
    finish(*job, protocol::Status::kJobFailed, e.what());
    return;
  }
  const auto chunks = static_cast<std::uint32_t>(job->chunks.size());
  job->partitions = request.options.partitions
                        ? request.options.partitions
                        : std::clamp<std::uint32_t>(std::min(chunks, config_.workers), 1, chunks);
  job->map_outputs.resize(chunks);
  job->attempts.assign(chunks, 0);
  for (std::uint32_t i = 0; i < chunks; ++i)
    job->todo.push_back(i);
  job->ticket->map_total = chunks;
  job->ticket->reduce_total = job->kind->has_reduce() ? job->partitions : 0;
  job->fused = chunks == 1 && job->kind->has_reduce();
  job->ticket->state = JobState::kMapping;
  log(Level::kDebug, "job ", job->id(), ": ", job->mapper, "+", job->reducer, ", ", chunks,
      " chunks, ", job->partitions, " partitions");
  jobs_.emplace(job->id(), job);
  ready_.push_back(std::move(job));
}

void Loop::drop_cancelled() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second->ticket->cancelled) {
      it->second->dropped = true;
      log(Level::kDebug, "job ", it->first, ": cancelled");
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  // Work already in a worker's hands stops too: the worker is killed and replaced, which is
  // quicker than letting a long task finish for nothing.
  for (auto& slot : slots_) {
    if (slot.task && slot.task->job->dropped) on_worker_lost(slot, Loss::kCancelled);
  }
}

void Loop::dispatch() {
  for (auto& slot : slots_) {
    if (!slot.task) start_next_task(slot);
  }
}

void Loop::start_next_task(Slot& slot) {
  while (!ready_.empty()) {
    auto job = std::move(ready_.front());
    ready_.pop_front();
    if (job->dropped || job->todo.empty()) continue;
    const auto index = job->todo.front();
    job->todo.pop_front();
    ++job->outstanding;
    if (!job->todo.empty()) ready_.push_back(job);  // its next task waits for its next turn
    const auto type = job->fused                  ? TaskMessageType::kMapReduce
                      : job->phase == Phase::kMap ? TaskMessageType::kMap
                                                  : TaskMessageType::kReduce;
    slot.task = InFlight{job, job->phase, index, Clock::now() + job->task_timeout};
    if (!slot.process->send(type, encode_task(*job, job->phase, index))) {
      // The worker died while idle. Replacing it is not the task's fault: no attempt is counted.
      --job->attempts[index];
      on_worker_lost(slot, Loss::kDied);
    }
    return;
  }
}

std::string Loop::encode_task(const RunningJob& job, Phase phase, std::uint32_t index) const {
  if (phase == Phase::kMap) {
    return encode_map_task(
        {job.mapper, job.reducer, job.partitions, job.memory_limit_mib, job.chunks[index]});
  }
  ReduceTask task{job.mapper, job.reducer, job.memory_limit_mib, {}};
  task.pieces.reserve(job.map_outputs.size());
  for (const auto& output : job.map_outputs)
    task.pieces.push_back(output[index]);
  return encode_reduce_task(task);
}

int Loop::poll_timeout_ms() const {
  std::optional<Clock::time_point> earliest;
  for (const auto& slot : slots_) {
    if (slot.task && (!earliest || slot.task->deadline < *earliest)) {
      earliest = slot.task->deadline;
    }
  }
  if (!earliest) return -1;  // nothing running: wait for the wake fd or a worker
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*earliest - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60000));
}

void Loop::wait_and_collect(int wake_fd) {
  std::vector<pollfd> fds{{wake_fd, POLLIN, 0}};
  // Idle workers are watched too: one that dies between tasks is replaced at once.
  for (const auto& slot : slots_)
    fds.push_back({slot.process->fd(), POLLIN, 0});
  if (poll(fds.data(), fds.size(), poll_timeout_ms()) < 0) {
    if (errno == EINTR) return;
    throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
  }
  if (fds[0].revents) {
    std::uint64_t count = 0;
    [[maybe_unused]] auto n = ::read(wake_fd, &count, sizeof count);
  }
  const auto now = Clock::now();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    auto& slot = slots_[i];
    if (!fds[i + 1].revents) {
      if (slot.task && slot.task->deadline <= now) on_worker_lost(slot, Loss::kTimedOut);
      continue;
    }
    const auto answer = slot.task ? slot.process->receive() : std::nullopt;
    if (answer) {
      on_answer(slot, *answer);
    } else {
      on_worker_lost(slot, Loss::kDied);
    }
  }
}

void Loop::on_answer(Slot& slot, const TaskMessage& answer) {
  auto task = std::move(*slot.task);
  slot.task.reset();
  auto& job = *task.job;
  --job.outstanding;
  if (job.dropped) return;
  if (answer.type == TaskMessageType::kError) {
    finish(job, protocol::Status::kJobFailed, answer.body);
    return;
  }
  if (answer.type == TaskMessageType::kOutOfMemory) {
    // Not retried: the same task would need the same memory again.
    finish(job, protocol::Status::kJobOutOfMemory,
           std::string(task.phase == Phase::kMap ? "map" : "reduce") + " task " +
               std::to_string(task.index + 1) + " of " + std::to_string(job.task_count()) +
               " ran out of memory (limit " + std::to_string(job.memory_limit_mib) + " MiB)");
    return;
  }
  try {
    if (job.fused) {
      // The single task answered with every partition already reduced.
      job.reduced = decode_pieces(answer.body);
      if (job.reduced.size() != job.partitions) {
        throw std::runtime_error("a map-reduce task returned the wrong number of partitions");
      }
      job.ticket->map_done = 1;
      job.ticket->reduce_done = job.partitions;
      job.phase = Phase::kReduce;
    } else if (task.phase == Phase::kMap) {
      job.map_outputs[task.index] = decode_pieces(answer.body);
      if (job.map_outputs[task.index].size() != job.partitions && job.kind->has_reduce()) {
        throw std::runtime_error("map task returned the wrong number of partitions");
      }
      ++job.ticket->map_done;
    } else {
      job.reduced[task.index] = answer.body;
      ++job.ticket->reduce_done;
    }
  } catch (const std::exception& e) {
    finish(job, protocol::Status::kJobFailed, std::string("worker answered garbage: ") + e.what());
    return;
  }
  if (job.todo.empty() && job.outstanding == 0) on_phase_complete(job);
}

void Loop::replace_worker(Slot& slot, Loss loss, std::string& how) {
  const auto pid = slot.process->pid();
  how = slot.process->reap();  // kills it first if it still runs
  ++restarts_;
  const char* why = loss == Loss::kDied       ? ""
                    : loss == Loss::kTimedOut ? " (task past its deadline)"
                                              : " (its job was cancelled)";
  log(loss == Loss::kDied ? Level::kWarn : Level::kInfo, "worker ", pid, " ", how, why,
      "; starting a replacement");
  slot.process = WorkerProcess::spawn(config_.worker_executable, config_.plugins);
}

void Loop::on_worker_lost(Slot& slot, Loss loss) {
  std::string how;
  replace_worker(slot, loss, how);
  if (!slot.task) return;
  const auto job = std::move(slot.task->job);
  const auto phase = slot.task->phase;
  const auto index = slot.task->index;
  slot.task.reset();
  --job->outstanding;
  if (job->dropped) return;
  if (++job->attempts[index] < kMaxTaskAttempts) {
    requeue(job, index);
    return;
  }
  const auto task_name = std::string(phase == Phase::kMap ? "map" : "reduce") + " task " +
                         std::to_string(index + 1) + " of " + std::to_string(job->task_count());
  const auto attempts = std::to_string(kMaxTaskAttempts) + " times";
  if (loss == Loss::kTimedOut) {
    finish(*job, protocol::Status::kJobTimedOut,
           task_name + " ran past its " + std::to_string(job->task_timeout.count()) +
               " ms deadline " + attempts);
  } else {
    finish(*job, protocol::Status::kJobCrashed,
           task_name + " crashed " + attempts + "; last worker " + how);
  }
}

void Loop::requeue(const std::shared_ptr<RunningJob>& job, std::uint32_t index) {
  if (job->todo.empty()) ready_.push_front(job);  // it lost its turn through no fault of its own
  job->todo.push_front(index);
}

void Loop::on_phase_complete(RunningJob& job) {
  try {
    if (job.phase == Phase::kMap && job.kind->has_reduce()) {
      job.chunks.clear();
      job.chunks.shrink_to_fit();
      job.phase = Phase::kReduce;
      job.reduced.assign(job.partitions, {});
      job.attempts.assign(job.partitions, 0);
      for (std::uint32_t p = 0; p < job.partitions; ++p)
        job.todo.push_back(p);
      job.ticket->state = JobState::kReducing;
      ready_.push_back(jobs_.at(job.id()));
      return;
    }
    std::vector<std::string> parts;
    if (job.phase == Phase::kMap) {
      // No reduce: the result is built from piece 0 of each map output, in chunk order.
      for (auto& output : job.map_outputs)
        parts.push_back(std::move(output.at(0)));
    } else {
      parts = std::move(job.reduced);
    }
    job.map_outputs.clear();
    auto result = protocol::encode(job.kind->assemble(std::move(parts)));
    if (result.size() > std::numeric_limits<std::uint32_t>::max()) {
      // A reply's length is a u32: such a result could never be sent.
      finish(job, protocol::Status::kJobFailed,
             "the result is " + std::to_string(result.size()) +
                 " bytes, more than a reply can carry (4 GiB - 1)");
      return;
    }
    finish(job, protocol::Status::kOk, std::move(result));
  } catch (const std::exception& e) {
    finish(job, protocol::Status::kJobFailed, e.what());
  }
}

void Loop::finish(RunningJob& job, protocol::Status status, std::string body) {
  job.dropped = true;
  const auto id = job.id();
  if (status != protocol::Status::kOk) {
    log(Level::kInfo, "job ", id, " failed (", protocol::to_string(status), "): ", body);
  }
  if (!job.ticket->cancelled) on_finish_(JobOutcome{id, status, std::move(body)});
  jobs_.erase(id);  // may destroy `job`: nothing touches it after this line
}

}  // namespace

Scheduler::Scheduler(SchedulerConfig config, FinishCallback on_finish)
    : config_(std::move(config)), on_finish_(std::move(on_finish)) {
  if (config_.workers == 0) config_.workers = 1;
}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::start() {
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  // Workers start here, before the thread, so that a missing executable is a start-up error.
  auto loop = std::make_shared<Loop>(config_, on_finish_, worker_restarts_);
  thread_ = std::thread([this, loop] {
    try {
      for (;;) {
        std::deque<Submission> admitted;
        {
          std::lock_guard lock(mutex_);
          if (stopping_) return;
          admitted.swap(incoming_);
        }
        for (auto& s : admitted)
          loop->admit(std::move(s.ticket), std::move(s.request));
        if (cancels_pending_.exchange(false)) loop->drop_cancelled();
        loop->dispatch();
        loop->wait_and_collect(wake_fd_);
      }
    } catch (const std::exception& e) {
      // Without its scheduler the server would accept jobs it can never run: better to stop
      // now (with --data-dir, a restart runs them; the workers die with us).
      log(Level::kError, "scheduler stopped: ", e.what(), "; mrd exits");
      std::_Exit(1);
    }
  });
}

void Scheduler::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake();
  thread_.join();  // the loop (and with it every worker process) is destroyed on the way out
  ::close(wake_fd_);
  wake_fd_ = -1;
}

void Scheduler::enqueue(std::shared_ptr<JobTicket> ticket, protocol::SubmitRequest request,
                        MemoryCharge input_charge) {
  {
    std::lock_guard lock(mutex_);
    incoming_.push_back({std::move(ticket), std::move(request), std::move(input_charge)});
  }
  wake();
}

void Scheduler::notify_cancelled() {
  cancels_pending_ = true;
  wake();
}

void Scheduler::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

}  // namespace mrd::server
