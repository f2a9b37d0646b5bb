// TenantTurns: whose task runs next. Tenants take turns first, then each tenant's jobs take turns
// among themselves, so that a tenant with a thousand jobs waiting gets one turn in two against a
// tenant with one job, not a thousand in a thousand and one.
//
// A server without tokens has one tenant (""), and this is plain round robin between jobs.
#pragma once

#include <deque>
#include <string>
#include <unordered_map>
#include <utility>

namespace mrd::server {

template <class Job>
class TenantTurns {
 public:
  bool empty() const { return rotation_.empty(); }

  /// Queues `job` at the back of its tenant's line; a tenant with no line joins the rotation last.
  void push_back(const std::string& tenant, Job job) {
    auto& line = lines_[tenant];
    if (line.empty()) rotation_.push_back(tenant);
    line.push_back(std::move(job));
  }

  /// Queues `job` first of all: its tenant's next turn is the next turn, and it is that turn's job
  /// (for a job that lost its turn through no fault of its own).
  void push_front(const std::string& tenant, Job job) {
    auto& line = lines_[tenant];
    if (!line.empty()) std::erase(rotation_, tenant);
    rotation_.push_front(tenant);
    line.push_front(std::move(job));
  }

  /// Takes the job whose turn it is: the first of the next tenant's line. That tenant then waits
  /// behind every other. Call only when not empty().
  Job pop_front() {
    const auto it = lines_.find(rotation_.front());
    rotation_.pop_front();
    auto& line = it->second;
    Job job = std::move(line.front());
    line.pop_front();
    if (line.empty()) {
      lines_.erase(it);
    } else {
      rotation_.push_back(it->first);
    }
    return job;
  }

  /// The job whose turn it is, left in its place. Call only when not empty().
  const Job& front() const { return lines_.at(rotation_.front()).front(); }

  /// Removes every job `drop(job)` is true of.
  template <class Predicate>
  void erase_if(Predicate drop) {
    for (auto it = lines_.begin(); it != lines_.end();) {
      std::erase_if(it->second, drop);
      if (it->second.empty()) {
        std::erase(rotation_, it->first);
        it = lines_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  std::unordered_map<std::string, std::deque<Job>> lines_;  ///< tenants with jobs waiting
  std::deque<std::string> rotation_;  ///< the tenants in lines_, whose turn is next first
};

}  // namespace mrd::server
