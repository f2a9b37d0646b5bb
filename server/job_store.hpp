// The job table: every job the server remembers, owned by the network thread alone.
//
// Ids are handed out in order from 1, so an id below the next one that is no longer in the table
// was evicted (expired), and any other id was never issued (unknown): no tombstones needed.
// Finished jobs are kept, result and all, until their total size passes the retention cap; then
// the oldest finished ones are evicted first, though never the newest: a result larger than the
// cap is kept until the next job finishes, so that its client can fetch it.
//
// Every job belongs to the tenant that submitted it (its ticket says which). Lookups take the
// caller's scope (job_scope.hpp): a job out of it is answered as missing, with the same answer a
// job that does not exist would get. Idempotency keys are each tenant's own.
//
// Retention counts what the records really cost: the table's entries and each result's bytes for
// as long as anything holds them. A result that replies being written still share stays counted
// after its eviction or cancellation (in the retention total and in the memory budget) until the
// last of those replies lets it go.
//
// With a JobDatabase every change is also written there (see job_database.hpp), by the
// DatabaseWriter's thread so that the network thread never waits for the disk, and restore()
// rebuilds the table after a restart. A job's row is committed before its SUBMIT is answered, and
// its result before FETCH shows it: what a client was told survives a SIGKILL. Without a database
// the table is all there is: volatile.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/messages.hpp"
#include "server/database_writer.hpp"
#include "server/job_database.hpp"
#include "server/job_scope.hpp"
#include "server/job_ticket.hpp"
#include "server/latency_histogram.hpp"
#include "server/memory_budget.hpp"
#include "server/result_bytes.hpp"
#include "server/scheduler.hpp"

namespace mrd::server {

/// What the store knows about one job.
struct JobRecord {
  std::shared_ptr<JobTicket> ticket;
  protocol::JobState final_state = protocol::JobState::kQueued;  ///< set once finished
  bool finished = false;
  protocol::Status failure = protocol::Status::kOk;  ///< for kFailed: how FETCH reports it
  /// kDone: the encoded JobResult; kFailed: the reason. Shared with replies being written.
  std::shared_ptr<const ResultBytes> body;
  std::string idempotency_key;  ///< empty if the client gave none
  std::uint64_t retained = 0;   ///< bytes of the record itself (its body counts apart)

  protocol::JobProgress progress() const;
};

class JobStore {
 public:
  /// `database` may be null (volatile); otherwise it and `writer`, which writes to it, must
  /// outlive the store. Results are charged to `budget` while they exist.
  JobStore(std::uint64_t max_retained_bytes, JobDatabase* database, DatabaseWriter* writer,
           std::shared_ptr<MemoryBudget> budget)
      : max_retained_bytes_(max_retained_bytes),
        database_(database),
        writer_(writer),
        budget_(std::move(budget)) {}

  /// Called once what a request changed is on disk (or at once without a database): empty, or
  /// what failed.
  using Recorded = std::function<void(const std::string& error)>;

  /// An unfinished job found after a restart, to run again.
  struct Restored {
    std::shared_ptr<JobTicket> ticket;
    StoredJob stored;  ///< its SUBMIT body: `request`, or the file named by `input_file`
  };

  /// Rebuilds the table from the database after a restart. Returns the unfinished jobs to run
  /// again, and removes every input file that none of them names.
  std::vector<Restored> restore();

  /// A remembered job submitted with some idempotency key.
  struct KeyedJob {
    std::uint32_t id = 0;
    bool same_request = true;  ///< false: the key came with a different SUBMIT body then
  };

  /// The job `tenant` submitted with this idempotency key, if it is still remembered, and
  /// whether it was the request whose digest is given.
  std::optional<KeyedJob> find_by_key(std::string_view tenant, std::string_view idempotency_key,
                                      const RequestDigest& request_digest) const;

  /// Called once a new job's row is committed (at once without a database): its ticket, or null
  /// and what failed.
  using Created = std::function<void(std::shared_ptr<JobTicket> ticket, const std::string& error)>;

  /// A new queued job of `tenant` with the next id. `recorded` is called once its row is committed
  /// (at once without a database): only then may the caller acknowledge the id and run the job. If
  /// the write failed, the job is forgotten before `recorded` hears why. `request` must stay valid
  /// until then (`recorded` may own it). `request_digest` comes with a key (null without).
  /// `input_file`, if the body was received into one, is what the row keeps instead of `request`;
  /// it stays on disk while the job's row names it, and is removed if that row is not written.
  /// `facts` say what the job is, for STATUS's details.
  void create(const std::string& tenant, JobFacts facts, std::string_view idempotency_key,
              const RequestDigest* request_digest, std::string_view request,
              std::unique_ptr<ReceivedFile> input_file, Created recorded);

  /// Records how a job ended (called with the scheduler's outcome, on the network thread). With
  /// a database the job shows as finished once that is committed.
  void finish(JobOutcome outcome);

  enum class Lookup { kFound, kUnknown, kExpired };

  /// The job's record, or why there is none; a job out of `scope` is missing too.
  Lookup find(std::uint32_t id, const JobScope& scope, const JobRecord*& record) const;

  /// Cancels a job: an unfinished one stops (the caller tells the scheduler), a finished one's
  /// result is released. Either way it is remembered as cancelled. kFound if it was there; then
  /// `recorded` is called once that is committed (at once without a database). A job out of
  /// `scope` is missing, and stays as it was.
  Lookup cancel(std::uint32_t id, const JobScope& scope, bool& was_running, Recorded recorded);

  /// The jobs in `scope`, by id, with their tenants.
  protocol::TenantJobList list(const JobScope& scope) const;

  std::uint64_t unfinished() const { return unfinished_; }
  /// Jobs of `tenant` queued or running.
  std::uint64_t unfinished(const std::string& tenant) const;

  /// How long finished jobs took, accepted to done or failed (STATS's details).
  const LatencyHistogram& job_latencies() const { return job_us_; }

  /// STATUS's details of a job `find` found.
  static protocol::JobDetails details(const JobRecord& record);

  /// True if changes are written to a database (and requests wait for their commit).
  bool durable() const { return writer_ != nullptr; }

  /// Counters for STATS.
  void fill_stats(protocol::ServerStats& stats) const;

 private:
  void retain(std::uint32_t id, JobRecord& record);
  /// A result or failure reason as a shared body, counted (in body_bytes_ and the budget) until
  /// its last holder, the table or a reply being written, lets it go.
  std::shared_ptr<const ResultBytes> counted_body(ResultBytes bytes);
  /// Bytes retained: the records in the table and every result body still alive.
  std::uint64_t retained_bytes() const { return record_bytes_ + body_bytes_->load(); }
  void evict_over_cap();
  /// What an id that is not in the table (or not in scope) is: evicted or never handed out.
  Lookup missing(std::uint32_t id) const {
    return (id != 0 && id < next_id_) ? Lookup::kExpired : Lookup::kUnknown;
  }
  /// One more (+1) or one fewer (-1) unfinished job, of `tenant`.
  void count_unfinished(const std::string& tenant, int change);
  /// Stamps the job's finishing time, and counts its duration unless it was cancelled.
  void finished_now(JobTicket& ticket);
  void forget_key(const JobRecord& record);
  /// Queues a database write; a failure is logged, not thrown: the job's state in memory is right,
  /// and at worst the job runs again after a restart. `recorded`, if given, is called after it.
  /// `prepare`, if given, runs first, beside the writer (DatabaseWriter::enqueue_prepared).
  void persist(const char* what, std::uint32_t id, DatabaseWriter::Write write,
               Recorded recorded = {}, DatabaseWriter::Prepare prepare = {});
  /// The finished job's new state, once its result is recorded.
  void apply_finish(std::uint32_t id, protocol::Status status,
                    std::shared_ptr<const ResultBytes> body);

  std::uint64_t max_retained_bytes_;
  JobDatabase* database_;
  DatabaseWriter* writer_;
  std::shared_ptr<MemoryBudget> budget_;
  /// Per tenant and idempotency key (key_of in job_store.cpp): the job's id and the digest of its
  /// request (none for a job stored by a version that kept no digest: such a key matches any
  /// request, the rule it was accepted under).
  std::unordered_map<std::string, std::pair<std::uint32_t, std::optional<RequestDigest>>>
      ids_by_key_;
  std::uint32_t next_id_ = 1;
  std::unordered_map<std::uint32_t, JobRecord> jobs_;
  std::deque<std::uint32_t> finished_order_;  ///< oldest finished first, for eviction
  std::uint64_t record_bytes_ = 0;            ///< the records of finished jobs in the table
  /// Result bodies alive, in the table or not; shared with their deleters, which may run after
  /// the store is gone (a reply destroyed with the io_context).
  std::shared_ptr<std::atomic<std::uint64_t>> body_bytes_ =
      std::make_shared<std::atomic<std::uint64_t>>(0);
  std::uint64_t unfinished_ = 0;
  std::unordered_map<std::string, std::uint64_t> unfinished_by_tenant_;  ///< tenants with some
  std::uint64_t submitted_ = 0, done_ = 0, failed_ = 0, cancelled_ = 0, expired_ = 0;
  LatencyHistogram job_us_;
};

}  // namespace mrd::server
