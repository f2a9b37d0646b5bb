// The worker process's loop: read a task, run the job's map or reduce, answer, repeat.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/engine/builtin_jobs.hpp"
#include "server/engine/hash_key.hpp"
#include "server/engine/job_kind.hpp"
#include "server/engine/matrix_multiply.hpp"
#include "server/pool/segment.hpp"
#include "server/pool/worker_process.hpp"

namespace mrd::server {
namespace {

const engine::JobKind& job_kind_for(const std::string& mapper, const std::string& reducer) {
  const auto* kind = engine::find_job_kind(mapper, reducer);
  if (!kind) throw engine::JobError("no job '" + mapper + "' + '" + reducer + "' in this worker");
  return *kind;
}

/// Caps this process's address space for the task to come, plus `mapped` bytes of its input and
/// the memory kept from task to task (neither is what the job's code allocates, which the job's
/// limit is on). Only the soft limit moves, so the next task may raise it again; RLIM_INFINITY
/// when the job sets no limit.
void limit_memory(std::uint32_t mebibytes, std::uint64_t mapped = 0) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Sanitizers reserve terabytes of address space for their shadow memory: under an address-space
  // limit they cannot start at all. Sanitized builds run without the limit.
  (void)mebibytes;
  (void)mapped;
  return;
#endif
  rlimit limit{};
  getrlimit(RLIMIT_AS, &limit);
  limit.rlim_cur = mebibytes == 0
                       ? limit.rlim_max
                       : std::min<rlim_t>(limit.rlim_max,
                                          (rlim_t{mebibytes} << 20) + mapped + kept_memory_bytes());
  setrlimit(RLIMIT_AS, &limit);
}

/// Runs a map task (or a fused map and reduce) on its chunk, read in place: from the input's
/// memory file that came with the message, or from the message itself. A task of a big matrix
/// product writes its rows of C into the result's memory file, which came with the message too,
/// and answers no pieces.
std::string run_map_task(const TaskMessage& message) {
  const auto task = decode_map_task(message.body);
  const char* span_bytes = task.inline_bytes.data();
  std::optional<SegmentView> mapped;
  if (task.in_file) {
    if (!message.attached) throw engine::JobError("a map task came without its input's file");
    mapped.emplace(message.attached.get(), task.span.offset, task.span.end());
    span_bytes = mapped->data();
  }
  if (task.result_in_file) {
    // The result's file comes after the input's, when that came too.
    const auto& file = task.in_file ? message.also_attached : message.attached;
    if (!file) throw engine::JobError("a map task came without its result's file");
    const ResultRows result(file.get(), task.result.offset, task.result.end());
    limit_memory(task.job.memory_limit_mib, mapped ? mapped->mapped_bytes() : 0);
    if (&job_kind_for(task.job.mapper, task.job.reducer) != &engine::matrix_multiply_job()) {
      throw engine::JobError("only a matrix product writes into a result file");
    }
    engine::multiply_into(chunk_view(task, span_bytes), result.data(), task.result.size);
    result.write_to_file();
    return encode_pieces({});
  }
  limit_memory(task.job.memory_limit_mib, mapped ? mapped->mapped_bytes() : 0);
  const auto& kind = job_kind_for(task.job.mapper, task.job.reducer);
  // The job's key, which may not be this worker's own: on a cluster, the node running the job
  // chose it, and its other map tasks run on other nodes with it.
  engine::set_hash_key(task.job.hash_key);
  auto partitions = kind.map(chunk_view(task, span_bytes), task.job.partitions);
  if (message.type == TaskMessageType::kMapReduce) {
    // One chunk, so each partition's only piece is this task's: reduce it right here.
    for (auto& partition : partitions)
      partition = kind.reduce({std::move(partition)});
  }
  return encode_pieces(partitions);
}

/// Runs one task; returns the answer's body or throws the reason it failed.
std::string run_task(const TaskMessage& message) {
  if (message.type == TaskMessageType::kMap || message.type == TaskMessageType::kMapReduce) {
    return run_map_task(message);
  }
  if (message.type == TaskMessageType::kReduce) {
    const auto task = decode_reduce_task(message.body);
    limit_memory(task.job.memory_limit_mib);
    return job_kind_for(task.job.mapper, task.job.reducer).reduce(task.pieces);
  }
  throw engine::JobError("worker received a message that is not a task");
}

/// Runs one task and says how it went: its output, or why it has none.
std::pair<TaskMessageType, std::string> answer_task(const TaskMessage& message) {
  std::pair<TaskMessageType, std::string> answer{TaskMessageType::kDone, {}};
  try {
    answer.second = run_task(message);
  } catch (const std::bad_alloc&) {
    answer = {TaskMessageType::kOutOfMemory, "out of memory"};
  } catch (const std::exception& e) {
    answer = {TaskMessageType::kError, e.what()};
  }
  // Lift the limit before anything else is allocated: the next task belongs to another job, and
  // reading or answering it must not fail under this job's limit.
  limit_memory(0);
  return answer;
}

/// Runs each task of a batch in turn, each under its own job's limit, and answers them all at
/// once. A batch that does not decode is the server's bug, not a job's: the whole batch fails.
std::pair<TaskMessageType, std::string> answer_batch(const TaskMessage& batch) {
  std::vector<BatchedMessage> tasks;
  try {
    tasks = decode_batch(batch.body);
  } catch (const std::exception& e) {
    return {TaskMessageType::kError, e.what()};
  }
  std::vector<std::pair<TaskMessageType, std::string>> answers;
  answers.reserve(tasks.size());
  for (const auto& task : tasks) {
    TaskMessage message;
    message.type = task.type;
    message.body = task.body;
    answers.push_back(answer_task(message));
  }
  return {TaskMessageType::kBatchDone, encode_batch(answers)};
}

}  // namespace

int run_worker(int fd) {
  // Die with the server: a worker busy in a long task would otherwise outlive a SIGKILLed server.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // A server that died before that line sends no signal: then the worker has a new parent, and
  // goes now, before it runs a task already waiting on its socket (a hanging one would never end).
  if (const char* server = std::getenv(kServerPidVariable);
      server && std::to_string(::getppid()) != server) {
    return 0;
  }

  for (;;) {
    auto message = read_task_message(fd);
    if (!message) return 0;  // the server closed the pipe: orderly exit
    const auto [answer_type, answer] =
        message->type == TaskMessageType::kBatch ? answer_batch(*message) : answer_task(*message);
    // The files that came with the task are closed before the answer goes: once the server has
    // the answer, this worker holds nothing of the job.
    message.reset();
    if (!write_task_message(fd, answer_type, answer)) return 0;
  }
}

}  // namespace mrd::server
