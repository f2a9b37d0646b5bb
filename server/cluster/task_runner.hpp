// TaskRunner: the tasks other nodes' jobs (or this node's own) sent to this node's workers.
//
// On a node of a cluster, the workers here run tasks taken from the Redis stream mrd:tasks
// (cluster_node.hpp); the network thread takes one only while a worker is free for it, so a task
// seldom waits here. This class hands each to an idle worker and reports what became of it: the
// worker's answer, or its loss. It lives on the scheduler thread, beside the worker pool.
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

  TaskRunner(TaskPool& pool, Ended ended);

  void add(TakenTask task) { waiting_.push_back(std::move(task)); }
  /// Stops task `id`: forgotten if it waits, its worker killed (and replaced) if it runs. Nothing
  /// is reported for it.
  void stop(std::uint64_t id);
  /// Hands waiting tasks to idle workers.
  void start_waiting();
  /// Takes in what the pool reported.
  void handle(std::vector<PoolEvent> events);

 private:
  TaskPool& pool_;
  Ended ended_;
  std::deque<TakenTask> waiting_;
  std::vector<std::uint64_t> running_;  ///< per slot, 0: none
};

}  // namespace mrd::server::cluster
