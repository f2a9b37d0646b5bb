// One worker process: the server binary started again in worker mode, with a socketpair to it.
//
// Workers are started with posix_spawn, which execs a fresh image at once: the scheduler thread can
// start or replace one while other threads hold locks, without the fork-in-a-threaded-process
// trap (a child that inherits a locked malloc mutex and deadlocks).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/memory_budget.hpp"
#include "server/pool/worker_channel.hpp"

namespace mrd::server {

class WorkerProcess {
 public:
  /// Starts `executable --worker-fd 3 [--plugin FILE]...`, loading the same plugins as the
  /// server, with `environment` ("NAME=value") added to the server's. `budget` pays for answers
  /// being received. Throws std::runtime_error if the process cannot start.
  static std::unique_ptr<WorkerProcess> spawn(const std::string& executable,
                                              const std::vector<std::string>& plugins,
                                              const std::vector<std::string>& environment,
                                              MemoryBudget* budget);

  /// Kills the process if it still runs, and reaps it.
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  /// Our end of the socketpair, non-blocking.
  WorkerChannel& channel() { return *channel_; }
  pid_t pid() const { return pid_; }

  /// Closes the channel, kills the worker if it still runs, reaps it and says how it ended
  /// ("killed by signal 9 (Killed)", "exited with status 3").
  std::string reap();

 private:
  WorkerProcess(pid_t pid, int fd, MemoryBudget* budget)
      : pid_(pid), channel_(std::make_unique<WorkerChannel>(fd, budget)) {}
  pid_t pid_;                               ///< 0 once reaped
  std::unique_ptr<WorkerChannel> channel_;  ///< null once closed
};

/// The environment variable that gives a worker its server's pid.
inline constexpr const char* kServerPidVariable = "MRD_SERVER_PID";

/// The GLIBC_TUNABLES entry a worker is started with: `inherited` (the server's own, if any)
/// plus huge pages for malloc (glibc.malloc.hugetlb=1) unless it already says otherwise.
std::string worker_malloc_tunables(const char* inherited);

/// The body of a worker process: answers tasks on `fd` until the server closes it, or dies with
/// it. Returns the process exit code (0 also when the server was gone before it started).
int run_worker(int fd);

}  // namespace mrd::server
