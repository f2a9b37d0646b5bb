#include "server/scheduler.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include "server/background_thread.hpp"
#include "server/idle_trim.hpp"
#include "server/log.hpp"
#include "server/pool/worker_pool.hpp"

namespace mrd::server {

Scheduler::Scheduler(SchedulerConfig config, FinishCallback on_finish)
    : config_(std::move(config)), on_finish_(std::move(on_finish)) {
  if (config_.workers == 0) config_.workers = 1;
}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::start() {
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  // Workers start here, before the thread, so that a missing executable is a start-up error.
  auto pool = std::make_shared<WorkerPool>(PoolConfig{config_.worker_executable, config_.plugins,
                                                      config_.worker_environment, config_.workers,
                                                      config_.budget});
  DispatcherConfig dispatcher_config;
  dispatcher_config.limits = plan_limits();
  dispatcher_config.task_timeout_ms = config_.task_timeout_ms;
  dispatcher_config.memory_limit_mib = config_.memory_limit_mib;
  dispatcher_config.budget = config_.budget;
  dispatcher_config.activity = &activity_;
  // Big results are assembled on a thread of their own: this one goes on handing out tasks.
  auto assembler = std::make_shared<BackgroundThread>();
  dispatcher_config.assemble_elsewhere = [assembler](std::function<void()> work) {
    assembler->post(std::move(work));
  };
  // On a cluster node the dispatcher's tasks go to the cluster (this node's workers among its
  // workers), and the workers here run what the cluster brings.
  TaskPool& dispatcher_pool = config_.cluster_pool ? static_cast<TaskPool&>(*config_.cluster_pool)
                                                   : static_cast<TaskPool&>(*pool);
  dispatcher_config.carry_bytes = config_.cluster_pool != nullptr;
  if (config_.cluster_pool) config_.cluster_pool->on_report([this] { wake(); });
  auto dispatcher = std::make_shared<Dispatcher>(dispatcher_config, dispatcher_pool,
                                                 [this, pool](JobOutcome outcome) {
                                                   // Counted before the outcome goes out: a client
                                                   // that sees a job crash sees its workers'
                                                   // replacements in STATS too.
                                                   worker_restarts_ = pool->restarts();
                                                   on_finish_(std::move(outcome));
                                                 });
  thread_ = std::thread([this, pool, dispatcher] {
    try {
      run(*pool, *dispatcher);
    } catch (const std::exception& e) {
      // Only the machinery itself fails here (poll, eventfd): a job's failure, even running out
      // of memory, fails that job alone. Without its scheduler the server would accept jobs it
      // can never run: better to stop now (with --data-dir, a restart runs them).
      log(Level::kError, "scheduler stopped: ", e.what(), "; mrd exits");
      std::_Exit(1);
    }
  });
}

void Scheduler::run(WorkerPool& pool, Dispatcher& dispatcher) {
  const auto& cluster_pool = config_.cluster_pool;
  cluster::TaskRunner runner(pool, config_.on_cluster_task_end,
                             [&cluster_pool](std::uint64_t task, PoolEvent event) {
                               cluster_pool->report(task, std::move(event));
                             });
  if (cluster_pool) {
    // The dispatcher's tasks start on a worker here when one is free for them.
    cluster_pool->run_here(
        [&runner, &cluster_pool](std::uint64_t task, TaskMessageType type, std::string& body,
                                 MemoryCharge& charge) {
          return runner.run_now(task, type, body, charge, cluster_pool->reserved());
        },
        [&runner](std::uint64_t task) { runner.stop(task, /*own=*/true); });
  }
  // The runner goes with this frame: the pool must not reach it after.
  struct Forget {
    const std::shared_ptr<cluster::ClusterPool>& pool;
    ~Forget() {
      if (pool) pool->run_here({}, {});
    }
  } forget{cluster_pool};
  IdleTrim idle_trim;
  for (;;) {
    std::deque<Submission> submitted;
    std::vector<std::shared_ptr<ArrivingInput>> arriving;
    std::vector<cluster::TakenTask> for_cluster;
    std::vector<std::uint64_t> stops_for_cluster;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      wake_pending_ = false;
      submitted.swap(incoming_);
      arriving.swap(arriving_);
      for_cluster.swap(for_cluster_);
      stops_for_cluster.swap(stops_for_cluster_);
    }
    for (auto& task : for_cluster)
      runner.add(std::move(task));
    for (const auto id : stops_for_cluster)
      runner.stop(id);
    // Early starts first: a job submitted in the same turn finds the maps its input started.
    for (auto& input : arriving)
      dispatcher.start_early(std::move(input));
    for (auto& submission : submitted)
      dispatcher.submit(std::move(submission));
    if (cancels_pending_.exchange(false)) dispatcher.drop_cancelled();
    // Other nodes' tasks before this node's own, on every worker free now: among them one whose
    // task a cancel just killed, which nothing else would wake this thread for.
    runner.start_waiting();
    dispatcher.dispatch();
    // Published before the wait too: a worker replaced for a cancel shows in STATS at once, not
    // after whatever wakes this thread next.
    worker_restarts_ = pool.restarts();
    // And on a worker that dispatch() freed: it drops a job cancelled while its input arrived.
    runner.start_waiting();
    if (dispatcher.busy()) idle_trim.busy(IdleTrim::Clock::now());
    auto wake_at = dispatcher.next_deadline();
    if (const auto trim_at = idle_trim.deadline(); trim_at && (!wake_at || *trim_at < *wake_at)) {
      wake_at = trim_at;
    }
    auto events = pool.wait(wake_fd_, wake_at);
    if (cluster_pool) {
      runner.handle(std::move(events));
      events = cluster_pool->take_events();
    }
    dispatcher.handle(std::move(events));
    dispatcher.enforce_deadlines();
    worker_restarts_ = pool.restarts();
    if (!dispatcher.busy()) idle_trim.trim_if_due(IdleTrim::Clock::now());
  }
}

void Scheduler::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake();
  thread_.join();  // the pool (and with it every worker process) is destroyed on the way out
  ::close(wake_fd_);
  wake_fd_ = -1;
}

template <class Add>
void Scheduler::add_and_wake(Add add) {
  bool write = false;
  {
    std::lock_guard lock(mutex_);
    add();
    write = !std::exchange(wake_pending_, true);
  }
  if (write) wake();
}

void Scheduler::enqueue(std::shared_ptr<JobTicket> ticket, std::unique_ptr<SubmittedInput> input,
                        MemoryCharge input_charge, std::shared_ptr<ArrivingInput> arriving) {
  add_and_wake([&] {
    incoming_.push_back(
        {std::move(ticket), std::move(input), std::move(input_charge), std::move(arriving)});
  });
}

void Scheduler::start_early(std::shared_ptr<ArrivingInput> input) {
  add_and_wake([&] { arriving_.push_back(std::move(input)); });
}

void Scheduler::notify_cancelled() {
  cancels_pending_ = true;
  wake();
}

void Scheduler::run_for_cluster(cluster::TakenTask task) {
  add_and_wake([&] { for_cluster_.push_back(std::move(task)); });
}

void Scheduler::stop_for_cluster(std::uint64_t id) {
  add_and_wake([&] { stops_for_cluster_.push_back(id); });
}

void Scheduler::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

}  // namespace mrd::server
