#include "server/job_store.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include "protocol/submit_layout.hpp"
#include "server/log.hpp"
#include "server/result_file.hpp"

namespace mrd::server {
namespace {
/// What a finished record costs besides its body: the table's node and bucket, the ticket and its
/// control block, the order queue's entry, with the allocator's headers (measured: see the test
/// BudgetTest.ManyTinyResultsCostNoMoreThanIsCounted).
constexpr std::uint64_t kRecordOverhead = 400;
/// What a body costs besides its bytes: the ResultBytes (a string, or a segment and its shared
/// pointer), the shared pointer's control block with its deleter, and their allocator headers.
constexpr std::uint64_t kBodyOverhead = 128;

/// A tenant's idempotency key, as the index holds it. Tenant names have no spaces
/// (auth_tokens.hpp), so the first space ends the tenant and no two pairs make the same string.
std::string key_of(std::string_view tenant, std::string_view idempotency_key) {
  std::string key;
  key.reserve(tenant.size() + 1 + idempotency_key.size());
  key.append(tenant).append(1, ' ').append(idempotency_key);
  return key;
}

/// Gives a body's bytes back to the retention total and the budget when its last holder is gone.
struct BodyRelease {
  std::shared_ptr<std::atomic<std::uint64_t>> body_bytes;
  std::shared_ptr<MemoryBudget> budget;
  std::uint64_t bytes = 0;

  void operator()(const ResultBytes* body) const {
    delete body;
    body_bytes->fetch_sub(bytes);
    budget->release(bytes);
  }
};
}  // namespace

std::shared_ptr<const ResultBytes> JobStore::counted_body(ResultBytes bytes) {
  const std::uint64_t cost = kBodyOverhead + bytes.held_bytes();
  // force: the result exists already (it was computed within the budget of its job).
  budget_->force_charge(cost);
  body_bytes_->fetch_add(cost);
  try {
    return std::shared_ptr<const ResultBytes>(new ResultBytes(std::move(bytes)),
                                              BodyRelease{body_bytes_, budget_, cost});
  } catch (...) {
    body_bytes_->fetch_sub(cost);
    budget_->release(cost);
    throw;
  }
}

protocol::JobProgress JobRecord::progress() const {
  auto p = ticket->progress();
  if (finished) p.state = final_state;
  return p;
}

void JobStore::persist(const char* what, std::uint32_t id, DatabaseWriter::Write write,
                       Recorded recorded, DatabaseWriter::Prepare prepare) {
  if (!writer_) {
    if (recorded) recorded("");
    return;
  }
  auto done = [what, id, recorded = std::move(recorded)](const std::string& error) {
    if (!error.empty()) log(Level::kError, "job ", id, ": cannot record ", what, ": ", error);
    if (recorded) recorded(error);
  };
  if (prepare) {
    writer_->enqueue_prepared(id, std::move(prepare), std::move(write), std::move(done));
  } else {
    writer_->enqueue(id, std::move(write), std::move(done));
  }
}

std::vector<JobStore::Restored> JobStore::restore() {
  std::vector<Restored> to_run;
  if (!database_) return to_run;
  std::uint32_t highest_id = 0;
  std::set<std::string> inputs_in_use, results_in_use;
  for (auto& stored : database_->load(highest_id)) {
    // What an unfinished job is can be read from its request; its times before the restart are
    // gone (they are not kept), and a finished job keeps its result, not these.
    JobFacts facts;
    if (const auto head = protocol::submit_head_from_prefix(stored.request)) {
      facts.mapper = head->layout.mapper;
      facts.reducer = head->layout.reducer;
      facts.input_bytes = stored.request.size();
    }
    auto ticket = std::make_shared<JobTicket>(stored.id, stored.tenant, std::move(facts));
    JobRecord record;
    record.ticket = ticket;
    record.idempotency_key = std::move(stored.idempotency_key);
    if (!record.idempotency_key.empty()) {
      ids_by_key_[key_of(stored.tenant, record.idempotency_key)] = {stored.id,
                                                                    stored.request_digest};
    }
    if (stored.state == protocol::JobState::kQueued) {
      if (!stored.input_file.empty()) {
        inputs_in_use.insert(std::filesystem::path(stored.input_file).filename().string());
      }
      count_unfinished(ticket->tenant, +1);
      const auto id = stored.id;
      to_run.push_back({ticket, std::move(stored)});
      jobs_.emplace(id, std::move(record));
      continue;
    }
    record.finished = true;
    record.final_state = stored.state;
    record.failure = stored.failure;
    if (!stored.result_file.empty()) {
      // Kept as a file: read back once it is checked. A file that is missing or damaged leaves
      // the job failed, saying why, rather than serving bytes that are not its result.
      results_in_use.insert(std::filesystem::path(stored.result_file).filename().string());
      try {
        stored.body = read_result_file(stored.result_file, stored.result_digest);
      } catch (const std::exception& e) {
        record.final_state = stored.state = protocol::JobState::kFailed;
        record.failure = protocol::Status::kJobFailed;
        stored.body = std::string("the stored result could not be read back: ") + e.what();
      }
    }
    record.body = counted_body(ResultBytes(std::move(stored.body)));
    ticket->state = stored.state;
    auto& placed = jobs_.emplace(stored.id, std::move(record)).first->second;
    retain(stored.id, placed);  // oldest first, so the cap evicts what it would have evicted
  }
  next_id_ = highest_id + 1;  // never reuse an id, even one whose row was evicted
  // Uploads the server was killed during, results written just before a kill (their rows were
  // not), and files whose removal a kill interrupted.
  if (const auto removed = remove_unused_files(database_->inputs(), inputs_in_use)) {
    log(Level::kInfo, "data directory: removed ", removed, " input files no job needs");
  }
  if (const auto removed = remove_unused_files(database_->results(), results_in_use)) {
    log(Level::kInfo, "data directory: removed ", removed, " result files no job needs");
  }
  return to_run;
}

std::optional<JobStore::KeyedJob> JobStore::find_by_key(std::string_view tenant,
                                                        std::string_view idempotency_key,
                                                        const RequestDigest& request_digest) const {
  if (idempotency_key.empty()) return std::nullopt;
  auto it = ids_by_key_.find(key_of(tenant, idempotency_key));
  if (it == ids_by_key_.end()) return std::nullopt;
  const auto& [id, digest] = it->second;
  return KeyedJob{id, !digest || *digest == request_digest};
}

void JobStore::create(const std::string& tenant, JobFacts facts, std::string_view idempotency_key,
                      const RequestDigest* request_digest, std::string_view request,
                      std::unique_ptr<ReceivedFile> input_file, Created recorded) {
  const auto id = next_id_++;
  facts.submitted_ms = unix_ms_now();
  facts.accepted_at = std::chrono::steady_clock::now();
  auto ticket = std::make_shared<JobTicket>(id, tenant, std::move(facts));
  JobRecord record;
  record.ticket = ticket;
  record.idempotency_key = idempotency_key;
  const auto digest = request_digest ? std::optional(*request_digest) : std::nullopt;
  if (!idempotency_key.empty()) ids_by_key_[key_of(tenant, idempotency_key)] = {id, digest};
  jobs_.emplace(id, std::move(record));
  count_unfinished(tenant, +1);
  ++submitted_;
  if (!writer_) return recorded(std::move(ticket), "");
  // Shared by the write (which renames the file) and its outcome (which removes it if the row was
  // not written): the writer's thread is done with it before the outcome runs.
  std::shared_ptr<ReceivedFile> file = std::move(input_file);
  auto write = [id, tenant, key = std::string(idempotency_key), digest, request,
                file](JobDatabase& db) {
    db.record_submitted(id, tenant, key, digest ? &*digest : nullptr, request, file.get());
  };
  auto done = [this, ticket = std::move(ticket), recorded = std::move(recorded),
               file](const std::string& error) mutable {
    if (error.empty()) return recorded(std::move(ticket), "");
    log(Level::kError, "job ", ticket->id, ": cannot record it: ", error);
    // Its file goes now, before its id may be handed out again and name another job's file.
    if (file) file->file->remove();
    // Nothing was written: the job never existed, unless it was cancelled meanwhile (then
    // it stays cancelled). Its id is handed out again if no later one was.
    auto it = jobs_.find(ticket->id);
    if (it != jobs_.end() && !it->second.finished) {
      forget_key(it->second);
      count_unfinished(it->second.ticket->tenant, -1);
      jobs_.erase(it);
      --submitted_;
      if (next_id_ == ticket->id + 1) next_id_ = ticket->id;
    }
    recorded(nullptr, error);
  };
  if (file && database_->sync() == JobDatabase::Sync::kFull) {
    // With --fsync the file's bytes reach the disk before the row that names it commits. That
    // takes 50 ms for 64 MiB, so it is done beside the writer, which meanwhile commits the rows
    // of other jobs instead of holding them all behind this one.
    writer_->enqueue_prepared(
        id, [file] { file->file->sync_data(); }, std::move(write), std::move(done));
  } else {
    writer_->enqueue(id, std::move(write), std::move(done));
  }
}

void JobStore::forget_key(const JobRecord& record) {
  if (!record.idempotency_key.empty()) {
    ids_by_key_.erase(key_of(record.ticket->tenant, record.idempotency_key));
  }
}

void JobStore::count_unfinished(const std::string& tenant, int change) {
  if (change > 0) {
    ++unfinished_;
    ++unfinished_by_tenant_[tenant];
    return;
  }
  --unfinished_;
  const auto it = unfinished_by_tenant_.find(tenant);
  if (--it->second == 0) unfinished_by_tenant_.erase(it);  // a tenant gone quiet costs nothing
}

std::uint64_t JobStore::unfinished(const std::string& tenant) const {
  const auto it = unfinished_by_tenant_.find(tenant);
  return it == unfinished_by_tenant_.end() ? 0 : it->second;
}

void JobStore::finish(JobOutcome outcome) {
  auto it = jobs_.find(outcome.id);
  if (it == jobs_.end() || it->second.finished) return;  // cancelled meanwhile
  const auto id = outcome.id;
  const auto status = outcome.status;
  auto body = counted_body(outcome.segment ? ResultBytes(std::move(outcome.segment))
                                           : ResultBytes(std::move(outcome.body)));
  if (!writer_) return apply_finish(id, status, std::move(body));  // nothing to wait for
  const auto state =
      status == protocol::Status::kOk ? protocol::JobState::kDone : protocol::JobState::kFailed;
  // FETCH shows the result once it is on disk: a client that saw it sees it after a restart.
  auto recorded = [this, id, status, body](const std::string&) { apply_finish(id, status, body); };
  if (body->bytes().size() < kResultFileBytes) {
    return persist(
        "its result", id,
        [id, state, status, body](JobDatabase& db) {
          db.record_finished(id, state, status, body->bytes());
        },
        std::move(recorded));
  }
  // A big result goes to a file of its own, written beside the database writer, which meanwhile
  // commits other jobs' rows; then its row names the file (result_file.hpp).
  auto file = std::make_shared<ResultFileRef>();
  file->name = result_file_name(id);
  const bool sync = database_->sync() == JobDatabase::Sync::kFull;
  persist(
      "its result", id,
      [id, state, status, file](JobDatabase& db) {
        db.record_finished(id, state, status, {}, file.get());
      },
      std::move(recorded),
      [directory = database_->results(), file, body, sync] {
        file->digest = write_result_file(directory, file->name, body->bytes(), sync);
      });
}

void JobStore::apply_finish(std::uint32_t id, protocol::Status status,
                            std::shared_ptr<const ResultBytes> body) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.finished) return;  // cancelled meanwhile
  auto& record = it->second;
  const bool done = status == protocol::Status::kOk;
  record.finished = true;
  record.final_state = done ? protocol::JobState::kDone : protocol::JobState::kFailed;
  record.failure = status;
  record.body = std::move(body);
  count_unfinished(record.ticket->tenant, -1);
  ++(done ? done_ : failed_);
  finished_now(*record.ticket);
  retain(id, record);
}

void JobStore::finished_now(JobTicket& ticket) {
  ticket.finished_ms = unix_ms_now();
  // A job from before a restart has no start to count from.
  if (ticket.facts.accepted_at && !ticket.cancelled) {
    job_us_.add(std::chrono::steady_clock::now() - *ticket.facts.accepted_at);
  }
}

protocol::JobDetails JobStore::details(const JobRecord& record) {
  const auto& ticket = *record.ticket;
  protocol::JobDetails out;
  out.progress = record.progress();
  out.mapper = ticket.facts.mapper;
  out.reducer = ticket.facts.reducer;
  out.tenant = ticket.tenant;
  out.input_bytes = ticket.facts.input_bytes;
  out.submitted_ms = ticket.facts.submitted_ms;
  out.started_ms = ticket.started_ms;
  out.finished_ms = ticket.finished_ms;
  if (out.progress.state == protocol::JobState::kFailed && record.body) {
    out.failure = std::string(record.body->bytes());
  }
  return out;
}

void JobStore::retain(std::uint32_t id, JobRecord& record) {
  // A key is held twice (in the record and in the index by key), the index with its own node;
  // the tenant's name is in the ticket, and in the key.
  const auto tenant = record.ticket->tenant.capacity();
  const auto key = record.idempotency_key.capacity() + tenant;
  record.retained = kRecordOverhead + tenant + (record.idempotency_key.empty() ? 0 : 2 * key + 64);
  record_bytes_ += record.retained;
  finished_order_.push_back(id);
  evict_over_cap();
}

void JobStore::evict_over_cap() {
  // The newest finished job stays, even alone over the cap: evicting a result the moment it is
  // made would leave its client nothing to fetch.
  while (retained_bytes() > max_retained_bytes_ && finished_order_.size() > 1) {
    const auto id = finished_order_.front();
    finished_order_.pop_front();
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    record_bytes_ -= it->second.retained;  // its body counts until its last holder lets it go
    forget_key(it->second);
    jobs_.erase(it);
    ++expired_;
    persist("its eviction", id, [id](JobDatabase& db) { db.record_evicted(id); });
  }
}

JobStore::Lookup JobStore::find(std::uint32_t id, const JobScope& scope,
                                const JobRecord*& record) const {
  auto it = jobs_.find(id);
  if (it != jobs_.end() && scope.includes(it->second.ticket->tenant)) {
    record = &it->second;
    return Lookup::kFound;
  }
  record = nullptr;
  return missing(id);
}

JobStore::Lookup JobStore::cancel(std::uint32_t id, const JobScope& scope, bool& was_running,
                                  Recorded recorded) {
  was_running = false;
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !scope.includes(it->second.ticket->tenant)) return missing(id);
  auto& record = it->second;
  if (record.finished && record.final_state == protocol::JobState::kCancelled) {
    recorded("");
    return Lookup::kFound;
  }
  record.ticket->cancelled = true;
  ++cancelled_;
  forget_key(record);
  record.idempotency_key.clear();
  persist(
      "its cancellation", id, [id](JobDatabase& db) { db.record_cancelled(id); },
      std::move(recorded));
  if (!record.finished) {
    was_running = true;
    count_unfinished(record.ticket->tenant, -1);
    record.finished = true;
    record.final_state = protocol::JobState::kCancelled;
    finished_now(*record.ticket);
    retain(id, record);
    return Lookup::kFound;
  }
  // A finished job: release its result, keep a small record so FETCH can say "cancelled".
  record.body.reset();  // replies being written keep their own reference, counted, until done
  record.final_state = protocol::JobState::kCancelled;
  return Lookup::kFound;
}

protocol::TenantJobList JobStore::list(const JobScope& scope) const {
  protocol::TenantJobList list;
  for (const auto& [id, record] : jobs_) {
    if (scope.includes(record.ticket->tenant)) {
      list.jobs.push_back({id, record.progress().state, record.ticket->tenant});
    }
  }
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
  stats.retained_result_bytes = retained_bytes();
}

}  // namespace mrd::server
