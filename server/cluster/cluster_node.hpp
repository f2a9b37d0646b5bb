// ClusterNode: this server as one node of a cluster whose jobs live in Redis (mrd --redis).
//
// Every node answers every request for every job: a SUBMIT stores the job in Redis (its body in
// pieces, its record, an entry in its tenant's stream mrd:queue:<tenant>) and answers its id once
// Redis has it all; FETCH, STATUS, CANCEL and LIST read and change the records there
// (cluster_scripts.hpp). So a client may submit to one node and fetch from another.
//
// Jobs: a node reads entries of every tenant's queue at once, a few from each (so that tenants
// take turns), through the consumer group `nodes` while it holds fewer than eight jobs per worker,
// and runs each job it takes with its own dispatcher, as a single server does, but with a pool
// whose workers are the cluster's (cluster_pool.hpp). While it runs one it renews its hold (the
// entry's idle time in the group, reset by XCLAIM) every quarter lease; an entry idle for a whole
// lease belongs to a node that died or stalled, and another node claims it (XAUTOCLAIM) and runs
// the job again, as a new attempt. The attempt token (cluster_scripts.hpp) keeps the stalled node
// from committing.
//
// Tasks: the job's dispatcher hands a task to the pool, and this node offers it in the stream
// mrd:tasks. Every node reads mrd:tasks through the same group, taking only as many tasks as it
// has idle workers, runs each on a worker of its own (task_runner.hpp), stores the answer and
// pushes the task onto the offering node's list of answers, which that node pops and hands back
// to its dispatcher. A task's holder renews it as a job's does; one that stops is claimed and
// answered "lost", and the dispatcher runs the task again, as when a worker of its own dies.
//
// Everything here runs on the network thread, through five RedisLinks: one for commands, one
// blocked in XREADGROUP on the job queues, one on mrd:tasks, one popping answers, one subscribed to
// mrd:cancels.
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/wire.hpp"
#include "server/cluster/cluster_pool.hpp"
#include "server/cluster/redis_link.hpp"
#include "server/cluster/task_runner.hpp"
#include "server/job_scope.hpp"
#include "server/job_ticket.hpp"
#include "server/memory_budget.hpp"
#include "server/request_digest.hpp"
#include "server/server_config.hpp"

namespace mrd::server::cluster {

class ClusterNode {
 public:
  /// Starts a job this node took on its scheduler; false and `error` if it cannot run at all.
  using RunJob =
      std::function<bool(std::shared_ptr<JobTicket> ticket, std::string body, std::string& error)>;
  /// A reply frame, whole.
  using Reply = std::function<void(std::string frame)>;

  /// `capacity`: this node's workers (it holds up to kJobsPerWorker jobs for each).
  /// `max_queued_jobs`: unfinished jobs the cluster takes at once (each node's --max-queued-jobs:
  /// give them all the same). `notify_cancelled` tells the scheduler that a ticket was cancelled (a
  /// CANCEL on any node, or a job another node took over).
  /// What this node's workers do for the cluster (on the scheduler: Scheduler::run_for_cluster).
  struct Workers {
    unsigned count = 1;
    std::shared_ptr<ClusterPool> pool;  ///< the pool this node's dispatcher hands tasks to
    std::function<void(TakenTask)> run;
    std::function<void(std::uint64_t id)> stop;
    MemoryBudget* budget = nullptr;  ///< pays for answers this node's jobs read back
  };

  ClusterNode(asio::io_context& io, ClusterConfig config, Workers workers,
              std::uint32_t max_queued_jobs, RunJob run, std::function<void()> notify_cancelled);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  void start();
  /// Closes the links; jobs still running here are left to the other nodes (their leases end).
  void stop();
  /// Takes no more jobs (a drain); the ones running here go on.
  void stop_taking() { taking_ = false; }

  const std::string& name() const { return config_.node_name; }
  /// Jobs taken by this node and not yet committed.
  std::size_t running() const { return running_.size(); }
  /// Tasks this node took from the cluster and has not answered yet.
  std::size_t holding() const { return held_.size(); }

  struct Submission {
    std::string tenant;
    JobFacts facts;
    bool has_key = false;
    std::string key;  ///< the idempotency key
    RequestDigest digest{};
    std::shared_ptr<const void> owner;  ///< keeps `body` alive until Redis has it
    std::string_view body;              ///< the SUBMIT body
    MemoryCharge charge;                ///< what `body` costs
  };
  /// Stores a new job; `reply` gets its id (or the job its idempotency key names), or why not.
  void submit(Submission submission, Reply reply);

  enum class Want { kFetch, kProgress, kDetails };
  /// FETCH (kFetch) or STATUS (kProgress, kDetails) of job `id`.
  void lookup(std::uint32_t id, const JobScope& scope, Want want, bool tokens, Reply reply);
  void cancel(std::uint32_t id, const JobScope& scope, bool tokens, Reply reply);
  void list(const JobScope& scope, bool with_tenants, Reply reply);

  /// How a job this node ran ended (network thread): its result goes to Redis.
  void finished(JobOutcome outcome);

  /// A task this node's dispatcher handed to the pool: offered to the cluster (network thread).
  void offer(ClusterPool::Offer task);
  /// The dispatcher gave task `task` up: forgotten, and its node told to stop it.
  void abandon(std::uint64_t task);
  /// What became of a task taken from the cluster (network thread): its answer goes to Redis.
  void task_ended(std::uint64_t id, PoolEvent event);
  /// A worker here that ran one of this node's own tasks is free: it may take one from the stream.
  void worker_free() { maybe_take_tasks(); }

 private:
  struct Running {
    std::shared_ptr<JobTicket> ticket;
    std::string attempt;  ///< the attempt token, as Redis holds it
    bool finishing = false;
  };

  /// A task offered by this node, waiting for its answer.
  struct Offered {
    std::uint32_t job = 0;
    std::string key;  ///< its record's key
  };
  /// A task this node took from mrd:tasks, running (or loading, or answering) here.
  struct Held {
    std::string key;
    std::uint32_t job = 0;
    std::string attempt;  ///< its attempt token; empty until taken
    bool loading = true;  ///< not with the runner yet: a worker is kept for it (reserve())
  };

  /// The five links, as bits of links_up_.
  static constexpr unsigned kCommandsLink = 1, kTasksLink = 2, kEventsLink = 4, kWorkLink = 8,
                            kAnswersLink = 16, kAllLinks = 31;
  /// Link `link` is connected: once all five have been, the node says it is serving.
  void linked(unsigned link);
  std::string unavailable(std::string_view what) const;
  void maybe_take_tasks();
  /// Takes each entry of an XREADGROUP's array of mrd:tasks entries.
  void take_task_entries(const redisReply* entries);
  void take_task(std::string entry, std::uint32_t job, std::string key);
  /// Answers the tasks of nodes that stopped renewing them as lost (an XAUTOCLAIM's entries).
  void lose_task_entries(const redisReply* entries);
  /// Stops task `id` running here (given up by its job's node, or claimed by another).
  void stop_held(std::uint64_t id);
  /// Forgets task `id`, and the worker kept for it while it loaded.
  void forget_held(std::uint64_t id);
  void collect_answers();
  /// Reads the answer of task `key` and hands it to the pool.
  void collect(std::string key);
  /// Task `key` was taken by a node: its deadline runs from now.
  void started(const std::string& key);
  /// Deletes a task's record, pieces and entry; tells its holder, if any, to stop it.
  void forget_task(const std::string& key, bool tell_holder);
  /// Offers the tasks that could not be offered while Redis was away.
  void offer_waiting();
  /// Says this node is alive and sizes the pool's window to the cluster's workers.
  void count_workers();
  void ready_to_take();
  void maybe_take();
  void claim_stalled();
  /// Takes each entry of an XREADGROUP's or XAUTOCLAIM's array of entries (`claimed`: from a
  /// node that stopped renewing).
  void take_entries(const redisReply* entries, bool claimed, const std::string& queue);
  void take(std::string entry, std::uint32_t id, const std::string& queue);
  /// A tenant's queue is new: the next read of the queues takes it in.
  void read_new_queue();
  void renew();
  /// Stops the local run of job `id` (cancelled, or taken over by another node).
  void drop(std::uint32_t id, const char* why);
  void commit(std::uint32_t id, std::string attempt, protocol::Status status, std::string reason,
              std::size_t pieces);
  struct PieceWrite;
  /// Sends the next SETs of `write`.
  void pump(std::shared_ptr<PieceWrite> write);
  void store_pieces(std::string prefix, std::shared_ptr<const void> owner, std::string_view bytes,
                    std::uint64_t ttl_ms, std::function<void(bool)> done);
  /// What load_pieces() read: the bytes, or nothing and whether that is because the link went
  /// down (`unreachable`) rather than because a piece is not there.
  using Loaded = std::function<void(std::optional<std::string> bytes, bool unreachable)>;
  /// Reads `count` pieces named `prefix`<k>, appending them to `start`.
  void load_pieces(std::string prefix, std::size_t count, std::string start, Loaded done);
  /// EVAL of one of cluster_scripts.hpp's scripts.
  void eval(std::string_view script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisLink::OnReply on_reply);
  void every(asio::steady_timer& timer, std::chrono::milliseconds period,
             void (ClusterNode::*tick)());
  /// Calls `then` once, after `delay` (unless the node stopped meanwhile).
  void after(std::chrono::milliseconds delay, std::function<void()> then);

  asio::io_context& io_;
  ClusterConfig config_;
  unsigned capacity_;
  std::uint32_t max_queued_jobs_;
  RunJob run_;
  std::function<void()> notify_cancelled_;
  RedisLink commands_;
  RedisLink tasks_;    ///< blocks in XREADGROUP on the job queues
  RedisLink events_;   ///< subscribed to mrd:cancels
  RedisLink work_;     ///< blocks in XREADGROUP on mrd:tasks
  RedisLink answers_;  ///< blocks in BLMPOP on mrd:answers:<this node>
  Workers workers_;
  std::string answers_key_;
  /// Drawn at start: names this process's tasks apart from those of an earlier process that had
  /// the same node name (its answers may still be on the list).
  std::string task_prefix_;
  std::map<std::uint64_t, Offered> offered_;  ///< by ClusterPool's task number
  std::map<std::string, std::uint64_t> offered_by_key_;
  std::vector<ClusterPool::Offer> waiting_offers_;  ///< to offer once Redis is back
  std::map<std::uint64_t, Held> held_;              ///< by TakenTask::id
  std::uint64_t next_held_ = 0;
  bool reading_tasks_ = false;  ///< an XREADGROUP on mrd:tasks is waiting
  bool collecting_ = false;     ///< a BLMPOP is waiting
  asio::steady_timer renew_timer_;
  asio::steady_timer claim_timer_;
  asio::steady_timer retry_timer_;
  std::map<std::uint32_t, Running> running_;
  unsigned taking_now_ = 0;          ///< entries being taken (their input loading)
  bool reading_ = false;             ///< an XREADGROUP is waiting
  std::vector<std::string> queues_;  ///< every tenant's queue, as last read
  std::size_t next_queue_ = 0;       ///< where the next read starts among them
  std::string tasks_client_id_;      ///< tasks_'s CLIENT ID, to end its wait
  bool taking_ = true;
  bool stopped_ = false;
  unsigned links_up_ = 0;  ///< the links connected at least once
};

}  // namespace mrd::server::cluster
