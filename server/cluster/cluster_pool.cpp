#include "server/cluster/cluster_pool.hpp"

#include <algorithm>
#include <stdexcept>

namespace mrd::server::cluster {

ClusterPool::ClusterPool(std::function<void(Offer)> offer,
                         std::function<void(std::uint64_t)> abandon,
                         std::function<void()> freed_here)
    : offer_(std::move(offer)), abandon_(std::move(abandon)), freed_here_(std::move(freed_here)) {}

void ClusterPool::send(unsigned slot, std::uint32_t job, TaskMessageType type, std::string body,
                       MemoryCharge charge, int attached, int result) {
  if (attached >= 0 || result >= 0) {
    throw std::logic_error("a task offered to the cluster must carry its bytes");
  }
  tasks_[slot] = ++next_task_;
  // Not while a task offered earlier has waited long for a node: then this node's workers are
  // busy with its own tasks, and so are the others' with theirs, and it would wait on behind this
  // node's later tasks. Its workers take what waits in the stream, in order, from then on.
  if (!an_offer_waits_long() && run_here_ && run_here_(tasks_[slot], type, body, charge)) {
    where_[slot] = Where::kHere;
    running_here_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  where_[slot] = Where::kOffered;
  offered_at_[slot] = Clock::now();
  offer_({tasks_[slot], job, type, std::move(body), std::move(charge)});
}

void ClusterPool::free(unsigned slot) {
  tasks_[slot] = 0;
  if (where_[slot] == Where::kHere) {
    running_here_.fetch_sub(1, std::memory_order_relaxed);
    if (freed_here_) freed_here_();
  }
  where_[slot] = Where::kNone;
}

bool ClusterPool::an_offer_waits_long() const {
  const auto since = Clock::now() - kOfferPatience;
  for (unsigned slot = 0; slot < kSlots; ++slot) {
    if (where_[slot] == Where::kOffered && offered_at_[slot] < since) return true;
  }
  return false;
}

std::string ClusterPool::replace(unsigned slot) {
  const auto task = tasks_[slot];
  const bool here = where_[slot] == Where::kHere;
  free(slot);
  if (task == 0) return "idle";
  if (here) {
    if (stop_here_) stop_here_(task);
    return "killed (its task was given up)";
  }
  abandon_(task);
  return "given up (the node running it is told to stop)";
}

void ClusterPool::report(std::uint64_t task, PoolEvent event) {
  {
    std::lock_guard lock(mutex_);
    reported_.emplace_back(task, std::move(event));
  }
  if (wake_) wake_();
}

void ClusterPool::set_window(unsigned slots) {
  const auto before = window_.exchange(std::clamp(slots, 1u, kSlots), std::memory_order_relaxed);
  // More slots: the dispatcher may hand out tasks now (another node came up).
  if (slots > before && wake_) wake_();
}

std::vector<PoolEvent> ClusterPool::take_events() {
  std::vector<std::pair<std::uint64_t, PoolEvent>> reported;
  {
    std::lock_guard lock(mutex_);
    reported.swap(reported_);
  }
  std::vector<PoolEvent> events;
  for (auto& [task, event] : reported) {
    const auto slot = std::find(tasks_.begin(), tasks_.end(), task);
    if (slot == tasks_.end()) continue;  // given up meanwhile
    const auto index = static_cast<unsigned>(slot - tasks_.begin());
    if (event.kind != PoolEvent::Kind::kStarted) {
      free(index);
    } else if (where_[index] == Where::kOffered) {
      where_[index] = Where::kTaken;
    }
    event.slot = index;
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace mrd::server::cluster
