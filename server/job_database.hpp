// JobDatabase: accepted jobs and their results on disk, in SQLite (WAL mode), so that a server
// killed with SIGKILL and started again loses nothing it acknowledged.
//
// The network thread is its only user. What is written when:
//   SUBMIT accepted  -> a row with the SUBMIT body, committed *before* the reply carries the id
//   job finished     -> the row gets its result (or reason) and drops the request
//   job cancelled    -> the row is marked cancelled and drops request and result
//   job evicted      -> the row is deleted
// On start-up, load() returns every row: finished jobs are served again, unfinished ones run again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/wire.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace mrd::server {

/// One job as stored.
struct StoredJob {
  std::uint32_t id = 0;
  std::string idempotency_key;                             ///< empty if none
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

  /// Opens (creating if needed) DIR/mrd.sqlite3. Throws std::runtime_error with SQLite's message.
  JobDatabase(const std::string& directory, Sync sync);
  ~JobDatabase();
  JobDatabase(const JobDatabase&) = delete;
  JobDatabase& operator=(const JobDatabase&) = delete;

  /// Every stored job, by id, and the highest id ever handed out (0 if none).
  std::vector<StoredJob> load(std::uint32_t& highest_id);

  void record_submitted(std::uint32_t id, std::string_view idempotency_key,
                        std::string_view request);
  void record_finished(std::uint32_t id, protocol::JobState state, protocol::Status failure,
                       std::string_view body);
  void record_cancelled(std::uint32_t id);
  void record_evicted(std::uint32_t id);

 private:
  void execute(const char* sql);
  sqlite3_stmt* prepare(const char* sql);
  void run(sqlite3_stmt* statement);  ///< steps to completion and resets; throws on error

  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* remember_id_ = nullptr;
  sqlite3_stmt* finish_ = nullptr;
  sqlite3_stmt* cancel_ = nullptr;
  sqlite3_stmt* evict_ = nullptr;
};

}  // namespace mrd::server
