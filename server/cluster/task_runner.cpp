#include "server/cluster/task_runner.hpp"

#include <algorithm>
#include <system_error>

#include "server/log.hpp"

namespace mrd::server::cluster {

TaskRunner::TaskRunner(TaskPool& pool, Ended taken_ended, Ended own_ended)
    : pool_(pool),
      taken_ended_(std::move(taken_ended)),
      own_ended_(std::move(own_ended)),
      running_(pool.size()) {}

unsigned TaskRunner::idle_slot() const {
  for (unsigned slot = 0; slot < running_.size(); ++slot) {
    if (running_[slot].id == 0 && pool_.idle(slot)) return slot;
  }
  return static_cast<unsigned>(running_.size());
}

bool TaskRunner::run_now(std::uint64_t id, TaskMessageType type, std::string& body,
                         MemoryCharge& charge, unsigned keep_free) {
  if (!waiting_.empty()) return false;  // another node's task was here first
  // An idle worker beyond the `keep_free` kept for tasks taken from the stream, on their way.
  unsigned idle = 0, slot = 0;
  for (unsigned s = 0; s < running_.size(); ++s) {
    if (running_[s].id == 0 && pool_.idle(s) && idle++ == keep_free) slot = s;
  }
  if (idle <= keep_free) return false;
  try {
    pool_.send(slot, 0, type, std::move(body), std::move(charge), -1, -1);
  } catch (const std::system_error&) {
    return false;  // nothing was attached, so this does not happen; the task is offered instead
  }
  running_[slot] = {id, true};
  return true;
}

void TaskRunner::stop(std::uint64_t id, bool own) {
  if (!own) {
    const auto waiting = std::find_if(waiting_.begin(), waiting_.end(),
                                      [id](const TakenTask& task) { return task.id == id; });
    if (waiting != waiting_.end()) {
      waiting_.erase(waiting);
      return;
    }
  }
  const auto slot = std::find_if(running_.begin(), running_.end(), [id, own](const Running& r) {
    return r.id == id && r.own == own;
  });
  if (slot == running_.end()) return;
  *slot = {};
  const auto how = pool_.replace(static_cast<unsigned>(slot - running_.begin()));
  log(Level::kDebug, "cluster: a task's worker ", how, ": its job gave the task up");
}

void TaskRunner::start_waiting() {
  while (!waiting_.empty()) {
    const auto slot = idle_slot();
    if (slot == running_.size()) return;
    auto task = std::move(waiting_.front());
    waiting_.pop_front();
    try {
      // The job's number is only a label for the pool: these tasks carry their bytes.
      pool_.send(slot, 0, task.type, std::move(task.body), std::move(task.charge), -1, -1);
      running_[slot] = {task.id, false};
    } catch (const std::system_error& e) {
      // Nothing was attached, so this does not happen; if it did, the task is lost here and
      // its job's node runs it again.
      PoolEvent lost;
      lost.kind = PoolEvent::Kind::kLost;
      lost.slot = slot;
      lost.how = e.what();
      taken_ended_(task.id, std::move(lost));
    }
  }
}

void TaskRunner::handle(std::vector<PoolEvent> events) {
  for (auto& event : events) {
    const auto task = std::exchange(running_[event.slot], {});
    if (task.id == 0) continue;  // an idle worker died, and was replaced
    (task.own ? own_ended_ : taken_ended_)(task.id, std::move(event));
  }
}

}  // namespace mrd::server::cluster
