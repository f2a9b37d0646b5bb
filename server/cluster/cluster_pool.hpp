// ClusterPool: the dispatcher's pool on a cluster node, whose workers are every node's workers.
//
// On a single server the dispatcher hands tasks to worker processes of its own. On a node of a
// cluster it hands them to this pool instead, which offers each task to the whole cluster (as an
// entry in the Redis stream mrd:tasks: cluster_node.hpp) and reports its answer when the node that
// ran it has stored one. So the dispatcher is the same on both: fair turns, retries, deadlines and
// cancels work as they do on one machine, only the slots are far away.
//
// A task this node's own workers can start at once (one is idle, no task from another node is
// waiting for it, and none this node offered has waited long for a node) runs here without going
// through Redis: a node with free workers is where work goes anyway, and a tiny job saves about
// ten round trips. The others are offered.
//
// A slot here is one task the cluster may be running for this node. There are kSlots of them, of
// which `window` are usable: one per worker of this node, and two per worker of the others (one
// running, the next waiting in the stream), so that every worker can be busy and no more tasks
// wait in the stream than that, so that the tasks of jobs coordinated by other nodes find their
// place in it too. A node alone offers nothing while its workers are busy.
//
// The dispatcher calls it on the scheduler thread; answers come from the network thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "server/pool/task_pool.hpp"

namespace mrd::server::cluster {

class ClusterPool final : public TaskPool {
 public:
  /// Most tasks a node offers to the cluster at once.
  static constexpr unsigned kSlots = 64;

  /// A task to offer to the cluster.
  struct Offer {
    std::uint64_t task = 0;  ///< unique on this node
    std::uint32_t job = 0;
    TaskMessageType type = TaskMessageType::kMap;
    std::string body;
    MemoryCharge charge;  ///< pays for `body` until Redis has it
  };

  /// `offer` and `abandon` are called on the scheduler thread: they hand the task over to the
  /// network thread, which talks to Redis. So is `freed_here`, when a worker here that ran one of
  /// this node's own tasks is free again (for a task from the stream, perhaps).
  ClusterPool(std::function<void(Offer)> offer, std::function<void(std::uint64_t task)> abandon,
              std::function<void()> freed_here);

  /// Starts a task on a worker of this node if one can take it now (scheduler thread); false if
  /// not, and then nothing of the task was taken.
  using RunHere = std::function<bool(std::uint64_t task, TaskMessageType type, std::string& body,
                                     MemoryCharge& charge)>;
  /// Stops a task that run_here() started.
  using StopHere = std::function<void(std::uint64_t task)>;
  /// Set by the scheduler thread before the first task is sent.
  void run_here(RunHere run, StopHere stop) {
    run_here_ = std::move(run);
    stop_here_ = std::move(stop);
  }
  /// Tasks running on this node's workers that were never offered (any thread): the network
  /// thread takes that many fewer tasks from the stream.
  unsigned running_here() const { return running_here_.load(std::memory_order_relaxed); }

  /// Tasks the network thread took from the stream that are not with the runner yet (their
  /// message is loading): run_here() leaves that many idle workers to them.
  void reserve() { reserved_.fetch_add(1, std::memory_order_relaxed); }
  void unreserve() { reserved_.fetch_sub(1, std::memory_order_relaxed); }
  unsigned reserved() const { return reserved_.load(std::memory_order_relaxed); }

  unsigned size() const override { return kSlots; }
  bool idle(unsigned slot) const override {
    return slot < window_.load(std::memory_order_relaxed) && tasks_[slot] == 0;
  }
  /// Tasks carry their bytes: `attached` and `result` must be -1 (DispatcherConfig::carry_bytes).
  void send(unsigned slot, std::uint32_t job, TaskMessageType type, std::string body,
            MemoryCharge charge, int attached, int result) override;
  /// Gives the slot's task up (its deadline passed, or its job was cancelled): the node running
  /// it is told to stop, and a late answer is ignored.
  std::string replace(unsigned slot) override;

  /// What became of a task (any thread): `event`'s slot is filled in here. A kStarted event
  /// leaves the slot busy; every other kind frees it.
  void report(std::uint64_t task, PoolEvent event);
  /// Slots usable from now on (any thread), between 1 and kSlots; wakes the scheduler if more.
  void set_window(unsigned slots);
  /// Called when report() has something for the scheduler thread.
  void on_report(std::function<void()> wake) { wake_ = std::move(wake); }

  /// The reports that came since the last call, for the dispatcher (scheduler thread).
  std::vector<PoolEvent> take_events();

  /// How long an offer may wait for a node before this node's own tasks queue behind it.
  static constexpr std::chrono::milliseconds kOfferPatience{500};

 private:
  /// True if a task this node offered has waited for a node longer than kOfferPatience.
  bool an_offer_waits_long() const;
  void free(unsigned slot);

  std::function<void(Offer)> offer_;
  std::function<void(std::uint64_t)> abandon_;
  std::function<void()> freed_here_;
  std::function<void()> wake_;
  RunHere run_here_;
  StopHere stop_here_;
  std::vector<std::uint64_t> tasks_ = std::vector<std::uint64_t>(kSlots, 0);  ///< 0: idle
  /// Where a slot's task is: running here, offered and waiting for a node, or taken by one.
  enum class Where : std::uint8_t { kNone, kHere, kOffered, kTaken };
  std::vector<Where> where_ = std::vector<Where>(kSlots, Where::kNone);
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> offered_at_ = std::vector<Clock::time_point>(kSlots);
  std::atomic<unsigned> running_here_{0};
  std::atomic<unsigned> reserved_{0};
  std::uint64_t next_task_ = 0;
  std::atomic<unsigned> window_{2};
  std::mutex mutex_;  ///< guards reported_
  std::vector<std::pair<std::uint64_t, PoolEvent>> reported_;
};

}  // namespace mrd::server::cluster
