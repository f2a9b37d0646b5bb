// TaskRunner: what this node's workers run on a node of a cluster.
//
// Two kinds of task: those taken from the Redis stream mrd:tasks (cluster_node.hpp), offered by
// any node's job, and this node's own jobs' tasks that it starts here at once, without going
// through Redis, when a worker is idle (cluster_pool.hpp). The network thread takes a task from
// the stream only while a worker is free for it, so one seldom waits here; when one does, it goes
// first, before this node's own. The runner hands each to an idle worker and reports what became
// of it: the worker's answer, or its loss. It lives on the scheduler thread, beside the pool.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "server/pool/task_pool.hpp"

namespace mrd::server::cluster {

/// A task taken from the cluster, with a number unique on this node.
struct TakenTask {
  std::uint64_t id = 0;
  TaskMessageType type = TaskMessageType::kMap;
  std::string body;
  MemoryCharge charge;  ///< pays for `body`
};

class TaskRunner {
 public:
  /// Called on the scheduler thread with the answer or loss of each task that ran.
  using Ended = std::function<void(std::uint64_t id, PoolEvent event)>;

  /// `taken_ended` hears of the tasks taken from the cluster (add()), `own_ended` of this node's
  /// own (run_now()), each by its own numbers.
  TaskRunner(TaskPool& pool, Ended taken_ended, Ended own_ended);

  void add(TakenTask task) { waiting_.push_back(std::move(task)); }
  /// Starts this node's own task `id` on an idle worker, if more than `keep_free` are idle and no
  /// taken task waits for one; false (and nothing taken) if not.
  bool run_now(std::uint64_t id, TaskMessageType type, std::string& body, MemoryCharge& charge,
               unsigned keep_free);
  /// Stops task `id` (a taken one, or with `own` one of run_now()'s): forgotten if it waits, its
  /// worker killed (and replaced) if it runs. Nothing is reported for it.
  void stop(std::uint64_t id, bool own = false);
  /// Hands waiting tasks to idle workers.
  void start_waiting();
  /// Takes in what the pool reported.
  void handle(std::vector<PoolEvent> events);

 private:
  struct Running {
    std::uint64_t id = 0;  ///< 0: none
    bool own = false;
  };
  /// An idle worker's slot with no task, or pool_.size() if there is none.
  unsigned idle_slot() const;

  TaskPool& pool_;
  Ended taken_ended_;
  Ended own_ended_;
  std::deque<TakenTask> waiting_;
  std::vector<Running> running_;  ///< per slot
};

}  // namespace mrd::server::cluster
