#include "server/job_store.hpp"

#include <algorithm>

namespace mrd::server {
namespace {
/// What a finished record costs besides its body: the table entry, the ticket, the order queue.
constexpr std::uint64_t kRecordOverhead = 160;
}  // namespace

protocol::JobProgress JobRecord::progress() const {
  auto p = ticket->progress();
  if (finished) p.state = final_state;
  return p;
}

std::shared_ptr<JobTicket> JobStore::create() {
  const auto id = next_id_++;
  auto ticket = std::make_shared<JobTicket>(id);
  JobRecord record;
  record.ticket = ticket;
  jobs_.emplace(id, std::move(record));
  ++unfinished_;
  ++submitted_;
  return ticket;
}

void JobStore::finish(JobOutcome outcome) {
  auto it = jobs_.find(outcome.id);
  if (it == jobs_.end() || it->second.finished) return;  // cancelled meanwhile
  auto& record = it->second;
  const bool done = outcome.status == protocol::Status::kOk;
  record.finished = true;
  record.final_state = done ? protocol::JobState::kDone : protocol::JobState::kFailed;
  record.failure = outcome.status;
  record.body = std::move(outcome.body);
  --unfinished_;
  ++(done ? done_ : failed_);
  retain(outcome.id, record);
}

void JobStore::retain(std::uint32_t id, JobRecord& record) {
  record.retained = kRecordOverhead + record.body.size();
  retained_bytes_ += record.retained;
  finished_order_.push_back(id);
  evict_over_cap();
}

void JobStore::evict_over_cap() {
  while (retained_bytes_ > max_retained_bytes_ && !finished_order_.empty()) {
    const auto id = finished_order_.front();
    finished_order_.pop_front();
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    retained_bytes_ -= it->second.retained;
    jobs_.erase(it);
    ++expired_;
  }
}

JobStore::Lookup JobStore::find(std::uint32_t id, const JobRecord*& record) const {
  auto it = jobs_.find(id);
  if (it != jobs_.end()) {
    record = &it->second;
    return Lookup::kFound;
  }
  record = nullptr;
  return (id != 0 && id < next_id_) ? Lookup::kExpired : Lookup::kUnknown;
}

JobStore::Lookup JobStore::cancel(std::uint32_t id, bool& was_running) {
  was_running = false;
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return (id != 0 && id < next_id_) ? Lookup::kExpired : Lookup::kUnknown;
  auto& record = it->second;
  if (record.finished && record.final_state == protocol::JobState::kCancelled)
    return Lookup::kFound;
  record.ticket->cancelled = true;
  ++cancelled_;
  if (!record.finished) {
    was_running = true;
    --unfinished_;
    record.finished = true;
    record.final_state = protocol::JobState::kCancelled;
    retain(id, record);
    return Lookup::kFound;
  }
  // A finished job: release its result, keep a small record so FETCH can say "cancelled".
  retained_bytes_ -= record.body.size();
  record.retained -= record.body.size();
  record.body.clear();
  record.body.shrink_to_fit();
  record.final_state = protocol::JobState::kCancelled;
  return Lookup::kFound;
}

protocol::JobList JobStore::list() const {
  protocol::JobList list;
  list.jobs.reserve(jobs_.size());
  for (const auto& [id, record] : jobs_)
    list.jobs.push_back({id, record.progress().state});
  std::sort(list.jobs.begin(), list.jobs.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return list;
}

void JobStore::fill_stats(protocol::ServerStats& stats) const {
  stats.jobs_submitted = submitted_;
  stats.jobs_done = done_;
  stats.jobs_failed = failed_;
  stats.jobs_cancelled = cancelled_;
  stats.jobs_expired = expired_;
  stats.jobs_unfinished = unfinished_;
  stats.retained_result_bytes = retained_bytes_;
}

}  // namespace mrd::server
