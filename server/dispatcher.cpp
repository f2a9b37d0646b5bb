#include "server/dispatcher.hpp"

#include <algorithm>
#include <limits>
#include <new>
#include <stdexcept>

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

  std::uint32_t id() const { return ticket->id; }
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
  // In order; a job that must wait for memory lets smaller ones behind it through.
  std::erase_if(waiting_, [this](Submission& submission) { return admit(submission); });
}

bool Dispatcher::admit(Submission& submission) {
  if (submission.ticket->cancelled) return true;
  const auto& layout = submission.input->layout();
  const auto& input = submission.input->view();
  auto job = std::make_shared<RunningJob>();
  job->ticket = submission.ticket;
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
    const bool result_in_file =
        result_bytes >= kSharedSegmentBytes && Segment::live_shared() < kMaxSharedSegments;
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
  jobs_.emplace(job->id(), job);
  ready_.push_back(std::move(job));
  return true;
}

void Dispatcher::release_input(RunningJob& job) {
  job.chunks = {};
  job.input.reset();
  job.input_charge.reset();
}

void Dispatcher::drop_cancelled() {
  std::erase_if(waiting_, [](const Submission& s) { return s.ticket->cancelled.load(); });
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
  for (unsigned slot = 0; slot < in_flight_.size(); ++slot) {
    if (!in_flight_[slot] || !in_flight_[slot]->job->dropped) continue;
    const auto how = pool_.replace(slot);
    log(Level::kInfo, "worker ", how, " (its job was cancelled); started a replacement");
    --in_flight_[slot]->job->outstanding;
    in_flight_[slot].reset();
  }
}

void Dispatcher::dispatch() {
  admit_waiting();
  // Other jobs are about while more than one runs or waits, and for a moment after: a client
  // that sends tiny jobs one after the other leaves gaps between them.
  const auto now = Clock::now();
  if (jobs_.size() > 1 || !waiting_.empty()) last_crowded_ = now;
  others_recently_ = now - last_crowded_ < kQuietBeforeJoining;
  for (unsigned slot = 0; slot < in_flight_.size(); ++slot) {
    if (!in_flight_[slot] && pool_.idle(slot)) start_next_task(slot);
  }
}

void Dispatcher::start_next_task(unsigned slot) {
  while (!ready_.empty()) {
    auto job = std::move(ready_.front());
    ready_.pop_front();
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
    if (!job->todo.empty()) ready_.push_back(job);  // its next task waits for its next turn
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
    // The message (ranges of a shared input; or a copy of its chunk's bytes, or of its
    // partition's pieces) is counted while it is being written.
    MemoryCharge charge;
    if (config_.budget) charge = MemoryCharge::force_take(*config_.budget, body.size());
    // A map task of a shared input sends the input's memory file along; the worker maps it.
    const int attached = job->phase == Phase::kMap && job->input ? job->input->fd() : -1;
    // And a product's map task the result's file, which it writes its rows of C into.
    const int result =
        job->phase == Phase::kMap && job->matrix_result ? job->matrix_result->segment->fd() : -1;
    try {
      pool_.send(slot, type, std::move(body), std::move(charge), attached, result);
    } catch (const std::system_error& e) {
      // No descriptor to spare for the copy sent along: the worker stays idle, the task waits.
      log(Level::kWarn, "cannot send job ", job->id(), "'s ", job->task_name(job->phase, index),
          ": ", e.what(), "; it waits for its turn again");
      requeue(job, index, count);
      return;
    }
    ++job->outstanding;
    // A task of several chunks has the deadline of each of them, one after the other.
    in_flight_[slot] =
        InFlight{job, job->phase, index, count, Clock::now() + count * job->task_timeout};
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
        job.task, joined ? *joined : job.chunks[index], job.input->bytes(), job.input->fd() >= 0,
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

void Dispatcher::handle(std::vector<PoolEvent> events) {
  for (auto& event : events) {
    switch (event.kind) {
      case PoolEvent::Kind::kAnswer:
        on_answer(event.slot, std::move(event.answer), std::move(event.charge));
        break;
      case PoolEvent::Kind::kLost: on_task_lost(event.slot, Loss::kDied, event.how); break;
      case PoolEvent::Kind::kOverBudget: on_over_budget(event.slot, event.how); break;
    }
  }
}

void Dispatcher::enforce_deadlines() {
  const auto now = Clock::now();
  for (unsigned slot = 0; slot < in_flight_.size(); ++slot) {
    if (in_flight_[slot] && in_flight_[slot]->deadline <= now) {
      on_task_lost(slot, Loss::kTimedOut, pool_.replace(slot));
    }
  }
}

std::optional<Dispatcher::Clock::time_point> Dispatcher::next_deadline() const {
  std::optional<Clock::time_point> earliest;
  for (const auto& task : in_flight_) {
    if (task && (!earliest || task->deadline < *earliest)) earliest = task->deadline;
  }
  return earliest;
}

void Dispatcher::on_answer(unsigned slot, TaskMessage answer, MemoryCharge charge) {
  if (!in_flight_[slot]) return;  // the pool reports answers only to tasks; be safe anyway
  auto task = std::move(*in_flight_[slot]);
  in_flight_[slot].reset();
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
  } catch (const std::bad_alloc&) {
    finish_out_of_memory(job, "keeping the output of " + job.task_name(task.phase, task.index));
    return;
  } catch (const std::exception& e) {
    finish(job, Status::kJobFailed, std::string("worker answered garbage: ") + e.what());
    return;
  }
  if (job.todo.empty() && job.outstanding == 0) on_phase_complete(job);
}

void Dispatcher::on_task_lost(unsigned slot, Loss loss, const std::string& how) {
  if (!in_flight_[slot]) {
    log(Level::kWarn, "idle worker ", how, "; started a replacement");
    return;
  }
  const auto task = std::move(*in_flight_[slot]);
  in_flight_[slot].reset();
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
  if (!in_flight_[slot]) return;
  const auto task = std::move(*in_flight_[slot]);
  in_flight_[slot].reset();
  --task.job->outstanding;
  if (task.job->dropped) return;
  finish_out_of_memory(*task.job,
                       "receiving " + what + " for " + task.job->task_name(task.phase, task.index));
}

void Dispatcher::requeue(const std::shared_ptr<RunningJob>& job, std::uint32_t index,
                         std::uint32_t count) {
  if (job->todo.empty()) ready_.push_front(job);  // it lost its turn through no fault of its own
  for (auto i = index + count; i-- > index;)
    job->todo.push_front(i);
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
      ready_.push_back(jobs_.at(job.id()));
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
  jobs_.erase(job.id());  // may destroy `job`: nothing touches it after this line
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
  const auto id = job.id();
  if (status != Status::kOk) {
    log(Level::kInfo, "job ", id, " failed (", protocol::to_string(status), "): ", body);
  }
  if (!job.ticket->cancelled) {
    on_finish_(JobOutcome{id, status, std::move(body), std::move(segment)});
  }
  jobs_.erase(id);  // may destroy `job`: nothing touches it after this line
}

}  // namespace mrd::server
