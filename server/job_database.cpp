#include "server/job_database.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "server/background_thread.hpp"
#include "server/checkpointer.hpp"
#include "server/log.hpp"

namespace mrd::server {
namespace {

/// The writer's busy handler. SQLite's own (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, 15, 20 ms
/// ... between tries, so a commit that meets the checkpointer's last millisecond of copying
/// waits up to 53 ms, and every tiny job behind it too. This one tries every 100 µs for the
/// first 10 ms (the checkpointer's moments), then every 5 ms (another process holding the file,
/// a backup say), and gives up (SQLITE_BUSY: the write fails) after about 30 s.
int retry_soon(void*, int tries) {
  using namespace std::chrono_literals;
  constexpr int kQuickTries = 100;
  constexpr std::chrono::microseconds kQuickPause = 100us, kSlowPause = 5ms;
  const auto waited = tries < kQuickTries
                          ? tries * kQuickPause
                          : kQuickTries * kQuickPause + (tries - kQuickTries) * kSlowPause;
  if (waited >= 30s) return 0;
  std::this_thread::sleep_for(tries < kQuickTries ? kQuickPause : kSlowPause);
  return 1;  // try again
}

/// PRAGMA application_id of an mrd database ("MRD1"), so another program's file is recognised.
constexpr int kApplicationId = 0x4d524431;

/// PRAGMA user_version of the schema below. Version 0 (no application_id either) had no
/// request_digest column, version 1 no input_* columns, version 2 no tenant (and its keys were
/// unique across tenants), version 3 no result_* columns; open() migrates each.
constexpr int kSchemaVersion = 4;

/// The jobs table, created as `name` (a migration builds it beside the old one).
std::string jobs_table(const std::string& name) {
  return "CREATE TABLE " + name + R"sql( (
    id              INTEGER PRIMARY KEY,
    tenant          TEXT NOT NULL DEFAULT '', -- who submitted it; '' without --auth-file
    idempotency_key BLOB,                 -- NULL when the client gave none
    state           INTEGER NOT NULL,     -- protocol::JobState: 0 unfinished, 3, 4 or 5
    failure         INTEGER NOT NULL DEFAULT 0,
    request         BLOB,                 -- the SUBMIT body, until the job finishes
    body            BLOB,                 -- the encoded result, or the reason it failed
    request_digest  BLOB,                 -- SHA-256 of the SUBMIT body, with a key
    input_file      TEXT,                 -- or, instead of request: the file in inputs/ that
    input_offset    INTEGER,              --   holds the body from this byte on,
    input_digest    BLOB,                 --   whose SHA-256 is this
    result_file     TEXT,                 -- or, instead of body: the file in results/ that
    result_digest   BLOB,                 --   holds the result, whose SHA-256 is this
    UNIQUE (tenant, idempotency_key)      -- each tenant's keys are its own
  );)sql";
}

/// Ids are never reused, even after the highest row is evicted: the highest one lives here.
constexpr const char* kCountersTable =
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);";

constexpr const char* kMarkerText =
    "This directory holds the jobs of an mrd server (mrd.sqlite3).\n"
    "While this file is here, mrd refuses to start without that database: see\n"
    "docs/reliability.md, \"A damaged data directory\".\n";

void bind_blob(sqlite3_stmt* statement, int index, std::string_view bytes) {
  // SQLITE_STATIC: the bytes outlive the statement's execution (run() finishes before we return).
  sqlite3_bind_blob64(statement, index, bytes.data(), bytes.size(), SQLITE_STATIC);
}

std::string column_blob(sqlite3_stmt* statement, int column) {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(statement, column));
  return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(statement, column)))
              : std::string();
}

std::string_view as_bytes(const RequestDigest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

}  // namespace

JobDatabase::JobDatabase(const std::string& directory, Sync sync) {
  try {
    open(directory, sync);
  } catch (...) {
    close();
    throw;
  }
}

JobDatabase::~JobDatabase() {
  close();
}

void JobDatabase::close() {
  remover_.reset();       // the files it was asked to remove are gone once this returns
  checkpointer_.reset();  // before the writer's connection: its close runs the last checkpoint
  for (auto* statement : {insert_, remember_id_, finish_, cancel_, evict_}) {
    sqlite3_finalize(statement);
  }
  insert_ = remember_id_ = finish_ = cancel_ = evict_ = nullptr;
  sqlite3_close(db_);
  db_ = nullptr;
}

void JobDatabase::open(const std::string& directory, Sync sync) {
  std::filesystem::create_directories(directory);
  inputs_ = inputs_directory(directory);
  std::filesystem::create_directories(inputs_);
  results_ = results_directory(directory);
  std::filesystem::create_directories(results_);
  sync_ = sync;
  const auto marker = std::filesystem::path(directory) / kMarkerName;
  path_ = (std::filesystem::path(directory) / kFileName).string();
  const bool had_jobs = std::filesystem::exists(marker);
  std::error_code missing;
  const auto size = std::filesystem::file_size(path_, missing);
  if (had_jobs && (missing || size == 0)) {
    // Starting afresh here would answer JOB_EXPIRED for every job the clients hold.
    const std::string what = missing ? " is missing" : " is empty";
    throw DatabaseError(
        path_ + what + ", but " + marker.string() +
        " says this directory held jobs: starting with an empty job table "
        "would lose them. Restore the file (with its -wal file, if it had one); to start "
        "afresh instead, losing every job it held, remove " +
        marker.string() + ".");
  }
  if (sqlite3_open(path_.c_str(), &db_) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    throw std::runtime_error("cannot open " + path_ + ": " + message);
  }
  // Another process that holds the file for a moment (a backup, the sqlite3 shell) makes a write
  // wait, not fail; the writes run on their own thread (database_writer.hpp), so nobody else does.
  sqlite3_busy_handler(db_, &retry_soon, nullptr);
  // Dropping a finished job's 64 MiB request must not write 64 MiB of zeros (Debian builds SQLite
  // with SECURE_DELETE on): what is dropped may stay in free pages until they are reused.
  execute("PRAGMA secure_delete=FAST");
  bool fresh = missing || size == 0;
  if (!fresh) fresh = !check_existing(had_jobs);
  execute("PRAGMA journal_mode=WAL");
  execute(sync == Sync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  if (fresh) create_schema();
  // From now on the log is checkpointed on a thread of its own, not inside a commit.
  checkpointer_ = std::make_unique<Checkpointer>(path_, db_);
  remover_ = std::make_unique<BackgroundThread>();
  if (!had_jobs) {
    // Only once the schema is committed: from now on a missing database is an error, not new.
    std::ofstream out(marker);
    out << kMarkerText;
    out.close();
    if (!out)
      log(Level::kWarn, "cannot write ", marker.string(), ": a lost database will look new");
  }

  insert_ = prepare(
      "INSERT INTO jobs (id, idempotency_key, state, request, request_digest, input_file, "
      "input_offset, input_digest, tenant) VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8)");
  remember_id_ = prepare(
      "INSERT INTO counters (name, value) VALUES ('highest_id', ?1) "
      "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)");
  finish_ = prepare(
      "UPDATE jobs SET state = ?2, failure = ?3, body = ?4, result_file = ?5, result_digest = ?6, "
      "request = NULL, input_file = NULL, input_offset = NULL, input_digest = NULL WHERE id = ?1");
  cancel_ = prepare(
      "UPDATE jobs SET state = 5, body = NULL, request = NULL, idempotency_key = NULL, "
      "request_digest = NULL, input_file = NULL, input_offset = NULL, input_digest = NULL, "
      "result_file = NULL, result_digest = NULL WHERE id = ?1");
  evict_ = prepare("DELETE FROM jobs WHERE id = ?1");
}

DatabaseError JobDatabase::damaged(const std::string& what) const {
  const auto directory = std::filesystem::path(path_).parent_path().string();
  return DatabaseError(path_ + " is damaged: " + what +
                       ". Starting would lose the jobs on the damaged pages without a word. To "
                       "recover every job that can still be read, keeping ids: move " +
                       directory + " aside as OLD, run `scripts/salvage-data-dir.sh OLD/" +
                       kFileName + " " + directory +
                       "` and start again (docs/reliability.md, \"A damaged data directory\").");
}

bool JobDatabase::check_existing(bool had_jobs) {
  // Every read below may be the first to touch a damaged page: any error means damage.
  auto single_int = [&](const char* sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr) != SQLITE_OK) {
      throw damaged(sqlite3_errmsg(db_));
    }
    const int rc = sqlite3_step(statement);
    const int value = rc == SQLITE_ROW ? sqlite3_column_int(statement, 0) : 0;
    sqlite3_finalize(statement);
    if (rc != SQLITE_ROW) throw damaged(sqlite3_errmsg(db_));
    return value;
  };

  // quick_check reads every page and checks the structure of every b-tree, which is what a
  // garbled page breaks; integrity_check also matches every index entry to its row, at about
  // twice the time (docs/reliability.md has the figures).
  const auto started = std::chrono::steady_clock::now();
  sqlite3_stmt* check = nullptr;
  if (sqlite3_prepare_v2(db_, "PRAGMA quick_check(5)", -1, &check, nullptr) != SQLITE_OK) {
    throw damaged(sqlite3_errmsg(db_));
  }
  std::string problems;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(check)) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(check, 0));
    // One row may hold several lines, after a "*** in database main ***" heading.
    std::istringstream lines(text ? text : "");
    for (std::string line; std::getline(lines, line);) {
      if (line == "ok" || line.rfind("***", 0) == 0) continue;
      problems += (problems.empty() ? "" : "; ") + line;
    }
  }
  const std::string step_error = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_);
  sqlite3_finalize(check);
  if (!problems.empty() || !step_error.empty()) {
    throw damaged("SQLite's quick_check found: " + problems +
                  (problems.empty() || step_error.empty() ? "" : "; ") + step_error);
  }
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  log(Level::kInfo, "database ", path_, ": quick_check ok (", single_int("PRAGMA page_count"),
      " pages, ", elapsed.count(), " ms)");

  const int application_id = single_int("PRAGMA application_id");
  const int version = single_int("PRAGMA user_version");
  const int tables = single_int("SELECT count(*) FROM sqlite_schema WHERE type = 'table'");
  const int job_tables =
      single_int("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'jobs'");
  if (application_id == 0 && tables == 0) {
    // Created, but mrd stopped before its schema was committed: nothing was ever acknowledged.
    if (!had_jobs) return false;
    throw DatabaseError(
        path_ + " holds no tables, but " + kMarkerName +
        " beside it says this directory held jobs: starting with an empty "
        "job table would lose them. Restore the file, or remove the marker to start afresh "
        "(losing every job).");
  }
  const bool mrd_before_ids = application_id == 0 && version == 0 && job_tables == 1;
  if (application_id != kApplicationId && !mrd_before_ids) {
    throw DatabaseError(path_ + " is not an mrd database (application_id " +
                        std::to_string(application_id) + (job_tables ? "" : ", no jobs table") +
                        "). Point --data-dir at mrd's directory, or at "
                        "a new one.");
  }
  if (version > kSchemaVersion) {
    throw DatabaseError(path_ + " was written by a newer mrd (schema version " +
                        std::to_string(version) + "; this one knows up to " +
                        std::to_string(kSchemaVersion) + "). Run that mrd.");
  }
  if (version == 0) migrate_from_version_0();
  if (version <= 1) migrate_from_version_1();
  if (version <= 2) migrate_from_version_2();  // builds the table of this version whole
  if (version == 3) migrate_from_version_3();
  return true;
}

void JobDatabase::create_schema() {
  execute("BEGIN");
  execute(jobs_table("jobs").c_str());
  execute(kCountersTable);
  execute(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
  execute(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
  execute("COMMIT");
}

void JobDatabase::migrate_from_version_0() {
  // Version 0 kept no digest. Unfinished keyed jobs still have their request: digest it now.
  // Finished ones dropped theirs, so their keys stay unbound (the rule they were accepted under).
  execute("BEGIN");
  execute("ALTER TABLE jobs ADD COLUMN request_digest BLOB");
  auto* unfinished = prepare(
      "SELECT id, request FROM jobs WHERE idempotency_key IS NOT NULL AND request IS NOT NULL");
  auto* store = prepare("UPDATE jobs SET request_digest = ?2 WHERE id = ?1");
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(unfinished)) == SQLITE_ROW) {
    const auto digest = digest_of(column_blob(unfinished, 1));
    sqlite3_bind_int64(store, 1, sqlite3_column_int64(unfinished, 0));
    bind_blob(store, 2, as_bytes(digest));
    run(store);
  }
  sqlite3_finalize(unfinished);
  sqlite3_finalize(store);
  if (rc != SQLITE_DONE) throw damaged(sqlite3_errmsg(db_));
  execute(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
  execute("PRAGMA user_version = 1");
  execute("COMMIT");
  log(Level::kInfo, "database ", path_,
      ": migrated to schema version 1 (idempotency keys bound to their request)");
}

void JobDatabase::migrate_from_version_1() {
  // Version 1 kept every request in its row: those rows stay as they are.
  execute("BEGIN");
  execute("ALTER TABLE jobs ADD COLUMN input_file TEXT");
  execute("ALTER TABLE jobs ADD COLUMN input_offset INTEGER");
  execute("ALTER TABLE jobs ADD COLUMN input_digest BLOB");
  execute("PRAGMA user_version = 2");
  execute("COMMIT");
  log(Level::kInfo, "database ", path_,
      ": migrated to schema version 2 (big inputs kept as files)");
}

void JobDatabase::migrate_from_version_2() {
  // SQLite cannot change a column's constraints in place: the table is built anew beside the
  // old one and takes its place. Every job it held was submitted without a tenant.
  constexpr const char* kColumns =
      "id, idempotency_key, state, failure, request, body, request_digest, input_file, "
      "input_offset, input_digest";
  execute("BEGIN");
  execute(jobs_table("jobs_with_tenants").c_str());
  execute((std::string("INSERT INTO jobs_with_tenants (") + kColumns + ") SELECT " + kColumns +
           " FROM jobs")
              .c_str());
  execute("DROP TABLE jobs");
  execute("ALTER TABLE jobs_with_tenants RENAME TO jobs");
  execute(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
  execute("COMMIT");
  log(Level::kInfo, "database ", path_, ": migrated to schema version ", kSchemaVersion,
      " (jobs belong to tenants)");
}

void JobDatabase::migrate_from_version_3() {
  // Version 3 kept every result in its row: those rows stay as they are.
  execute("BEGIN");
  execute("ALTER TABLE jobs ADD COLUMN result_file TEXT");
  execute("ALTER TABLE jobs ADD COLUMN result_digest BLOB");
  execute(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
  execute("COMMIT");
  log(Level::kInfo, "database ", path_, ": migrated to schema version ", kSchemaVersion,
      " (big results kept as files)");
}

void JobDatabase::execute(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    throw std::runtime_error(failure());
  }
}

sqlite3_stmt* JobDatabase::prepare(const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr) !=
      SQLITE_OK) {
    throw std::runtime_error(failure());
  }
  return statement;
}

void JobDatabase::run(sqlite3_stmt* statement) {
  const int rc = sqlite3_step(statement);
  // The message first: reset and a later ROLLBACK may replace it.
  const std::string message = rc == SQLITE_DONE ? "" : failure();
  sqlite3_reset(statement);
  sqlite3_clear_bindings(statement);
  if (rc != SQLITE_DONE) throw std::runtime_error(message);
}

std::string JobDatabase::failure() const {
  const std::string message = sqlite3_errmsg(db_);
  if (sqlite3_errcode(db_) == SQLITE_FULL || sqlite3_system_errno(db_) == ENOSPC) {
    return "the disk holding the database is full (" + message + ")";
  }
  return "database: " + message;
}

std::vector<StoredJob> JobDatabase::load(std::uint32_t& highest_id) {
  highest_id = 0;
  auto* counter = prepare("SELECT value FROM counters WHERE name = 'highest_id'");
  int rc = sqlite3_step(counter);
  if (rc == SQLITE_ROW) highest_id = static_cast<std::uint32_t>(sqlite3_column_int64(counter, 0));
  sqlite3_finalize(counter);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) throw damaged(sqlite3_errmsg(db_));

  std::vector<StoredJob> jobs;
  auto* rows = prepare(
      "SELECT id, idempotency_key, state, failure, request, body, request_digest, input_file, "
      "input_offset, input_digest, tenant, result_file, result_digest FROM jobs ORDER BY id");
  while ((rc = sqlite3_step(rows)) == SQLITE_ROW) {
    StoredJob job;
    job.id = static_cast<std::uint32_t>(sqlite3_column_int64(rows, 0));
    job.idempotency_key = column_blob(rows, 1);
    job.state = static_cast<protocol::JobState>(sqlite3_column_int(rows, 2));
    job.failure = static_cast<protocol::Status>(sqlite3_column_int(rows, 3));
    job.request = column_blob(rows, 4);
    job.body = column_blob(rows, 5);
    const auto digest = column_blob(rows, 6);
    if (digest.size() == RequestDigest{}.size()) {
      job.request_digest.emplace();
      std::copy(digest.begin(), digest.end(), job.request_digest->begin());
    }
    if (const auto file = column_blob(rows, 7); !file.empty()) {
      job.input_file = (std::filesystem::path(inputs_) / file).string();
      if (job.state == protocol::JobState::kQueued) jobs_with_inputs_.insert(job.id);
      job.input_offset = static_cast<std::uint64_t>(sqlite3_column_int64(rows, 8));
      const auto input_digest = column_blob(rows, 9);
      // A digest of the wrong size can match no file: the job fails when it is loaded.
      if (input_digest.size() == job.input_digest.size()) {
        std::copy(input_digest.begin(), input_digest.end(), job.input_digest.begin());
      }
    }
    job.tenant = column_blob(rows, 10);
    if (const auto file = column_blob(rows, 11); !file.empty()) {
      job.result_file = (std::filesystem::path(results_) / file).string();
      jobs_with_results_.insert(job.id);
      // A digest of the wrong size matches no file: the job is served as failed.
      if (const auto digest = column_blob(rows, 12); digest.size() == job.result_digest.size()) {
        std::copy(digest.begin(), digest.end(), job.result_digest.begin());
      }
    }
    highest_id = std::max(highest_id, job.id);
    jobs.push_back(std::move(job));
  }
  // Stopping at a damaged row would serve the rows before it and call the rest expired.
  const std::string error = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_);
  sqlite3_finalize(rows);
  if (!error.empty()) throw damaged(error);
  return jobs;
}

void JobDatabase::record_submitted(std::uint32_t id, std::string_view tenant,
                                   std::string_view idempotency_key,
                                   const RequestDigest* request_digest, std::string_view request,
                                   ReceivedFile* input_file) {
  if (input_file) {
    // The file under the job's name before the row that names it commits. Should the row not
    // commit, the caller removes the file; a file that no row names is removed at the next start.
    try {
      input_file->file->rename_to(input_file_name(id));
      if (sync_ == Sync::kFull) input_file->file->sync();
    } catch (const std::system_error& e) {
      throw std::runtime_error(std::string("cannot keep the job's input file: ") + e.what());
    }
  }
  // One transaction: the row and the id counter commit together or not at all (inside a group's
  // transaction, with it).
  const bool own_transaction = sqlite3_get_autocommit(db_) != 0;
  if (own_transaction) execute("BEGIN IMMEDIATE");
  try {
    sqlite3_bind_int64(insert_, 1, id);
    sqlite3_bind_text(insert_, 8, tenant.data(), static_cast<int>(tenant.size()), SQLITE_TRANSIENT);
    if (idempotency_key.empty()) {
      sqlite3_bind_null(insert_, 2);
    } else {
      bind_blob(insert_, 2, idempotency_key);
    }
    if (request_digest) {
      bind_blob(insert_, 4, as_bytes(*request_digest));
    } else {
      sqlite3_bind_null(insert_, 4);
    }
    if (input_file) {
      const auto name = input_file_name(id);
      sqlite3_bind_null(insert_, 3);
      sqlite3_bind_text(insert_, 5, name.c_str(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
      sqlite3_bind_int64(insert_, 6, static_cast<sqlite3_int64>(input_file->offset));
      bind_blob(insert_, 7, as_bytes(input_file->digest));
    } else {
      bind_blob(insert_, 3, request);
      for (int column : {5, 6, 7})
        sqlite3_bind_null(insert_, column);
    }
    run(insert_);
    if (input_file) jobs_with_inputs_.insert(id);
    sqlite3_bind_int64(remember_id_, 1, id);
    run(remember_id_);
    if (own_transaction) execute("COMMIT");
  } catch (...) {
    if (own_transaction) roll_back();
    throw;
  }
}

void JobDatabase::roll_back() {
  dropped_files_.clear();  // their rows still name them
  // After some errors (a full disk among them) SQLite has rolled back already; a ROLLBACK then
  // fails with "no transaction is active", and must not replace the error that matters.
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void JobDatabase::drop_input(std::uint32_t id) {
  // Most jobs have no file: nothing to hand the remover for them.
  if (jobs_with_inputs_.erase(id) == 0) return;
  dropped_files_.push_back((std::filesystem::path(inputs_) / input_file_name(id)).string());
  if (sqlite3_get_autocommit(db_)) remove_dropped_files();  // committed already
}

void JobDatabase::drop_result(std::uint32_t id) {
  if (jobs_with_results_.erase(id) == 0) return;
  dropped_files_.push_back((std::filesystem::path(results_) / result_file_name(id)).string());
  if (sqlite3_get_autocommit(db_)) remove_dropped_files();
}

void JobDatabase::remove_dropped_files() {
  // Unlinking a 64 MiB file takes the filesystem a tenth of a second: not on the writer's thread.
  // Should the server stop first, the next start removes the file (no row that needs it names
  // it).
  for (auto& path : dropped_files_) {
    remover_->post([path = std::move(path)] { ::unlink(path.c_str()); });
  }
  dropped_files_.clear();
}

void JobDatabase::record_finished(std::uint32_t id, protocol::JobState state,
                                  protocol::Status failure, std::string_view body,
                                  const ResultFileRef* result_file) {
  sqlite3_bind_int64(finish_, 1, id);
  sqlite3_bind_int(finish_, 2, static_cast<int>(state));
  sqlite3_bind_int(finish_, 3, static_cast<int>(failure));
  if (result_file) {
    sqlite3_bind_null(finish_, 4);
    const auto& name = result_file->name;
    sqlite3_bind_text(finish_, 5, name.c_str(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    bind_blob(finish_, 6, as_bytes(result_file->digest));
  } else {
    bind_blob(finish_, 4, body);
    sqlite3_bind_null(finish_, 5);
    sqlite3_bind_null(finish_, 6);
  }
  run(finish_);
  drop_input(id);
  if (result_file) jobs_with_results_.insert(id);
}

void JobDatabase::record_cancelled(std::uint32_t id) {
  sqlite3_bind_int64(cancel_, 1, id);
  run(cancel_);
  drop_input(id);
  drop_result(id);
}

void JobDatabase::record_evicted(std::uint32_t id) {
  sqlite3_bind_int64(evict_, 1, id);
  run(evict_);
  drop_result(id);
}

}  // namespace mrd::server
