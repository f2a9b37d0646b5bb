// JobDatabase: accepted jobs and their results on disk, in SQLite (WAL mode), so that a server
// killed with SIGKILL and started again loses nothing it acknowledged.
//
// The network thread is its only user. What is written when:
//   SUBMIT accepted  -> a row with the SUBMIT body, committed *before* the reply carries the id
//   job finished     -> the row gets its result (or reason) and drops the request
//   job cancelled    -> the row is marked cancelled and drops request and result
//   job evicted      -> the row is deleted
// On start-up, load() returns every row: finished jobs are served again, unfinished ones run again.
//
// Opening checks before it trusts (see docs/reliability.md, "A damaged data directory"): the file
// must pass SQLite's quick_check and be mrd's (its application_id, or the jobs table of a
// database made before the id was set); a directory whose marker file says it held jobs must
// still hold its database. Any of these failing throws DatabaseError: mrd refuses to start rather
// than serve a partial job table.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/wire.hpp"
#include "server/request_digest.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace mrd::server {

/// The data directory cannot be trusted (damaged, missing its database, not mrd's). The message
/// names the file, what is wrong and the way to recover; mrd refuses to start (exit code 5).
class DatabaseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One job as stored.
struct StoredJob {
  std::uint32_t id = 0;
  std::string idempotency_key;                             ///< empty if none
  std::optional<RequestDigest> request_digest;             ///< with a key; none if stored before
                                                           ///< digests were (finished jobs only)
  protocol::JobState state = protocol::JobState::kQueued;  ///< kQueued (unfinished) or final
  protocol::Status failure = protocol::Status::kOk;        ///< for kFailed
  std::string request;                                     ///< the SUBMIT body, while unfinished
  std::string body;  ///< kDone: the encoded result; kFailed: the reason
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

  /// Commits a new job's row. `request_digest` is given with a key (null without). Throws
  /// std::runtime_error saying what failed ("the disk ... is full" for SQLITE_FULL); nothing
  /// was written then.
  void record_submitted(std::uint32_t id, std::string_view idempotency_key,
                        const RequestDigest* request_digest, std::string_view request);
  void record_finished(std::uint32_t id, protocol::JobState state, protocol::Status failure,
                       std::string_view body);
  void record_cancelled(std::uint32_t id);
  void record_evicted(std::uint32_t id);

  /// Runs `writes` in one transaction, committed once (group commit): the record_* calls inside
  /// join it instead of committing on their own. If anything fails the whole transaction is
  /// rolled back and the error thrown: nothing of it was written.
  template <class Writes>
  void in_one_transaction(Writes writes) {
    execute("BEGIN");
    try {
      writes();
      execute("COMMIT");
    } catch (...) {
      roll_back();
      throw;
    }
  }

 private:
  void open(const std::string& directory, Sync sync);
  /// The checks an existing file must pass; false if it holds no tables at all (never written).
  bool check_existing(bool had_jobs);
  void create_schema();
  void migrate_from_version_0();
  void close();

  void execute(const char* sql);
  /// Rolls back the open transaction, if SQLite has not already (it has, after some errors).
  void roll_back();
  sqlite3_stmt* prepare(const char* sql);
  void run(sqlite3_stmt* statement);  ///< steps to completion and resets; throws on error
  /// The last error, worded for a client and the log ("the disk ... is full" when it is).
  std::string failure() const;
  /// The refusal to start on a damaged file: what is wrong, and how to recover.
  DatabaseError damaged(const std::string& what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* remember_id_ = nullptr;
  sqlite3_stmt* finish_ = nullptr;
  sqlite3_stmt* cancel_ = nullptr;
  sqlite3_stmt* evict_ = nullptr;
};

}  // namespace mrd::server
