// The request handler: one whole request frame in, exactly one reply frame out.
//
// It never sees a socket: connection.cpp reads frames and writes what this appends. Everything here
// runs on the network thread, so it may use the job store directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/submit_layout.hpp"
#include "server/cluster/cluster_node.hpp"
#include "server/job_store.hpp"
#include "server/memory_budget.hpp"
#include "server/pool/segment.hpp"
#include "server/reply_queue.hpp"
#include "server/scheduler.hpp"
#include "server/server_config.hpp"
#include "server/session.hpp"
#include "server/submit_upload.hpp"

namespace mrd::server {

class RequestHandler {
 public:
  /// `cluster`, if not null, is the cluster this server is a node of (--redis): jobs are then
  /// stored, found and changed there, and `store` only counts this node's requests.
  RequestHandler(const ServerConfig& config, JobStore& store, Scheduler& scheduler,
                 ConnectionCounters& counters, std::shared_ptr<MemoryBudget> budget,
                 cluster::ClusterNode* cluster = nullptr);

  /// AUTHs a connection may fail; the last one's reply closes it.
  static constexpr std::uint8_t kMaxFailedAuths = 3;

  /// Answers the request `opcode` + `body` from the connection of `session`, appending one reply
  /// frame to `replies`. With --auth-file, requests other than HELLO and AUTH need an identity.
  void handle(std::uint8_t opcode, std::string_view body, ReplyQueue& replies, Session& session);

  /// True if requests need AUTH first (--auth-file).
  bool auth_required() const { return tokens_ != nullptr; }

  /// The tokens AUTH accepts from now on (at start, and after SIGHUP re-read --auth-file).
  /// Connections already authenticated keep their identity.
  void set_tokens(std::shared_ptr<const AuthTokens> tokens) { tokens_ = std::move(tokens); }

  /// Answers a SUBMIT whose body was received straight into its segment (connection.cpp,
  /// submit_upload.hpp), appending its reply to `replies`.
  void submit_received(ReceivedBody received, ReplyQueue& replies, const Session& session);

  /// Starts the maps of a big SUBMIT whose body is arriving into `upload` and starts with `prefix`
  /// (kSubmitPrefixBytes of it), if its job's chunks can be cut as text arrives and it could be
  /// accepted as things stand (early_start.hpp); null otherwise, and it runs once whole.
  std::unique_ptr<EarlyStart> start_early(std::string_view prefix, SubmitUpload& upload,
                                          const Session& session);

  /// Appends an error reply (status + message) to `out` and counts it as a rejected request
  /// (STATS `requests_rejected`: the request was not carried out; docs/protocol.md lists the
  /// statuses).
  void reject(protocol::Status status, const std::string& message, std::string& out);

  /// The same for a request refused from its header alone, its body unread (FRAME_TOO_LARGE, a
  /// SUBMIT before AUTH): handle() never saw it, so it is counted as a request here.
  void refuse_unread(protocol::Status status, const std::string& message, std::string& out) {
    ++counters_.requests;
    reject(status, message, out);
  }

  /// After this, SUBMIT answers SHUTTING_DOWN (except a resent one, whose job already exists).
  void stop_accepting_jobs() { accepting_jobs_ = false; }

 private:
  void submit(std::string_view body, ReplyQueue& replies, const Session& session);
  /// A decoded SUBMIT on a cluster node: checked, stored in Redis, answered once it is. `owner`
  /// keeps `body` alive (null: the body is copied). `body_digest`: the body's, if it is known.
  void submit_to_cluster(std::shared_ptr<const void> owner, std::string_view body,
                         const protocol::SubmitLayout& layout, ReplyQueue& replies,
                         const Session& session,
                         const std::optional<RequestDigest>& body_digest = std::nullopt);
  /// False, with BAD_JOB appended to `out`, if the job cannot run here at all: unknown names or
  /// kinds, too many partitions.
  bool runnable(const protocol::SubmitLayout& layout, std::string& out);
  /// The reply to a request the cluster answers, in its place among this connection's replies.
  static cluster::ClusterNode::Reply deferred_reply(ReplyQueue& replies);
  /// Checks and records `session`'s job of a decoded SUBMIT `body`; `make_input(layout)` makes the
  /// input the job keeps, once everything that can refuse the job without it has been checked.
  /// `body_digest`: the body's, if it was hashed as it arrived (else it is hashed here if a key
  /// needs it). `file`: the file in the data directory the body was received into, if it was.
  template <class MakeInput>
  void accept_job(std::string_view body, protocol::SubmitLayout& layout, ReplyQueue& replies,
                  const Session& session, MakeInput make_input,
                  const std::optional<RequestDigest>& body_digest = std::nullopt,
                  std::unique_ptr<ReceivedFile> file = nullptr,
                  std::unique_ptr<EarlyStart> early = nullptr);
  /// Why `tenant` may not queue another job now (QUEUE_FULL's message), or empty if it may.
  std::string queue_full(const std::string& tenant) const;
  void fetch(std::string_view body, ReplyQueue& replies, const JobScope& scope);
  void status(std::string_view body, ReplyQueue& replies, const JobScope& scope);
  void cancel(std::string_view body, ReplyQueue& replies, const JobScope& scope);
  void list(std::string_view body, ReplyQueue& replies, const JobScope& scope);
  void stats(std::string_view body, std::string& out, const Session& session);
  /// The fourteen counters of STATS.
  protocol::ServerStats server_stats() const;
  void hello(std::string_view body, std::string& out);
  void auth(std::string_view body, std::string& out, Session& session);

  /// Decodes a 4-byte job id body, or appends BAD_REQUEST and returns false.
  bool read_job_id(std::string_view body, std::uint32_t& id, std::string& out);
  /// Appends the reply for a job that is not in the table.
  void reply_missing(JobStore::Lookup lookup, std::uint32_t id, std::string& out);

  const ServerConfig& config_;
  JobStore& store_;
  Scheduler& scheduler_;
  ConnectionCounters& counters_;
  /// Charged for each accepted job's input. Shared: a job waiting for its commit holds a charge,
  /// and the io_context may destroy that wait after the Server.
  std::shared_ptr<MemoryBudget> budget_;
  cluster::ClusterNode* cluster_;  ///< null: a single server
  bool accepting_jobs_ = true;
  std::shared_ptr<const AuthTokens> tokens_;  ///< null: no --auth-file, AUTH not needed
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace mrd::server
