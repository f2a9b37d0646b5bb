#include "server/cluster/task_runner.hpp"

#include <algorithm>
#include <system_error>

#include "server/log.hpp"

namespace mrd::server::cluster {

TaskRunner::TaskRunner(TaskPool& pool, Ended ended)
    : pool_(pool), ended_(std::move(ended)), running_(pool.size(), 0) {}

void TaskRunner::stop(std::uint64_t id) {
  const auto waiting = std::find_if(waiting_.begin(), waiting_.end(),
                                    [id](const TakenTask& task) { return task.id == id; });
  if (waiting != waiting_.end()) {
    waiting_.erase(waiting);
    return;
  }
  const auto slot = std::find(running_.begin(), running_.end(), id);
  if (slot == running_.end()) return;
  *slot = 0;
  const auto how = pool_.replace(static_cast<unsigned>(slot - running_.begin()));
  log(Level::kDebug, "cluster: a task's worker ", how, ": its job gave the task up");
}

void TaskRunner::start_waiting() {
  for (unsigned slot = 0; slot < running_.size() && !waiting_.empty(); ++slot) {
    if (running_[slot] != 0 || !pool_.idle(slot)) continue;
    auto task = std::move(waiting_.front());
    waiting_.pop_front();
    try {
      // The job's number is only a label for the pool: these tasks carry their bytes.
      pool_.send(slot, 0, task.type, std::move(task.body), std::move(task.charge), -1, -1);
      running_[slot] = task.id;
    } catch (const std::system_error& e) {
      // Nothing was attached, so this does not happen; if it did, the task is lost here and
      // its job's node runs it again.
      PoolEvent lost;
      lost.kind = PoolEvent::Kind::kLost;
      lost.slot = slot;
      lost.how = e.what();
      ended_(task.id, std::move(lost));
    }
  }
}

void TaskRunner::handle(std::vector<PoolEvent> events) {
  for (auto& event : events) {
    const auto id = std::exchange(running_[event.slot], 0);
    if (id != 0) ended_(id, std::move(event));  // else: an idle worker died, and was replaced
  }
}

}  // namespace mrd::server::cluster
