#include "server/dispatcher.hpp"

#include <algorithm>
#include <limits>
#include <new>
#include <stdexcept>
#include <string_view>

#include "protocol/codec.hpp"
#include "server/engine/builtin_jobs.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/job_kind.hpp"
#include "server/log.hpp"
#include "server/matrix_result.hpp"

namespace mrd::server {

using protocol::JobState;
using protocol::Status;

enum class Phase { kMap, kReduce };

/// A job the dispatcher is running.
struct Dispatcher::RunningJob {
  std::shared_ptr<JobTicket> ticket;
  const engine::JobKind* kind = nullptr;
  TaskJob task;  ///< the pair, partitions and memory limit, as task messages carry them
  std::chrono::milliseconds task_timeout{0};
  Phase phase = Phase::kMap;
  std::unique_ptr<SubmittedInput> input;              ///< kept until the map phase ends
  MemoryCharge input_charge;                          ///< pays for `input`
  std::vector<engine::InputView> chunks;              ///< views into `input`, one per map task
  MemoryCharge chunks_charge;                         ///< pays for `chunks` and the outputs planned
  std::vector<std::vector<std::string>> map_outputs;  ///< [chunk][partition]
  std::vector<std::string> reduced;                   ///< [partition]
  MemoryCharge outputs_charge;                        ///< pays for map_outputs and reduced
  std::deque<std::uint32_t> todo;                     ///< task indexes of this phase not yet sent
  std::vector<int> attempts;                          ///< per task of this phase
  std::uint32_t outstanding = 0;                      ///< tasks sent, not yet answered
  bool dropped = false;                               ///< failed or cancelled: ignore answers
  /// One chunk and a reduce: its single task maps and reduces in one go (kMapReduce).
  bool fused = false;
  /// Its chunks were cut by the planner (not the client), small, and may be joined: while no
  /// other job is about, one map task runs several of them (see kMaxChunksPerTask).
  bool joinable = false;
  /// A big matrix product: the file its map tasks write C into, which becomes its result.
  std::unique_ptr<MatrixResult> matrix_result;
  /// While its SUBMIT is still arriving (its ticket is then a placeholder): the input so far, and
  /// what cuts it. `input` is null until the job is submitted whole.
  std::shared_ptr<ArrivingInput> arriving;
  std::unique_ptr<ArrivalCutter> cutter;  ///< null once the bytes arrived cannot be cut
  std::uint64_t cut_to = 0;               ///< body bytes cut so far
  /// How it failed before it had an id: reported once it has one (never, if the SUBMIT is not
  /// accepted).
  std::optional<std::pair<protocol::Status, std::string>> early_failure;

  std::uint32_t id() const { return ticket->id; }
  /// The bytes its map tasks' ranges are offsets into, and the file workers map them from (-1:
  /// the ranges' bytes travel in the task messages).
  std::string_view input_bytes() const {
    if (input) return input->bytes();
    return arriving ? std::string_view(arriving->mapping->data(), arriving->mapping->size())
                    : std::string_view();
  }
  int input_fd() const {
    if (input) return input->fd();
    return arriving ? arriving->mapping->fd() : -1;
  }
  std::uint32_t task_count() const {
    return static_cast<std::uint32_t>(phase == Phase::kMap ? chunks.size() : task.partitions);
  }
  std::string task_name(Phase task_phase, std::uint32_t index) const {
    return std::string(task_phase == Phase::kMap ? "map" : "reduce") + " task " +
           std::to_string(index + 1) + " of " + std::to_string(task_count());
  }
};

/// A task in a worker's hands.
struct Dispatcher::InFlight {
  std::shared_ptr<RunningJob> job;
  Phase phase = Phase::kMap;
  std::uint32_t index = 0;
  std::uint32_t count = 1;     ///< map tasks: the chunks index, index + 1, ... it runs together
  Clock::time_point deadline;  ///< the worker is killed if the task is still running then
  Clock::time_point started;   ///< when it was handed out (for the task durations of STATS)
};

namespace {
std::string in_mib(std::uint64_t bytes) {
  return std::to_string(mebibytes(bytes)) + " MiB";
}

/// Job `id`'s outcome from the parts of its result (reduced partitions, or map outputs); never
/// throws: what goes wrong is the job's failure.
JobOutcome assembled(const engine::JobKind& kind, std::vector<std::string> parts,
                     std::uint32_t id) {
  try {
    auto result = kind.assemble_encoded(std::move(parts));
    if (result.size() > std::numeric_limits<std::uint32_t>::max()) {
      // A reply's length is a u32: such a result could never be sent.
      return {id, Status::kJobFailed,
              "the result is " + std::to_string(result.size()) +
                  " bytes, more than a reply can carry (4 GiB - 1)"};
    }
    return {id, Status::kOk, std::move(result)};
  } catch (const std::bad_alloc&) {
    return {id, Status::kJobOutOfMemory, "the server ran out of memory assembling its result"};
  } catch (const std::exception& e) {
    return {id, Status::kJobFailed, e.what()};
  }
}
}  // namespace

Dispatcher::Dispatcher(DispatcherConfig config, TaskPool& pool, FinishCallback on_finish)
    : config_(std::move(config)),
      pool_(pool),
      on_finish_(std::move(on_finish)),
      in_flight_(pool.size()) {}

Dispatcher::~Dispatcher() = default;

void Dispatcher::submit(Submission submission) {
  waiting_.push_back(std::move(submission));
}

void Dispatcher::admit_waiting() {
  // Tenants take turns here as they do for tasks: each tenant's first waiting job, then each one's
  // second, and so on, the tenant admitted longest ago first; so that when memory is short, one
  // tenant's queue of jobs waiting for it does not take all that comes back. A job that must wait
  // for memory lets smaller ones behind it through. (Called at every turn of the scheduler's
  // loop: with nothing waiting, it costs nothing.)
  if (waiting_.empty()) return;
  struct Turn {
    std::size_t rank;             ///< among its tenant's waiting jobs
    std::uint64_t last_admitted;  ///< when its tenant last had a job admitted (0: never)
    std::size_t index;            ///< in waiting_
    auto operator<=>(const Turn&) const = default;
  };
  std::vector<Turn> turns;
  turns.reserve(waiting_.size());
  std::unordered_map<std::string_view, std::size_t> waiting_of;
  for (std::size_t i = 0; i < waiting_.size(); ++i) {
    const auto& tenant = waiting_[i].ticket->tenant;
    const auto last = last_admitted_.find(tenant);
    turns.push_back({waiting_of[tenant]++, last == last_admitted_.end() ? 0 : last->second, i});
  }
  if (waiting_of.size() > 1) std::sort(turns.begin(), turns.end());
  std::vector<bool> admitted(waiting_.size());
  for (const auto& turn : turns) {
    auto& submission = waiting_[turn.index];
    const auto ticket = submission.ticket;  // the job may be gone once admitted
    admitted[turn.index] = admit(submission);
    if (admitted[turn.index]) last_admitted_[ticket->tenant] = ++admissions_;
  }
  std::deque<Submission> still_waiting;
  for (std::size_t i = 0; i < waiting_.size(); ++i)
    if (!admitted[i]) still_waiting.push_back(std::move(waiting_[i]));
  waiting_.swap(still_waiting);
}

/// A new job running `layout`'s pair with its options, under `ticket`.
std::shared_ptr<Dispatcher::RunningJob> Dispatcher::new_job(std::shared_ptr<JobTicket> ticket,
                                                            const protocol::SubmitLayout& layout) {
  auto job = std::make_shared<RunningJob>();
  job->ticket = std::move(ticket);
  job->task.mapper = layout.mapper;
  job->task.reducer = layout.reducer;
  job->kind = engine::find_job_kind(layout.mapper, layout.reducer);
  job->task_timeout = std::chrono::milliseconds(
      layout.options.task_timeout_ms ? layout.options.task_timeout_ms : config_.task_timeout_ms);
  // A job may lower its workers' memory limit, never raise it above the server's.
  job->task.memory_limit_mib = config_.memory_limit_mib;
  if (layout.options.memory_limit_mib &&
      (config_.memory_limit_mib == 0 ||
       layout.options.memory_limit_mib < config_.memory_limit_mib)) {
    job->task.memory_limit_mib = layout.options.memory_limit_mib;
  }
  return job;
}

bool Dispatcher::admit(Submission& submission) {
  if (submission.ticket->cancelled) {
    // Cancelled before it was admitted: maps it started while it arrived stop too.
    if (submission.arriving) {
      submission.arriving->placeholder->cancelled = true;
      early_cancelled_ = true;
    }
    return true;
  }
  if (submission.arriving && adopt(submission)) return true;
  const auto& layout = submission.input->layout();
  const auto& input = submission.input->view();
  auto job = new_job(submission.ticket, layout);
  try {
    if (!job->kind) {
      throw engine::JobError("no job '" + layout.mapper + "' + '" + layout.reducer + "'");
    }
    job->kind->validate(input);
    const auto chunk_bytes = plan_chunk_bytes(layout.options.chunk_bytes, input, config_.limits);
    // A big product's result is made now, in shared memory its tasks write C into, and paid for
    // with the job's working memory (a small one comes back in the tasks' answers, as others do).
    const bool product = job->kind == &engine::matrix_multiply_job();
    const auto result_bytes = product ? MatrixResult::body_bytes(input) : 0;
    const bool result_in_file = !config_.carry_bytes && result_bytes >= kSharedSegmentBytes &&
                                Segment::live_shared() < kMaxSharedSegments;
    const auto working = planned_working_bytes(input, layout.options, config_.limits) +
                         (result_in_file ? result_bytes : 0);
    if (config_.budget) {
      job->chunks_charge = MemoryCharge::try_take(*config_.budget, working);
      if (!job->chunks_charge) {
        // Memory comes back as running jobs finish; with none running it never will.
        if (!jobs_.empty()) return false;
        finish(*job, Status::kJobOutOfMemory,
               "the job needs " + in_mib(working) +
                   " of server memory to run, more than the memory budget has free (" +
                   in_mib(config_.budget->limit() -
                          std::min(config_.budget->used(), config_.budget->limit())) +
                   " of " + in_mib(config_.budget->limit()) + ", mrd --max-memory-mib)");
        return true;
      }
    }
    job->chunks = job->kind->split(input, chunk_bytes);
    if (result_in_file) {
      try {
        job->matrix_result = std::make_unique<MatrixResult>(input, job->chunks);
      } catch (const std::system_error& e) {
        // No descriptor or memory for the file: the tasks answer with their blocks instead.
        log(Level::kWarn, "job ", job->id(), ": no shared result (", e.what(), ")");
      }
    }
  } catch (const std::bad_alloc&) {
    finish_out_of_memory(*job, "splitting its input");
    return true;
  } catch (const std::exception& e) {
    finish(*job, Status::kJobFailed, e.what());
    return true;
  }
  // The chunks are views into the input: the job keeps it (and its charge) until its maps are
  // done.
  job->input = std::move(submission.input);
  job->input_charge = std::move(submission.input_charge);

  const auto chunks = static_cast<std::uint32_t>(job->chunks.size());
  job->task.partitions = plan_partitions(layout.options.partitions, chunks, config_.limits);
  job->map_outputs.resize(chunks);
  job->attempts.assign(chunks, 0);
  for (std::uint32_t i = 0; i < chunks; ++i)
    job->todo.push_back(i);
  job->ticket->map_total = chunks;
  job->ticket->reduce_total = job->kind->has_reduce() ? job->task.partitions : 0;
  job->fused = chunks == 1 && job->kind->has_reduce();
  job->joinable = chunks > 1 && layout.options.chunk_bytes == 0 && !job->matrix_result &&
                  job->kind != &engine::matrix_multiply_job();
  job->ticket->state = JobState::kMapping;
  log(Level::kDebug, "job ", job->id(), ": ", job->task.mapper, "+", job->task.reducer, ", ",
      chunks, " chunks, ", job->task.partitions, " partitions, input ",
      job->input->fd() >= 0 ? "shared" : "inline");
  jobs_.emplace(job->ticket.get(), job);
  ready_.push_back(job->ticket->tenant, job);
  return true;
}

void Dispatcher::start_early(std::shared_ptr<ArrivingInput> input) {
  if (input->placeholder->cancelled) return;
  const auto& head = input->head;
  auto job = new_job(input->placeholder, head);
  if (!job->kind || !job->kind->text_overlap()) return;  // the request handler checked it
  const auto chunk_bytes =
      plan_arriving_chunk_bytes(head.options.chunk_bytes, input->body_bytes, config_.limits);
  const auto estimated_tasks = (input->body_bytes + chunk_bytes - 1) / chunk_bytes;
  if (config_.budget) {
    // Only with room to spare for the rest of the body and the margin kept for requests being
    // received (request_handler.cpp): an early start must not cost the upload its bytes.
    const auto working =
        planned_arriving_working_bytes(input->body_bytes, head.options, config_.limits);
    const auto rest = input->body_bytes - input->arrived.load(std::memory_order_acquire);
    const auto limit = config_.budget->limit();
    if (config_.budget->used() + working + rest > limit - limit / 8) return;
    job->chunks_charge = MemoryCharge::try_take(*config_.budget, working);
    if (!job->chunks_charge) return;  // it starts once whole, as any job
  }
  // The partitions are planned from the size the SUBMIT declared: the map tasks that run before
  // the rest arrives already cut their outputs into them.
  job->task.partitions = plan_partitions(head.options.partitions, estimated_tasks, config_.limits);
  job->cutter = std::make_unique<ArrivalCutter>(*input, chunk_bytes, *job->kind->text_overlap());
  job->arriving = std::move(input);
  job->joinable = head.options.chunk_bytes == 0;
  job->ticket->state = JobState::kMapping;
  log(Level::kDebug, "an arriving SUBMIT of ", job->arriving->body_bytes,
      " bytes: ", job->task.mapper, "+", job->task.reducer,
      " starts its maps as the input arrives, ", job->task.partitions, " partitions");
  jobs_.emplace(job->ticket.get(), job);
  arriving_.push_back(std::move(job));
}

bool Dispatcher::adopt(Submission& submission) {
  const auto found = jobs_.find(submission.arriving->placeholder.get());
  if (found == jobs_.end()) return false;  // it never started, or was dropped
  auto job = found->second;
  jobs_.erase(found);
  std::erase(arriving_, job);
  const auto placeholder = job->ticket;
  if (!job->early_failure &&
      (!job->cutter || submission.input->bytes().data() != job->input_bytes().data())) {
    // Nothing to go on from (its bytes could not be cut, or the input is not where they were
    // cut from): the early maps are forgotten and the job runs as any other.
    job->dropped = true;
    stop_dropped_tasks();
    return false;
  }
  // From now on the job has its id: its progress so far moves to its own ticket.
  job->ticket = submission.ticket;
  job->ticket->map_done = placeholder->map_done.load();
  job->ticket->started_ms = placeholder->started_ms.load();
  jobs_.emplace(job->ticket.get(), job);
  if (job->early_failure) {
    job->arriving.reset();
    auto [status, reason] = std::move(*job->early_failure);
    finish(*job, status, std::move(reason));
    return true;
  }
  job->input = std::move(submission.input);
  job->input_charge = std::move(submission.input_charge);
  try {
    job->kind->validate(job->input->view());
    // The charge made from the declared size grows to the input's real plan.
    const auto working =
        planned_working_bytes(job->input->view(), job->input->layout().options, config_.limits);
    if (config_.budget && working > job->chunks_charge.bytes() &&
        !job->chunks_charge.resize(working)) {
      job->chunks_charge.absorb(
          MemoryCharge::force_take(*config_.budget, working - job->chunks_charge.bytes()));
    }
    cut(job, job->arriving->body_bytes);
    if (!job->cutter || !job->cutter->done()) {
      throw std::logic_error("an input that decoded whole could not be cut as it arrived");
    }
  } catch (const std::bad_alloc&) {
    job->arriving.reset();
    finish_out_of_memory(*job, "splitting its input");
    return true;
  } catch (const std::exception& e) {
    job->arriving.reset();
    finish(*job, Status::kJobFailed, e.what());
    return true;
  }
  const auto chunks = static_cast<std::uint32_t>(job->chunks.size());
  const auto started = chunks - static_cast<std::uint32_t>(job->todo.size());
  job->arriving.reset();
  job->cutter.reset();
  // Acknowledged now: its maps left take turns with every other job's tasks.
  ready_arriving_.erase_if([&](const auto& waiting) { return waiting == job; });
  if (!job->todo.empty()) ready_.push_back(job->ticket->tenant, job);
  job->ticket->map_total = chunks;
  job->ticket->reduce_total = job->kind->has_reduce() ? job->task.partitions : 0;
  job->ticket->state = JobState::kMapping;
  log(Level::kInfo, "job ", job->id(), ": ", started, " of its ", chunks,
      " map tasks started while its input arrived");
  if (job->todo.empty() && job->outstanding == 0) on_phase_complete(*job);
  return true;
}

void Dispatcher::cut_arrived() {
  for (std::size_t i = 0; i < arriving_.size(); ++i) {
    const auto job = arriving_[i];  // a copy: cut() may finish the job
    if (job->dropped || !job->cutter) continue;
    const auto arrived = job->arriving->arrived.load(std::memory_order_acquire);
    if (arrived != job->cut_to) cut(job, arrived);
  }
}

void Dispatcher::cut(const std::shared_ptr<RunningJob>& job, std::uint64_t arrived) {
  const auto before = job->chunks.size();
  job->cut_to = arrived;
  try {
    if (!job->cutter->cut(arrived, job->chunks)) {
      // Not the start of a valid body: its SUBMIT will be refused, and the job dropped then.
      job->cutter.reset();
      return;
    }
    job->map_outputs.resize(job->chunks.size());
    job->attempts.resize(job->chunks.size(), 0);
  } catch (const std::bad_alloc&) {
    // The early maps are an optimisation: without memory for them the job waits to be whole.
    job->cutter.reset();
    return;
  }
  if (job->chunks.size() == before) return;
  if (job->todo.empty()) line_of(*job).push_back(job->ticket->tenant, job);
  for (auto i = before; i < job->chunks.size(); ++i)
    job->todo.push_back(static_cast<std::uint32_t>(i));
  job->ticket->map_total = static_cast<std::uint32_t>(job->chunks.size());
  if (before == 0) {
    log(Level::kInfo, "an arriving SUBMIT's first map task is ready with ", arrived, " of its ",
        job->arriving->body_bytes, " bytes in");
  }
}

void Dispatcher::release_input(RunningJob& job) {
  job.chunks = {};
  job.input.reset();
  job.input_charge.reset();
}

void Dispatcher::drop_cancelled() {
  std::erase_if(waiting_, [](const Submission& s) {
    if (!s.ticket->cancelled) return false;
    // Maps it started while it arrived stop too (below: its placeholder is cancelled now).
    if (s.arriving) s.arriving->placeholder->cancelled = true;
    return true;
  });
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second->ticket->cancelled) {
      auto& job = *it->second;
      if (job.arriving) {
        log(Level::kInfo, "an arriving SUBMIT will not be a job: its early maps stop");
      } else {
        log(Level::kDebug, "job ", job.id(), ": cancelled");
      }
      // Its memory goes now, whatever still holds the job (a task in a worker's hands).
      job.dropped = true;
      release_input(job);
      job.arriving.reset();
      job.cutter.reset();
      job.map_outputs = {};
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  std::erase_if(arriving_, [](const auto& job) { return job->ticket->cancelled.load(); });
  // A dropped job waiting for its turn holds its input until its turn comes: it goes now.
  ready_.erase_if([](const auto& job) { return job->dropped; });
  ready_arriving_.erase_if([](const auto& job) { return job->dropped; });
  stop_dropped_tasks();
}

void Dispatcher::stop_dropped_tasks() {
  // Work already in a worker's hands stops too: the worker is killed and replaced, which is
  // quicker than letting a long task finish for nothing. A batch's worker only if every job in it
  // was dropped: its jobs are built-in and tiny, the others' tasks are about done.
  const auto dropped = [](const InFlight& task) { return task.job->dropped; };
  for (unsigned slot = 0; slot < in_flight_.size(); ++slot) {
    auto& tasks = in_flight_[slot];
    if (tasks.empty() || !std::all_of(tasks.begin(), tasks.end(), dropped)) continue;
    const auto how = pool_.replace(slot);
    log(Level::kInfo, "worker ", how, " (its job was cancelled); started a replacement");
    for (auto& task : tasks)
      --task.job->outstanding;
    tasks.clear();
  }
}

void Dispatcher::dispatch() {
  cut_arrived();
  admit_waiting();
  if (early_cancelled_) {
    early_cancelled_ = false;
    drop_cancelled();
  }
  // Other jobs are about while more than one runs or waits, and for a moment after: a client
  // that sends tiny jobs one after the other leaves gaps between them.
  const auto now = Clock::now();
  if (jobs_.size() > 1 || !waiting_.empty()) last_crowded_ = now;
  others_recently_ = now - last_crowded_ < config_.quiet_before_joining;
  for (unsigned slot = 0; slot < in_flight_.size(); ++slot) {
    if (in_flight_[slot].empty() && pool_.idle(slot)) start_next_task(slot);
  }
  publish_busy_workers();
}

void Dispatcher::publish_busy_workers() {
  if (!config_.activity) return;
  // A relaxed store: STATS reads a figure, nothing is ordered by it.
  config_.activity->workers_busy.store(
      static_cast<std::uint64_t>(std::count_if(in_flight_.begin(), in_flight_.end(),
                                               [](const auto& t) { return !t.empty(); })),
      std::memory_order_relaxed);
}

void Dispatcher::start_next_task(unsigned slot) {
  while (!ready_.empty() || (!ready_arriving_.empty() && may_start_arriving())) {
    auto job = (ready_.empty() ? ready_arriving_ : ready_).pop_front();
    if (job->dropped || job->todo.empty()) continue;
    const auto index = job->todo.front();
    job->todo.pop_front();
    // Alone, a big job's map task takes several chunks: fewer, bigger tasks cost less. While
    // other jobs are about, one each, so that a worker is soon free for them.
    std::uint32_t count = 1;
    if (job->joinable && job->phase == Phase::kMap && !others_recently_) {
      const auto most =
          std::clamp<std::size_t>(job->todo.size() / in_flight_.size(), 0, kMaxChunksPerTask - 1);
      while (count <= most && job->todo.front() == index + count) {
        job->todo.pop_front();
        ++count;
      }
    }
    // Its next task waits for its next turn.
    if (!job->todo.empty()) line_of(*job).push_back(job->ticket->tenant, job);
    const auto type = job->fused                  ? TaskMessageType::kMapReduce
                      : job->phase == Phase::kMap ? TaskMessageType::kMap
                                                  : TaskMessageType::kReduce;
    std::string body;
    try {
      body = encode_task(*job, index, count);
    } catch (const std::bad_alloc&) {
      finish_out_of_memory(*job, "encoding " + job->task_name(job->phase, index));
      continue;  // the worker is still idle: give it another job's task
    }
    if (batchable(*job)) {
      // Tiny jobs whose turns come next go along in one message.
      std::vector<BatchedTask> batch;
      batch.push_back({std::move(job), index, std::move(body)});
      gather_batch(batch);
      if (batch.size() > 1) return send_batch(slot, std::move(batch));
      job = std::move(batch.front().job);
      body = std::move(batch.front().body);
    }
    // The message (ranges of a shared input; or a copy of its chunk's bytes, or of its
    // partition's pieces) is counted while it is being written.
    MemoryCharge charge;
    if (config_.budget) charge = MemoryCharge::force_take(*config_.budget, body.size());
    // A map task of a shared input sends the input's memory file along; the worker maps it.
    const int attached = job->phase == Phase::kMap && !config_.carry_bytes ? job->input_fd() : -1;
    // And a product's map task the result's file, which it writes its rows of C into.
    const int result =
        job->phase == Phase::kMap && job->matrix_result ? job->matrix_result->segment->fd() : -1;
    try {
      pool_.send(slot, job->id(), type, std::move(body), std::move(charge), attached, result);
    } catch (const std::system_error& e) {
      // No descriptor to spare for the copy sent along: the worker stays idle, the task waits.
      log(Level::kWarn, "cannot send job ", job->id(), "'s ", job->task_name(job->phase, index),
          ": ", e.what(), "; it waits for its turn again");
      requeue(job, index, count);
      return;
    }
    // A task of several chunks has the deadline of each of them, one after the other.
    const auto now = Clock::now();
    handed_over(slot, job, index, count, now + count * job->task_timeout, now);
    return;
  }
}

std::string Dispatcher::encode_task(const RunningJob& job, std::uint32_t index,
                                    std::uint32_t count) const {
  if (job.phase == Phase::kMap) {
    const auto joined =
        count > 1 ? engine::join_chunks(std::span(job.chunks).subspan(index, count)) : std::nullopt;
    if (count > 1 && !joined) throw std::logic_error("chunks that cannot be joined were joined");
    // Ranges of the input, not its bytes, when the worker can map the input's memory file.
    return encode_map_task(
        job.task, joined ? *joined : job.chunks[index], job.input_bytes(),
        job.input_fd() >= 0 && !config_.carry_bytes,
        job.matrix_result ? std::optional(job.matrix_result->rows.at(index)) : std::nullopt);
  }
  std::vector<const std::string*> pieces;
  pieces.reserve(job.map_outputs.size());
  for (const auto& output : job.map_outputs) {
    if (!output.empty())
      pieces.push_back(&output[index]);  // empty: its chunk ran in another's task
  }
  return encode_reduce_task(job.task, pieces);
}

bool Dispatcher::batchable(const RunningJob& job) const {
  // Only the server's own jobs: on 16 KiB their work is bounded (microseconds). A plugin's or a
  // test job's task may hang, and would hold its batch's other jobs until its deadline; cancelling
  // it could not free them. And only a first attempt: a task that was in a lost batch runs alone,
  // so that one that kills its worker cannot take its batch's other jobs down with it again.
  return pool_.takes_batches() && job.fused && job.phase == Phase::kMap &&
         engine::is_builtin(*job.kind) && job.input_fd() < 0 &&
         job.input_bytes().size() <= kMostBatchedInputBytes && job.attempts.at(0) == 0;
}

void Dispatcher::gather_batch(std::vector<BatchedTask>& batch) {
  while (batch.size() < kMostTasksPerBatch && !ready_.empty()) {
    const auto& next = *ready_.front();
    const bool goes = next.dropped || next.todo.empty();  // taken off the line, as it would be
    if (!goes && !batchable(next)) return;                // its turn is not to be skipped
    auto job = ready_.pop_front();
    if (goes) continue;
    const auto index = job->todo.front();
    job->todo.pop_front();  // its only task
    std::string body;
    try {
      body = encode_task(*job, index, 1);
    } catch (const std::bad_alloc&) {
      finish_out_of_memory(*job, "encoding " + job->task_name(job->phase, index));
      continue;
    }
    batch.push_back({std::move(job), index, std::move(body)});
  }
}

void Dispatcher::send_batch(unsigned slot, std::vector<BatchedTask> batch) {
  std::vector<std::pair<TaskMessageType, std::string>> messages;
  messages.reserve(batch.size());
  auto timeout = Clock::duration::zero();
  for (auto& task : batch) {
    messages.emplace_back(TaskMessageType::kMapReduce, std::move(task.body));
    timeout += task.job->task_timeout;
  }
  std::string body;
  try {
    body = encode_batch(messages);
  } catch (const std::bad_alloc&) {
    for (auto& task : batch)
      finish_out_of_memory(*task.job, "encoding " + task.job->task_name(Phase::kMap, task.index));
    return;
  }
  MemoryCharge charge;
  if (config_.budget) charge = MemoryCharge::force_take(*config_.budget, body.size());
  log(Level::kDebug, "a batch of ", batch.size(), " tasks to worker slot ", slot, ", jobs ",
      batch.front().job->id(), " to ", batch.back().job->id());
  // No descriptor goes along, so there is none to copy: sending cannot fail here.
  pool_.send(slot, batch.front().job->id(), TaskMessageType::kBatch, std::move(body),
             std::move(charge), -1, -1);
  // The batch runs as one task: each of its tasks has the whole batch's time to answer.
  const auto now = Clock::now();
  for (const auto& task : batch)
    handed_over(slot, task.job, task.index, 1, now + timeout, now);
}

void Dispatcher::handed_over(unsigned slot, const std::shared_ptr<RunningJob>& job,
                             std::uint32_t index, std::uint32_t count, Clock::time_point deadline,
                             Clock::time_point now) {
  ++job->outstanding;
  if (job->ticket->started_ms == 0) job->ticket->started_ms = unix_ms_now();
  in_flight_[slot].push_back(InFlight{job, job->phase, index, count, deadline, now});
}

void Dispatcher::handle(std::vector<PoolEvent> events) {
  for (auto& event : events) {
    switch (event.kind) {
      case PoolEvent::Kind::kAnswer:
        on_answer(event.slot, std::move(event.answer), std::move(event.charge));
        break;
      case PoolEvent::Kind::kLost: on_task_lost(event.slot, Loss::kDied, event.how); break;
      case PoolEvent::Kind::kOverBudget: on_over_budget(event.slot, event.how); break;
      case PoolEvent::Kind::kStarted:
        for (auto& task : in_flight_[event.slot]) {
          task.started = Clock::now();
          task.deadline = task.started + task.count * task.job->task_timeout;
        }
        break;
    }
  }
  publish_busy_workers();
}

void Dispatcher::enforce_deadlines() {
  const auto now = Clock::now();
  for (unsigned slot = 0; slot < in_flight_.size(); ++slot) {
    const auto& tasks = in_flight_[slot];
    if (std::any_of(tasks.begin(), tasks.end(),
                    [&](const InFlight& task) { return task.deadline <= now; })) {
      on_task_lost(slot, Loss::kTimedOut, pool_.replace(slot));
    }
  }
}

std::optional<Dispatcher::Clock::time_point> Dispatcher::next_deadline() const {
  std::optional<Clock::time_point> earliest;
  for (const auto& tasks : in_flight_) {
    for (const auto& task : tasks) {
      if (!earliest || task.deadline < *earliest) earliest = task.deadline;
    }
  }
  return earliest;
}

void Dispatcher::on_answer(unsigned slot, TaskMessage answer, MemoryCharge charge) {
  auto tasks = std::exchange(in_flight_[slot], {});
  if (tasks.empty()) return;  // the pool reports answers only to tasks; be safe anyway
  if (tasks.size() == 1)
    return settle(std::move(tasks.front()), std::move(answer), std::move(charge));
  // A batch's answer: one per task, in the batch's order. One that does not add up fails its
  // jobs as garbage would fail one job.
  std::vector<BatchedMessage> answers;
  std::string broken;
  if (answer.type == TaskMessageType::kBatchDone) {
    try {
      answers = decode_batch(answer.body);
      if (answers.size() != tasks.size()) broken = "the wrong number of answers";
    } catch (const std::exception& e) {
      broken = e.what();
    }
  } else {
    broken = answer.type == TaskMessageType::kError ? answer.body : "not a batch's answers";
  }
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    TaskMessage each;
    each.type = broken.empty() ? answers[i].type : TaskMessageType::kError;
    each.body = broken.empty() ? std::string(answers[i].body)
                               : "the worker answered a batch of tasks wrongly: " + broken;
    auto each_charge = charge.split(each.body.size());
    settle(std::move(tasks[i]), std::move(each), std::move(each_charge));
  }
}

void Dispatcher::settle(InFlight task, TaskMessage answer, MemoryCharge charge) {
  auto& job = *task.job;
  --job.outstanding;
  if (job.dropped) return;
  if (answer.type == TaskMessageType::kError) {
    finish(job, Status::kJobFailed, answer.body);
    return;
  }
  if (answer.type == TaskMessageType::kOutOfMemory) {
    // Not retried: the same task would need the same memory again.
    finish(job, Status::kJobOutOfMemory,
           job.task_name(task.phase, task.index) + " ran out of memory (limit " +
               std::to_string(job.task.memory_limit_mib) + " MiB)");
    return;
  }
  try {
    if (job.fused) {
      // The single task answered with every partition already reduced.
      job.reduced = decode_pieces(answer.body);
      if (job.reduced.size() != job.task.partitions) {
        throw std::runtime_error("a map-reduce task returned the wrong number of partitions");
      }
      job.ticket->map_done = 1;
      job.ticket->reduce_done = job.task.partitions;
      job.phase = Phase::kReduce;
    } else if (task.phase == Phase::kMap) {
      job.map_outputs[task.index] = decode_pieces(answer.body);
      if (job.map_outputs[task.index].size() != job.task.partitions && job.kind->has_reduce()) {
        throw std::runtime_error("map task returned the wrong number of partitions");
      }
      job.ticket->map_done += task.count;
    } else {
      job.reduced[task.index] = std::move(answer.body);
      ++job.ticket->reduce_done;
    }
    job.outputs_charge.absorb(std::move(charge));
    if (config_.activity) {
      config_.activity->task_us.add(Clock::now() - task.started);
      config_.activity->tasks_done.fetch_add(1, std::memory_order_relaxed);
    }
  } catch (const std::bad_alloc&) {
    finish_out_of_memory(job, "keeping the output of " + job.task_name(task.phase, task.index));
    return;
  } catch (const std::exception& e) {
    finish(job, Status::kJobFailed, std::string("worker answered garbage: ") + e.what());
    return;
  }
  // A job whose input is still arriving has more maps to come.
  if (job.todo.empty() && job.outstanding == 0 && !job.arriving) on_phase_complete(job);
}

void Dispatcher::on_task_lost(unsigned slot, Loss loss, const std::string& how) {
  auto tasks = std::exchange(in_flight_[slot], {});
  if (tasks.empty()) {
    log(Level::kWarn, "idle worker ", how, "; started a replacement");
    return;
  }
  // Every task of a lost batch counts the loss, and runs again alone (batchable): the next loss
  // is then its own. Last first, since each goes back to the front of the line.
  for (auto task = tasks.rbegin(); task != tasks.rend(); ++task)
    lose(std::move(*task), loss, how);
}

void Dispatcher::lose(InFlight task, Loss loss, const std::string& how) {
  const auto& job = task.job;
  --job->outstanding;
  log(loss == Loss::kDied ? Level::kWarn : Level::kInfo, "worker ", how,
      loss == Loss::kTimedOut ? " (task past its deadline)" : "", " running job ", job->id(), "'s ",
      job->task_name(task.phase, task.index), "; started a replacement");
  if (job->dropped) return;
  if (++job->attempts[task.index] < kMaxTaskAttempts) {
    requeue(job, task.index, task.count);
    return;
  }
  const auto attempts = std::to_string(kMaxTaskAttempts) + " times";
  if (loss == Loss::kTimedOut) {
    finish(*job, Status::kJobTimedOut,
           job->task_name(task.phase, task.index) + " ran past its " +
               std::to_string(job->task_timeout.count()) + " ms deadline " + attempts);
  } else {
    finish(
        *job, Status::kJobCrashed,
        job->task_name(task.phase, task.index) + " crashed " + attempts + "; last worker " + how);
  }
}

void Dispatcher::on_over_budget(unsigned slot, const std::string& what) {
  for (auto& task : std::exchange(in_flight_[slot], {})) {
    --task.job->outstanding;
    if (task.job->dropped) continue;
    finish_out_of_memory(
        *task.job, "receiving " + what + " for " + task.job->task_name(task.phase, task.index));
  }
}

void Dispatcher::requeue(const std::shared_ptr<RunningJob>& job, std::uint32_t index,
                         std::uint32_t count) {
  // It lost its turn through no fault of its own.
  if (job->todo.empty()) line_of(*job).push_front(job->ticket->tenant, job);
  for (auto i = index + count; i-- > index;)
    job->todo.push_front(i);
}

bool Dispatcher::may_start_arriving() const {
  if (!others_recently_ || in_flight_.size() < 2) return true;
  // While other jobs come and go, one worker is kept from them: a job that arrives meanwhile
  // finds it idle rather than waiting for an early map to finish.
  const auto arriving = std::count_if(in_flight_.begin(), in_flight_.end(), [](const auto& tasks) {
    return !tasks.empty() && tasks.front().job->arriving != nullptr;
  });
  return static_cast<std::size_t>(arriving) + 1 < in_flight_.size();
}

auto Dispatcher::line_of(const RunningJob& job) -> TenantTurns<std::shared_ptr<RunningJob>>& {
  return job.arriving ? ready_arriving_ : ready_;
}

void Dispatcher::on_phase_complete(RunningJob& job) {
  try {
    release_input(job);
    if (job.phase == Phase::kMap && job.kind->has_reduce()) {
      job.phase = Phase::kReduce;
      job.reduced.assign(job.task.partitions, {});
      job.attempts.assign(job.task.partitions, 0);
      for (std::uint32_t p = 0; p < job.task.partitions; ++p)
        job.todo.push_back(p);
      job.ticket->state = JobState::kReducing;
      ready_.push_back(job.ticket->tenant, jobs_.at(job.ticket.get()));
      return;
    }
    if (job.matrix_result) {
      // Its tasks wrote C where it stays: the finished file is the result, as it is.
      auto segment = std::move(job.matrix_result->segment);
      job.matrix_result.reset();
      segment->finish();
      finish(job, Status::kOk, {}, std::move(segment));
      return;
    }
    std::vector<std::string> parts;
    if (job.phase == Phase::kMap) {
      // No reduce: the result is built from piece 0 of each map output, in chunk order (none
      // for a chunk that ran in the task of the chunk before it).
      for (auto& output : job.map_outputs) {
        if (!output.empty()) parts.push_back(std::move(output.at(0)));
      }
    } else {
      parts = std::move(job.reduced);
    }
    job.map_outputs = {};
    std::uint64_t part_bytes = 0;
    for (const auto& part : parts)
      part_bytes += part.size();
    if (config_.assemble_elsewhere && part_bytes >= kAssembleElsewhereBytes) {
      return assemble_elsewhere(job, std::move(parts));
    }
    auto outcome = assembled(*job.kind, std::move(parts), job.id());
    finish(job, outcome.status, std::move(outcome.body));
  } catch (const std::bad_alloc&) {
    finish_out_of_memory(job, "assembling its result");
  } catch (const std::exception& e) {
    finish(job, Status::kJobFailed, e.what());
  }
}

void Dispatcher::assemble_elsewhere(RunningJob& job, std::vector<std::string> parts) {
  // The job is done here; the parts (still paid for) go to the assembler, which reports the
  // outcome, unless the job is cancelled meanwhile.
  struct Assembly {
    const engine::JobKind* kind;
    std::vector<std::string> parts;
    std::shared_ptr<JobTicket> ticket;
    MemoryCharge charge;
  };
  auto assembly = std::make_shared<Assembly>(
      Assembly{job.kind, std::move(parts), job.ticket, std::move(job.outputs_charge)});
  config_.assemble_elsewhere([assembly, on_finish = on_finish_] {
    auto outcome = assembled(*assembly->kind, std::move(assembly->parts), assembly->ticket->id);
    assembly->charge.reset();  // the parts are gone; the result is charged by whoever keeps it
    if (outcome.status != Status::kOk) {
      log(Level::kInfo, "job ", outcome.id, " failed (", protocol::to_string(outcome.status),
          "): ", outcome.body);
    }
    if (!assembly->ticket->cancelled) on_finish(std::move(outcome));
  });
  job.dropped = true;
  release_input(job);
  jobs_.erase(job.ticket.get());  // may destroy `job`: nothing touches it after this line
}

void Dispatcher::finish_out_of_memory(RunningJob& job, const std::string& what) {
  // The job's memory goes first, so that the reason can be built and the others go on.
  release_input(job);
  job.map_outputs = {};
  job.reduced = {};
  finish(job, Status::kJobOutOfMemory, "the server ran out of memory " + what);
}

void Dispatcher::finish(RunningJob& job, Status status, std::string body,
                        std::shared_ptr<const ResultSegment> segment) {
  job.dropped = true;
  release_input(job);
  if (job.arriving) {
    // No id to report it under yet: it waits for its SUBMIT, and goes if that never comes.
    log(Level::kInfo, "an arriving SUBMIT's job failed (", protocol::to_string(status),
        "): ", body);
    job.map_outputs = {};
    job.early_failure.emplace(status, std::move(body));
    return;
  }
  const auto id = job.id();
  if (status != Status::kOk) {
    log(Level::kInfo, "job ", id, " failed (", protocol::to_string(status), "): ", body);
  }
  if (!job.ticket->cancelled) {
    on_finish_(JobOutcome{id, status, std::move(body), std::move(segment)});
  }
  jobs_.erase(job.ticket.get());  // may destroy `job`: nothing touches it after this line
}

}  // namespace mrd::server
