// JobDatabase: accepted jobs and their results on disk, in SQLite (WAL mode), so that a server
// killed with SIGKILL and started again loses nothing it acknowledged.
//
// The network thread is its only user. What is written when:
//   SUBMIT accepted  -> a row with the SUBMIT body, committed *before* the reply carries the id;
//                       a big body received into a file names that file instead (input_file.hpp)
//   job finished     -> the row gets its result (or reason) and drops the request (and its
//                       input file, removed once that is committed); a big result is written
//                       to a file first, which the row names instead (result_file.hpp)
//   job cancelled    -> the row is marked cancelled and drops request and result (and the files)
//   job evicted      -> the row is deleted (and its result file removed)
// On start-up, load() returns every row: finished jobs are served again, unfinished ones run again.
//
// Opening checks before it trusts (see docs/reliability.md, "A damaged data directory"): the file
// must pass SQLite's quick_check and be mrd's (its application_id, or the jobs table of a
// database made before the id was set); a directory whose marker file says it held jobs must
// still hold its database. Any of these failing throws DatabaseError: mrd refuses to start rather
// than serve a partial job table.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "protocol/wire.hpp"
#include "server/input_file.hpp"
#include "server/request_digest.hpp"
#include "server/result_file.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace mrd::server {

class BackgroundThread;
class Checkpointer;

/// The data directory cannot be trusted (damaged, missing its database, not mrd's). The message
/// names the file, what is wrong and the way to recover; mrd refuses to start (exit code 5).
class DatabaseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One job as stored.
struct StoredJob {
  std::uint32_t id = 0;
  std::string tenant;                                      ///< who submitted it ("" if no one)
  std::string idempotency_key;                             ///< empty if none (the tenant's own)
  std::optional<RequestDigest> request_digest;             ///< with a key; none if stored before
                                                           ///< digests were (finished jobs only)
  protocol::JobState state = protocol::JobState::kQueued;  ///< kQueued (unfinished) or final
  protocol::Status failure = protocol::Status::kOk;        ///< for kFailed
  std::string request;  ///< the SUBMIT body, while unfinished (unless it is in a file)
  std::string body;     ///< kDone: the encoded result; kFailed: the reason
  /// While unfinished, for a body received into a file: its path, where the body starts in it and
  /// the body's digest. Empty path otherwise.
  std::string input_file;
  std::uint64_t input_offset = 0;
  RequestDigest input_digest{};
  /// Once finished, for a result kept as a file: its path and the result's digest. Empty path
  /// otherwise (the result is `body`).
  std::string result_file;
  RequestDigest result_digest{};
};

/// A result written to a file in the results directory (result_file.hpp), as its row names it.
struct ResultFileRef {
  std::string name;  ///< in the results directory
  RequestDigest digest{};
};

class JobDatabase {
 public:
  /// How hard a commit tries to reach the disk.
  enum class Sync {
    kNormal,  ///< WAL + synchronous=NORMAL: survives a killed server, not a power cut
    kFull,    ///< WAL + synchronous=FULL: an fsync per commit; survives a power cut too
  };

  /// The database file in a data directory.
  static constexpr const char* kFileName = "mrd.sqlite3";
  /// Written next to it once it holds mrd's schema: from then on the directory is not new.
  static constexpr const char* kMarkerName = "mrd.marker";

  /// Opens (creating if the directory is new) DIR/mrd.sqlite3 and checks it. Throws DatabaseError
  /// if it cannot be trusted, std::runtime_error for other failures (with SQLite's message).
  JobDatabase(const std::string& directory, Sync sync);
  ~JobDatabase();
  JobDatabase(const JobDatabase&) = delete;
  JobDatabase& operator=(const JobDatabase&) = delete;

  /// Every stored job, by id, and the highest id ever handed out (0 if none). Throws
  /// DatabaseError if a row cannot be read: a partial table is never returned.
  std::vector<StoredJob> load(std::uint32_t& highest_id);

  /// How hard its commits try to reach the disk (fixed when it is opened).
  Sync sync() const { return sync_; }

  /// Commits a new job's row. `request_digest` is given with a key (null without). With
  /// `input_file` (the body was received into it) the row names that file, renamed to the job's
  /// (synced first with Sync::kFull), instead of holding `request`. Throws std::runtime_error
  /// saying what failed ("the disk ... is full" for SQLITE_FULL); no row was written then.
  void record_submitted(std::uint32_t id, std::string_view tenant, std::string_view idempotency_key,
                        const RequestDigest* request_digest, std::string_view request,
                        ReceivedFile* input_file = nullptr);
  /// Commits a job's end: its result or reason `body`, or with `result_file` the file that holds
  /// the result (written already), which the row names instead.
  void record_finished(std::uint32_t id, protocol::JobState state, protocol::Status failure,
                       std::string_view body, const ResultFileRef* result_file = nullptr);
  void record_cancelled(std::uint32_t id);
  void record_evicted(std::uint32_t id);

  /// Runs `writes` in one transaction, committed once (group commit): the record_* calls inside
  /// join it instead of committing on their own. If anything fails the whole transaction is
  /// rolled back and the error thrown: nothing of it was written.
  template <class Writes>
  void in_one_transaction(Writes writes) {
    // IMMEDIATE: the write lock from the start (waiting for the checkpointer's connection if it
    // holds it), so that a read begun first can never be refused the upgrade to a write.
    execute("BEGIN IMMEDIATE");
    try {
      writes();
      execute("COMMIT");
    } catch (...) {
      roll_back();
      throw;
    }
    remove_dropped_files();
  }

  /// The directory input files are kept in (DIR/inputs).
  const std::string& inputs() const { return inputs_; }
  /// The directory result files are kept in (DIR/results).
  const std::string& results() const { return results_; }

 private:
  void open(const std::string& directory, Sync sync);
  /// The checks an existing file must pass; false if it holds no tables at all (never written).
  bool check_existing(bool had_jobs);
  void create_schema();
  void migrate_from_version_0();
  void migrate_from_version_1();
  void migrate_from_version_2();
  void migrate_from_version_3();
  void close();

  void execute(const char* sql);
  /// Rolls back the open transaction, if SQLite has not already (it has, after some errors).
  void roll_back();
  /// Once the row of job `id` no longer names its input file (or result file), if it had one,
  /// removes the file: at once outside a transaction, or when it commits.
  void drop_input(std::uint32_t id);
  void drop_result(std::uint32_t id);
  /// Removes the files of the rows the last commit dropped them from.
  void remove_dropped_files();
  sqlite3_stmt* prepare(const char* sql);
  void run(sqlite3_stmt* statement);  ///< steps to completion and resets; throws on error
  /// The last error, worded for a client and the log ("the disk ... is full" when it is).
  std::string failure() const;
  /// The refusal to start on a damaged file: what is wrong, and how to recover.
  DatabaseError damaged(const std::string& what) const;

  std::string path_;
  std::string inputs_;
  std::string results_;
  Sync sync_ = Sync::kNormal;
  /// Jobs whose row names an input file (only those have one to remove when it is dropped).
  std::unordered_set<std::uint32_t> jobs_with_inputs_;
  /// Jobs whose row names a result file.
  std::unordered_set<std::uint32_t> jobs_with_results_;
  std::vector<std::string> dropped_files_;  ///< paths of files that go at the commit
  sqlite3* db_ = nullptr;
  std::unique_ptr<Checkpointer> checkpointer_;  ///< runs the log's checkpoints (checkpointer.hpp)
  std::unique_ptr<BackgroundThread> remover_;   ///< removes the files the rows dropped
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* remember_id_ = nullptr;
  sqlite3_stmt* finish_ = nullptr;
  sqlite3_stmt* cancel_ = nullptr;
  sqlite3_stmt* evict_ = nullptr;
};

}  // namespace mrd::server
