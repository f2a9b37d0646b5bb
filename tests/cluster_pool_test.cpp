// ClusterPool and TaskRunner, without Redis or processes: a node's own task starts on one of its
// workers when one is free (and no other node's task waits for it), else it is offered to the
// cluster; giving a task up reaches whichever place it went.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "server/cluster/cluster_pool.hpp"
#include "server/cluster/task_runner.hpp"

namespace mrd::server::cluster {
namespace {

using namespace std::chrono_literals;

/// Workers that take a task and answer when told to.
class Workers final : public TaskPool {
 public:
  explicit Workers(unsigned n) : busy_(n, false) {}
  unsigned size() const override { return static_cast<unsigned>(busy_.size()); }
  bool idle(unsigned slot) const override { return !busy_[slot]; }
  void send(unsigned slot, std::uint32_t, TaskMessageType, std::string body, MemoryCharge, int,
            int) override {
    busy_[slot] = true;
    bodies.push_back(std::move(body));
  }
  std::string replace(unsigned slot) override {
    busy_[slot] = false;
    ++replaced;
    return "killed";
  }
  /// The slot's worker answers `body`.
  PoolEvent answer(unsigned slot, std::string body) {
    busy_[slot] = false;
    PoolEvent event;
    event.slot = slot;
    event.answer.body = std::move(body);
    return event;
  }
  std::vector<std::string> bodies;
  int replaced = 0;

 private:
  std::vector<bool> busy_;
};

/// One event, as the pool reports them.
std::vector<PoolEvent> just(PoolEvent event) {
  std::vector<PoolEvent> events;
  events.push_back(std::move(event));
  return events;
}

struct Node {
  Node()
      : runner(
            workers, [this](std::uint64_t id, PoolEvent) { taken_ended.push_back(id); },
            [this](std::uint64_t task, PoolEvent event) { pool.report(task, std::move(event)); }),
        pool([this](ClusterPool::Offer offer) { offered.push_back(offer.body); },
             [this](std::uint64_t task) { abandoned.push_back(task); }, [this] { ++freed; }) {
    pool.run_here(
        [this](std::uint64_t task, TaskMessageType type, std::string& body, MemoryCharge& charge) {
          return runner.run_now(task, type, body, charge, pool.reserved());
        },
        [this](std::uint64_t task) { runner.stop(task, true); });
    pool.set_window(8);
  }
  Workers workers{1};
  TaskRunner runner;
  ClusterPool pool;
  std::vector<std::string> offered;
  std::vector<std::uint64_t> abandoned;
  std::vector<std::uint64_t> taken_ended;
  int freed = 0;
};

TEST(ClusterPool, AnOwnTaskRunsHereWhileAWorkerIsFreeAndIsOfferedOtherwise) {
  Node node;
  node.pool.send(0, 1, TaskMessageType::kMap, "first", {}, -1, -1);
  node.pool.send(1, 1, TaskMessageType::kMap, "second", {}, -1, -1);
  EXPECT_EQ(node.workers.bodies, std::vector<std::string>{"first"});
  EXPECT_EQ(node.offered, std::vector<std::string>{"second"});
  EXPECT_EQ(node.pool.running_here(), 1u);
  EXPECT_FALSE(node.pool.idle(0));

  // The worker answers: the dispatcher hears it from slot 0, and the worker is free again.
  node.runner.handle(just(node.workers.answer(0, "output")));
  const auto events = node.pool.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].slot, 0u);
  EXPECT_EQ(events[0].answer.body, "output");
  EXPECT_EQ(node.pool.running_here(), 0u);
  EXPECT_EQ(node.freed, 1);
  EXPECT_TRUE(node.pool.idle(0));
}

TEST(ClusterPool, OnceAnOfferHasWaitedLongLaterTasksAreOfferedBehindIt) {
  Node node;
  node.pool.send(0, 1, TaskMessageType::kMap, "first", {}, -1, -1);   // here
  node.pool.send(1, 1, TaskMessageType::kMap, "second", {}, -1, -1);  // offered: no worker
  node.runner.handle(just(node.workers.answer(0, "done")));
  ASSERT_EQ(node.pool.take_events().size(), 1u);
  // "second" has waited past the pool's patience: a worker is free, but "third" goes behind it.
  std::this_thread::sleep_for(ClusterPool::kOfferPatience + 100ms);
  node.pool.send(0, 1, TaskMessageType::kMap, "third", {}, -1, -1);
  EXPECT_EQ(node.offered, (std::vector<std::string>{"second", "third"}));
  // Once the offered ones are taken (the nodes running them say so), tasks run here again.
  for (const std::uint64_t task : {2, 3}) {
    PoolEvent started;
    started.kind = PoolEvent::Kind::kStarted;
    node.pool.report(task, std::move(started));
  }
  EXPECT_EQ(node.pool.take_events().size(), 2u);
  node.pool.send(2, 1, TaskMessageType::kMap, "fourth", {}, -1, -1);
  EXPECT_EQ(node.workers.bodies, (std::vector<std::string>{"first", "fourth"}));
}

TEST(ClusterPool, AWorkerIsKeptForATaskTakenFromTheStreamWhileItLoads) {
  Node node;
  node.pool.reserve();
  node.pool.send(0, 1, TaskMessageType::kMap, "ours", {}, -1, -1);
  EXPECT_EQ(node.offered, std::vector<std::string>{"ours"});
  EXPECT_TRUE(node.workers.bodies.empty());
  node.pool.unreserve();
  node.runner.add({9, TaskMessageType::kMap, "theirs", {}});
  node.runner.start_waiting();
  EXPECT_EQ(node.workers.bodies, std::vector<std::string>{"theirs"});
}

TEST(ClusterPool, AnotherNodesWaitingTaskGoesFirst) {
  Node node;
  node.runner.add({7, TaskMessageType::kMap, "theirs", {}});
  node.pool.send(0, 1, TaskMessageType::kMap, "ours", {}, -1, -1);
  EXPECT_EQ(node.offered, std::vector<std::string>{"ours"});
  node.runner.start_waiting();
  EXPECT_EQ(node.workers.bodies, std::vector<std::string>{"theirs"});
  node.runner.handle(just(node.workers.answer(0, "done")));
  EXPECT_EQ(node.taken_ended, std::vector<std::uint64_t>{7});
  EXPECT_TRUE(node.pool.take_events().empty());  // theirs is not this node's dispatcher's
}

TEST(ClusterPool, GivingATaskUpKillsItsWorkerHereOrAbandonsItsOffer) {
  Node node;
  node.pool.send(0, 1, TaskMessageType::kMap, "here", {}, -1, -1);
  node.pool.send(1, 1, TaskMessageType::kMap, "offered", {}, -1, -1);
  node.pool.replace(0);
  EXPECT_EQ(node.workers.replaced, 1);
  EXPECT_EQ(node.pool.running_here(), 0u);
  node.pool.replace(1);
  ASSERT_EQ(node.abandoned.size(), 1u);
  // A late answer of the abandoned task is not reported.
  PoolEvent late;
  node.pool.report(node.abandoned[0], std::move(late));
  EXPECT_TRUE(node.pool.take_events().empty());
}

TEST(ClusterPool, AStartedTaskKeepsItsSlot) {
  Node node;
  node.workers.send(0, 0, TaskMessageType::kMap, "busy", {}, -1, -1);  // no worker free
  node.pool.send(3, 1, TaskMessageType::kMap, "offered", {}, -1, -1);
  EXPECT_EQ(node.offered.size(), 1u);
  // Its task numbers count from 1: the first offered is 1.
  PoolEvent started;
  started.kind = PoolEvent::Kind::kStarted;
  node.pool.report(1, std::move(started));
  const auto events = node.pool.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].slot, 3u);
  EXPECT_FALSE(node.pool.idle(3));
}

}  // namespace
}  // namespace mrd::server::cluster
