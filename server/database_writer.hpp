// DatabaseWriter: the thread that writes the job table to its database, so the network thread
// never waits for a disk.
//
// The network thread queues writes (a new job's row, a result, a cancellation, an eviction) in
// the order it makes the changes; this thread runs them in that order and hands each one's
// outcome back to the network thread (posted to its io_context) when it was asked for. What was
// queued while a commit ran is written next in one transaction (group commit): a burst of small
// jobs costs one commit, not one each. If that transaction fails, each of its writes is run again
// alone, so only the write that cannot be made fails. A SUBMIT or CANCEL is answered from that
// outcome: the client hears OK only for what is on disk, yet a 64 MiB SUBMIT being written holds
// up only its own connection. Writes that nobody waits for (an eviction) are queued the same way
// and keep their order.
#pragma once

#include <asio/io_context.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "server/job_database.hpp"

namespace mrd::server {

class DatabaseWriter {
 public:
  using Write = std::function<void(JobDatabase&)>;
  /// Called on the network thread: empty if the write committed, else what failed.
  using Done = std::function<void(const std::string& error)>;

  /// Writes to `database` (which must outlive this); outcomes are posted to `io`.
  DatabaseWriter(JobDatabase& database, asio::io_context& io);
  ~DatabaseWriter();
  DatabaseWriter(const DatabaseWriter&) = delete;
  DatabaseWriter& operator=(const DatabaseWriter&) = delete;

  /// Queues `write`; `done`, if given, runs on the network thread once it committed or failed.
  void enqueue(Write write, Done done = {});

  /// Runs what is queued, then stops the thread. Outcomes not yet handed over are dropped (the
  /// network thread is stopping too); the writes themselves are done. Idempotent.
  void stop();

 private:
  /// Most writes committed together.
  static constexpr std::size_t kMaxBatch = 256;
  struct Item {
    Write write;
    Done done;
  };
  void run();

  JobDatabase& database_;
  asio::io_context& io_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;  ///< guarded by mutex_
  bool stopping_ = false;   ///< guarded by mutex_
  std::thread thread_;
};

}  // namespace mrd::server
