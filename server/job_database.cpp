#include "server/job_database.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <stdexcept>

namespace mrd::server {
namespace {

constexpr const char* kSchema = R"sql(
  CREATE TABLE IF NOT EXISTS jobs (
    id              INTEGER PRIMARY KEY,
    idempotency_key BLOB UNIQUE,          -- NULL when the client gave none
    state           INTEGER NOT NULL,     -- protocol::JobState: 0 unfinished, 3, 4 or 5
    failure         INTEGER NOT NULL DEFAULT 0,
    request         BLOB,                 -- the SUBMIT body, until the job finishes
    body            BLOB                  -- the encoded result, or the reason it failed
  );
  -- Ids are never reused, even after the highest row is evicted: the highest one lives here.
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
)sql";

void bind_blob(sqlite3_stmt* statement, int index, std::string_view bytes) {
  // SQLITE_STATIC: the bytes outlive the statement's execution (run() finishes before we return).
  sqlite3_bind_blob64(statement, index, bytes.data(), bytes.size(), SQLITE_STATIC);
}

std::string column_blob(sqlite3_stmt* statement, int column) {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(statement, column));
  return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(statement, column)))
              : std::string();
}

}  // namespace

JobDatabase::JobDatabase(const std::string& directory, Sync sync) {
  std::filesystem::create_directories(directory);
  const auto path = (std::filesystem::path(directory) / "mrd.sqlite3").string();
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open " + path + ": " + message);
  }
  execute("PRAGMA journal_mode=WAL");
  execute(sync == Sync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  execute(kSchema);
  insert_ =
      prepare("INSERT INTO jobs (id, idempotency_key, state, request) VALUES (?1, ?2, 0, ?3)");
  remember_id_ = prepare(
      "INSERT INTO counters (name, value) VALUES ('highest_id', ?1) "
      "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)");
  finish_ = prepare(
      "UPDATE jobs SET state = ?2, failure = ?3, body = ?4, request = NULL "
      "WHERE id = ?1");
  cancel_ = prepare(
      "UPDATE jobs SET state = 5, body = NULL, request = NULL, "
      "idempotency_key = NULL WHERE id = ?1");
  evict_ = prepare("DELETE FROM jobs WHERE id = ?1");
}

JobDatabase::~JobDatabase() {
  for (auto* statement : {insert_, remember_id_, finish_, cancel_, evict_}) {
    sqlite3_finalize(statement);
  }
  sqlite3_close(db_);
}

void JobDatabase::execute(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw std::runtime_error("database: " + message);
  }
}

sqlite3_stmt* JobDatabase::prepare(const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr) !=
      SQLITE_OK) {
    throw std::runtime_error(std::string("database: ") + sqlite3_errmsg(db_));
  }
  return statement;
}

void JobDatabase::run(sqlite3_stmt* statement) {
  const int rc = sqlite3_step(statement);
  sqlite3_reset(statement);
  sqlite3_clear_bindings(statement);
  if (rc != SQLITE_DONE) throw std::runtime_error(std::string("database: ") + sqlite3_errmsg(db_));
}

std::vector<StoredJob> JobDatabase::load(std::uint32_t& highest_id) {
  highest_id = 0;
  auto* counter = prepare("SELECT value FROM counters WHERE name = 'highest_id'");
  if (sqlite3_step(counter) == SQLITE_ROW) {
    highest_id = static_cast<std::uint32_t>(sqlite3_column_int64(counter, 0));
  }
  sqlite3_finalize(counter);

  std::vector<StoredJob> jobs;
  auto* rows =
      prepare("SELECT id, idempotency_key, state, failure, request, body FROM jobs ORDER BY id");
  while (sqlite3_step(rows) == SQLITE_ROW) {
    StoredJob job;
    job.id = static_cast<std::uint32_t>(sqlite3_column_int64(rows, 0));
    job.idempotency_key = column_blob(rows, 1);
    job.state = static_cast<protocol::JobState>(sqlite3_column_int(rows, 2));
    job.failure = static_cast<protocol::Status>(sqlite3_column_int(rows, 3));
    job.request = column_blob(rows, 4);
    job.body = column_blob(rows, 5);
    highest_id = std::max(highest_id, job.id);
    jobs.push_back(std::move(job));
  }
  sqlite3_finalize(rows);
  return jobs;
}

void JobDatabase::record_submitted(std::uint32_t id, std::string_view idempotency_key,
                                   std::string_view request) {
  // One transaction: the row and the id counter commit together or not at all.
  execute("BEGIN");
  try {
    sqlite3_bind_int64(insert_, 1, id);
    if (idempotency_key.empty()) {
      sqlite3_bind_null(insert_, 2);
    } else {
      bind_blob(insert_, 2, idempotency_key);
    }
    bind_blob(insert_, 3, request);
    run(insert_);
    sqlite3_bind_int64(remember_id_, 1, id);
    run(remember_id_);
    execute("COMMIT");
  } catch (...) {
    execute("ROLLBACK");
    throw;
  }
}

void JobDatabase::record_finished(std::uint32_t id, protocol::JobState state,
                                  protocol::Status failure, std::string_view body) {
  sqlite3_bind_int64(finish_, 1, id);
  sqlite3_bind_int(finish_, 2, static_cast<int>(state));
  sqlite3_bind_int(finish_, 3, static_cast<int>(failure));
  bind_blob(finish_, 4, body);
  run(finish_);
}

void JobDatabase::record_cancelled(std::uint32_t id) {
  sqlite3_bind_int64(cancel_, 1, id);
  run(cancel_);
}

void JobDatabase::record_evicted(std::uint32_t id) {
  sqlite3_bind_int64(evict_, 1, id);
  run(evict_);
}

}  // namespace mrd::server
