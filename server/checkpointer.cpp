#include "server/checkpointer.hpp"

#include <sqlite3.h>

#include <stdexcept>

#include "server/log.hpp"

namespace mrd::server {

Checkpointer::Checkpointer(const std::string& path, sqlite3* writer) : writer_(writer) {
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open " + path + " to checkpoint it: " + message);
  }
  sqlite3_busy_timeout(db_, 30000);
  // A connection that has not read the file yet does not know it is in WAL mode, and would
  // checkpoint nothing.
  if (sqlite3_exec(db_, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) != SQLITE_OK) {
    const std::string message = sqlite3_errmsg(db_);
    sqlite3_close(db_);
    throw std::runtime_error("cannot open " + path + " to checkpoint it: " + message);
  }
  // Replaces SQLite's own hook, the one that checkpoints inside the commit.
  sqlite3_wal_hook(writer_, &Checkpointer::on_commit, this);
  thread_ = std::thread([this] { run(); });
}

Checkpointer::~Checkpointer() {
  sqlite3_wal_hook(writer_, nullptr, nullptr);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  sqlite3_close(db_);
}

int Checkpointer::on_commit(void* self, sqlite3*, const char*, int pages) {
  auto& checkpointer = *static_cast<Checkpointer*>(self);
  if (pages >= kPagesBeforeCheckpoint) {
    {
      std::lock_guard lock(checkpointer.mutex_);
      checkpointer.wanted_ = true;
    }
    checkpointer.wake_.notify_one();
  }
  return SQLITE_OK;
}

void Checkpointer::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || wanted_; });
      if (stopping_) return;
      wanted_ = false;
    }
    // Passive: it copies what it can without waiting for the writer, who may go on committing.
    int log_pages = 0, copied = 0;
    int rc =
        sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_pages, &copied);
    if (rc == SQLITE_OK) {
      // Then the rest, and the log starts over, if the writer is between two commits now: a
      // writer that goes on committing keeps the log from ever being restarted otherwise.
      sqlite3_busy_timeout(db_, 0);
      rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_RESTART, &log_pages, &copied);
      sqlite3_busy_timeout(db_, 30000);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      log(Level::kWarn, "database checkpoint failed: ", sqlite3_errmsg(db_),
          " (the log grows until one succeeds)");
    }
  }
}

}  // namespace mrd::server
