// DatabaseWriter: the thread that writes the job table to its database, so the network thread
// never waits for a disk.
//
// The network thread queues writes (a new job's row, a result, a cancellation, an eviction), each
// for one job, in the order it makes the changes; this thread runs them and hands each one's
// outcome back to the network thread (posted to its io_context) when it was asked for. What was
// queued while a commit ran is written next in one transaction (group commit): a burst of small
// jobs costs one commit, not one each. If that transaction fails, each of its writes is run again
// alone, so only the write that cannot be made fails. A SUBMIT or CANCEL is answered from that
// outcome: the client hears OK only for what is on disk, yet a 64 MiB SUBMIT being written holds
// up only its own connection. Writes that nobody waits for (an eviction) are queued the same way.
//
// Some writes need slow work first: with --fsync, a big input file's 64 MiB must reach the disk
// before the row that names it commits, and that fsync takes 50 ms here. Such a write is queued
// with that work (enqueue_prepared), which runs on a thread of its own. Meanwhile the writes of
// every other job go ahead; the later writes of the same job wait, so each job's writes keep
// their order (a cancellation is never written before the row it cancels).
#pragma once

#include <asio/io_context.hpp>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "server/background_thread.hpp"
#include "server/job_database.hpp"

namespace mrd::server {

class DatabaseWriter {
 public:
  using Write = std::function<void(JobDatabase&)>;
  /// Called on the network thread: empty if the write committed, else what failed.
  using Done = std::function<void(const std::string& error)>;
  /// Slow work a write needs done first, off the writer's thread; throws to fail the write.
  using Prepare = std::function<void()>;

  /// Writes to `database` (which must outlive this); outcomes are posted to `io`.
  DatabaseWriter(JobDatabase& database, asio::io_context& io);
  ~DatabaseWriter();
  DatabaseWriter(const DatabaseWriter&) = delete;
  DatabaseWriter& operator=(const DatabaseWriter&) = delete;

  /// Queues `write`, a change of job `job`; `done`, if given, runs on the network thread once it
  /// committed or failed.
  void enqueue(std::uint32_t job, Write write, Done done = {});

  /// As enqueue, but `prepare` runs first, on the preparing thread (in the order such writes were
  /// queued). Until it has, the writes of `job` queued after this one wait; other jobs' do not.
  /// If `prepare` throws, `write` is not run and `done` hears what it threw.
  void enqueue_prepared(std::uint32_t job, Prepare prepare, Write write, Done done = {});

  /// Runs what is queued (prepared first), then stops the thread. Outcomes not yet handed over
  /// are dropped (the network thread is stopping too); the writes themselves are done. Idempotent.
  void stop();

 private:
  /// Most writes committed together.
  static constexpr std::size_t kMaxBatch = 256;
  struct Item {
    Item(std::uint32_t job, Write write, Done done)
        : job(job), write(std::move(write)), done(std::move(done)) {}
    std::uint32_t job = 0;
    Write write;
    Done done;
    bool ready = true;         ///< false while its preparation runs
    std::uint64_t ticket = 0;  ///< a prepared item's name, for its preparation to find it
    std::string error;         ///< what its preparation or its write threw, if either did
  };
  void run();
  /// Moves into `batch` the writes that may run now, in order: ready, and no earlier write of
  /// their job still waiting. Called with mutex_ held.
  void take_ready(std::vector<Item>& batch);
  /// True if a write may run now (called with mutex_ held).
  bool any_ready() const;
  /// The rule both follow, item by item in order: a ready write of a job none of whose earlier
  /// writes is waiting. A write that may not go makes its job's later writes wait too.
  static bool may_take(const Item& item, std::unordered_set<std::uint32_t>& waiting);

  JobDatabase& database_;
  asio::io_context& io_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;         ///< guarded by mutex_
  bool stopping_ = false;          ///< guarded by mutex_
  std::uint64_t next_ticket_ = 1;  ///< guarded by mutex_; names the prepared items
  BackgroundThread preparer_;      ///< runs the preparations; outlives thread_'s loop
  std::thread thread_;
};

}  // namespace mrd::server
