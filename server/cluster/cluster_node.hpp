// ClusterNode: this server as one node of a cluster whose jobs live in Redis (mrd --redis).
//
// Every node answers every request for every job: a SUBMIT stores the job in Redis (its body in
// pieces, its record, an entry in the stream mrd:queue) and answers its id once Redis has it all;
// FETCH, STATUS, CANCEL and LIST read and change the records there (cluster_scripts.hpp). So a
// client may submit to one node and fetch from another.
//
// Work goes where workers are free: a node reads entries of mrd:queue through the consumer group
// `nodes` only while it holds fewer than four jobs per worker (one running, the next ones ready),
// and runs each job it takes on its own worker pool, as a single server does. While it runs one it
// renews its hold (the entry's idle time in the group, reset by XCLAIM) every quarter lease; an
// entry idle for a whole lease belongs to a node that died or stalled, and another node claims it
// (XAUTOCLAIM) and runs the job again, as a new attempt. The attempt token (cluster_scripts.hpp)
// keeps the stalled node from committing.
//
// Everything here runs on the network thread, through three RedisLinks: one for commands, one
// blocked in XREADGROUP while waiting for work, one subscribed to mrd:cancels.
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
#include "server/cluster/redis_link.hpp"
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
  ClusterNode(asio::io_context& io, ClusterConfig config, unsigned capacity,
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

 private:
  struct Running {
    std::shared_ptr<JobTicket> ticket;
    std::string attempt;  ///< the attempt token, as Redis holds it
    bool finishing = false;
  };

  std::string unavailable(std::string_view what) const;
  void ready_to_take();
  void maybe_take();
  void claim_stalled();
  /// Takes each entry of an XREADGROUP's or XAUTOCLAIM's array of entries (`claimed`: from a
  /// node that stopped renewing).
  void take_entries(const redisReply* entries, bool claimed);
  void take(std::string entry, std::uint32_t id);
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

  asio::io_context& io_;
  ClusterConfig config_;
  unsigned capacity_;
  std::uint32_t max_queued_jobs_;
  RunJob run_;
  std::function<void()> notify_cancelled_;
  RedisLink commands_;
  RedisLink tasks_;   ///< blocks in XREADGROUP
  RedisLink events_;  ///< subscribed to mrd:cancels
  asio::steady_timer renew_timer_;
  asio::steady_timer claim_timer_;
  asio::steady_timer retry_timer_;
  std::map<std::uint32_t, Running> running_;
  unsigned taking_now_ = 0;  ///< entries being taken (their input loading)
  bool reading_ = false;     ///< an XREADGROUP is waiting
  bool taking_ = true;
  bool stopped_ = false;
};

}  // namespace mrd::server::cluster
