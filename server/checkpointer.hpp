// Checkpointer: copies the database's write-ahead log back into the database file on a thread of
// its own, so that the database writer never stops for it.
//
// In WAL mode every commit appends to DIR/mrd.sqlite3-wal; a checkpoint copies those pages into
// the database file and fsyncs it, so that the log can start over. SQLite runs one itself, inside
// whichever commit passes 1,000 pages of log, which then takes as long as that fsync: with a big
// input's 64 MiB just written to the same disk, a quarter of a second, during which every
// SUBMIT, result and cancel queued behind that commit waits. Instead, the writer's connection
// only reports how long the log is (sqlite3_wal_hook), and this thread checkpoints through a
// connection of its own, passively: the writer goes on appending to the log meanwhile. A writer
// that never stops would keep the log from ever starting over (it restarts only once every page
// is copied, between two commits), so each passive checkpoint is followed by one that copies the
// rest and restarts the log if the writer is between two commits at that moment, and gives up at
// once if it is not: the writer waits for the few pages left at most.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace mrd::server {

class Checkpointer {
 public:
  /// Log pages past which a checkpoint runs (SQLite's own default).
  static constexpr int kPagesBeforeCheckpoint = 1000;

  /// Opens its own connection to the database file `path` and starts the thread; from now on
  /// `writer`, the writer's connection, no longer checkpoints, but reports to this. Throws
  /// std::runtime_error if the connection cannot be opened.
  Checkpointer(const std::string& path, sqlite3* writer);
  /// Stops the thread (a checkpoint under way finishes first) and closes its connection.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

 private:
  /// sqlite3_wal_hook's callback: a commit left `pages` pages in the log.
  static int on_commit(void* self, sqlite3* db, const char* schema, int pages);
  void run();

  sqlite3* writer_;
  sqlite3* db_ = nullptr;  ///< this thread's own connection
  std::mutex mutex_;
  std::condition_variable wake_;
  bool wanted_ = false;    ///< guarded by mutex_: the log passed the mark since the last one
  bool stopping_ = false;  ///< guarded by mutex_
  std::thread thread_;
};

}  // namespace mrd::server
