#include "server/request_handler.hpp"

#include <optional>

#include "protocol/codec.hpp"
#include "protocol/submit_layout.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/job_kind.hpp"
#include "server/job_replies.hpp"
#include "server/log.hpp"
#include "server/request_digest.hpp"
#include "server/submitted_input.hpp"

namespace mrd::server {

using protocol::Opcode;
using protocol::Status;

namespace {

/// The digest of a SUBMIT `body`: `known`, if it was taken as the body arrived, else taken now.
RequestDigest known_or_digest_of(std::string_view body, const std::optional<RequestDigest>& known) {
  return known ? *known : digest_of(body);
}
constexpr auto code(Status s) {
  return static_cast<std::uint8_t>(s);
}
}  // namespace

RequestHandler::RequestHandler(const ServerConfig& config, JobStore& store, Scheduler& scheduler,
                               ConnectionCounters& counters, std::shared_ptr<MemoryBudget> budget,
                               cluster::ClusterNode* cluster)
    : config_(config),
      store_(store),
      scheduler_(scheduler),
      counters_(counters),
      budget_(std::move(budget)),
      cluster_(cluster) {}

void RequestHandler::handle(std::uint8_t opcode, std::string_view body, ReplyQueue& replies,
                            Session& session) {
  ++counters_.requests;
  const auto op = static_cast<Opcode>(opcode);
  if (auth_required() && !session.identity && op != Opcode::kHello && op != Opcode::kAuth &&
      protocol::is_known_opcode(opcode)) {
    return reject(Status::kNotAuthenticated,
                  std::string(protocol::to_string(op)) +
                      ": this server needs AUTH with a token first (mrctl --token-file FILE, or "
                      "MRD_TOKEN)",
                  replies.bytes());
  }
  if (op == Opcode::kFetch) return fetch(body, replies, session.scope());
  std::string& out = replies.bytes();
  switch (op) {
    case Opcode::kSubmit: return submit(body, replies, session);
    case Opcode::kFetch: break;  // answered above
    case Opcode::kStatus: return status(body, replies, session.scope());
    case Opcode::kCancel: return cancel(body, replies, session.scope());
    case Opcode::kList: return list(body, replies, session.scope());
    case Opcode::kStats: return stats(body, out, session);
    case Opcode::kHello: return hello(body, out);
    case Opcode::kAuth: return auth(body, out, session);
  }
  reject(Status::kUnknownOpcode,
         "unknown opcode " + std::to_string(opcode) + "; this server knows 0 to 7", out);
}

void RequestHandler::reject(Status status, const std::string& message, std::string& out) {
  ++counters_.rejected;
  log(Level::kDebug, "rejected: ", protocol::to_string(status), ": ", message);
  protocol::append_message(out, code(status), protocol::ErrorMessage{message});
}

void RequestHandler::submit(std::string_view body, ReplyQueue& replies, const Session& session) {
  std::string& out = replies.bytes();
  // Offsets, not copies: the body is copied once, into the segment the job keeps.
  auto decoded = protocol::decode_submit_layout(body);
  if (!decoded) return reject(Status::kBadRequest, "submit: " + decoded.error, out);
  if (cluster_) return submit_to_cluster(nullptr, body, *decoded.value, replies, session);
  accept_job(body, *decoded.value, replies, session, [&](protocol::SubmitLayout layout) {
    return SubmittedInput::copy_of(body, std::move(layout));
  });
}

void RequestHandler::submit_received(ReceivedBody received, ReplyQueue& replies,
                                     const Session& session) {
  ++counters_.requests;
  std::string& out = replies.bytes();
  const auto& segment = *received.segment;
  const std::string_view body(segment.data() + received.offset,
                              static_cast<std::size_t>(segment.size() - received.offset));
  auto decoded = protocol::decode_submit_layout(body);
  if (!decoded) return reject(Status::kBadRequest, "submit: " + decoded.error, out);
  if (cluster_) {
    // Sent to Redis from the segment it arrived in: no copy of the 64 MiB.
    return submit_to_cluster(std::shared_ptr<const Segment>(std::move(received.segment)), body,
                             *decoded.value, replies, session, received.digest);
  }
  accept_job(
      body, *decoded.value, replies, session,
      [&](protocol::SubmitLayout layout) {
        // The segment was padded from the same bytes the whole decode read: the values line up.
        return std::make_unique<SubmittedInput>(std::move(received.segment), received.offset,
                                                std::move(layout));
      },
      received.digest, std::move(received.file), std::move(received.early));
}

std::unique_ptr<EarlyStart> RequestHandler::start_early(std::string_view prefix,
                                                        SubmitUpload& upload,
                                                        const Session& session) {
  if (cluster_ || !EarlyStart::available() || !accepting_jobs_ ||
      !queue_full(session.tenant()).empty()) {
    return nullptr;
  }
  auto head = protocol::submit_head_from_prefix(prefix);
  if (!head || head->layout.input.kind != engine::input_kind_of<engine::DocumentsView>() ||
      head->layout.options.partitions > kMaxPartitions ||
      !engine::check_submit(head->layout.mapper, head->layout.reducer, head->layout.input.kind,
                            config_.enable_test_jobs)
           .empty()) {
    return nullptr;
  }
  const auto* kind = engine::find_job_kind(head->layout.mapper, head->layout.reducer);
  if (!kind || !kind->text_overlap()) return nullptr;
  auto input = std::make_shared<ArrivingInput>();
  input->placeholder =
      std::make_shared<JobTicket>(0, session.tenant());  // its turns are its tenant's
  try {
    input->mapping = upload.map_ahead();
  } catch (const std::system_error& e) {
    log(Level::kDebug, "no early maps for a SUBMIT (", e.what(), ")");
    return nullptr;
  }
  input->head = std::move(head->layout);
  input->input_offset = head->input_offset;
  input->body_bytes = upload.received() + upload.missing();
  input->body_offset = upload.offset();
  auto early = std::make_unique<EarlyStart>(std::move(input), scheduler_);
  early->arrived(upload.received());
  return early;
}

std::string RequestHandler::queue_full(const std::string& tenant) const {
  if (store_.unfinished() >= config_.max_queued_jobs) {
    return "queue full: " + std::to_string(store_.unfinished()) +
           " jobs are waiting or running; try again later";
  }
  const auto limit = config_.max_queued_jobs_per_tenant;
  if (limit != 0 && auth_required() && store_.unfinished(tenant) >= limit) {
    return "queue full: tenant '" + tenant + "' has " + std::to_string(store_.unfinished(tenant)) +
           " jobs waiting or running, its most (mrd --max-queued-jobs-per-tenant); try again "
           "once some have finished";
  }
  return {};
}

bool RequestHandler::runnable(const protocol::SubmitLayout& layout, std::string& out) {
  if (auto problem = engine::check_submit(layout.mapper, layout.reducer, layout.input.kind,
                                          config_.enable_test_jobs);
      !problem.empty()) {
    reject(Status::kBadJob, problem, out);
    return false;
  }
  if (layout.options.partitions > kMaxPartitions) {
    reject(Status::kBadJob, "partitions must be at most " + std::to_string(kMaxPartitions), out);
    return false;
  }
  return true;
}

template <class MakeInput>
void RequestHandler::accept_job(std::string_view body, protocol::SubmitLayout& layout,
                                ReplyQueue& replies, const Session& session, MakeInput make_input,
                                const std::optional<RequestDigest>& body_digest,
                                std::unique_ptr<ReceivedFile> file,
                                std::unique_ptr<EarlyStart> early) {
  std::string& out = replies.bytes();
  if (!runnable(layout, out)) return;
  // A resent SUBMIT (the client lost the first reply) gets the job it already has, even while
  // the server is stopping: that job was accepted before. A key is bound to the request it first
  // came with, so another request cannot learn or take that job.
  std::optional<RequestDigest> digest;
  if (!layout.idempotency_key.empty()) digest = known_or_digest_of(body, body_digest);
  const auto& tenant = session.tenant();
  if (const auto existing =
          digest ? store_.find_by_key(tenant, layout.idempotency_key, *digest) : std::nullopt) {
    if (!existing->same_request) {
      return reject(Status::kBadRequest, kKeyUsedForAnotherRequest, out);
    }
    return protocol::append_message(out, code(Status::kOk), protocol::JobId{existing->id});
  }
  if (!accepting_jobs_) {
    return reject(Status::kShuttingDown,
                  "the server is shutting down and takes no new jobs; submit again once it is "
                  "back",
                  out);
  }
  if (auto full = queue_full(tenant); !full.empty()) {
    return reject(Status::kQueueFull, full, out);
  }
  const auto input_bytes = SubmittedInput::held_bytes(body.size(), layout.input.documents.size());
  const auto never_fits = [&](std::uint64_t working) {
    return reject(Status::kBadJob,
                  "this job would need " + std::to_string(mebibytes(input_bytes + working)) +
                      " MiB of server memory to run (its input, and what its tasks hold), "
                      "more than the server's memory budget of " +
                      std::to_string(budget_->limit() >> 20) + " MiB (mrd --max-memory-mib)",
                  out);
  };
  // A job that could never run within the budget is refused now, with the reason, rather than
  // accepted and failed later (job_planner.hpp says what a running job holds).
  if (input_bytes > budget_->limit()) return never_fits(0);
  // Charged before anything is copied or recorded: a job the budget cannot hold is refused, not
  // lost later. Queued inputs leave an eighth of the budget to requests still arriving, so that
  // a client whose jobs do not fit hears QUEUE_FULL, not SERVER_BUSY with its connection closed.
  const auto for_requests = budget_->limit() / 8;
  MemoryCharge input_charge;
  if (budget_->used() + input_bytes <= budget_->limit() - for_requests) {
    input_charge = MemoryCharge::try_take(*budget_, input_bytes);
  }
  if (!input_charge) {
    return reject(
        Status::kQueueFull,
        "queue full: the server's memory budget is exhausted for new jobs (" +
            std::to_string(mebibytes(budget_->used())) + " of " +
            std::to_string(budget_->limit() >> 20) +
            " MiB in use, an eighth kept for requests being received; this job's input needs " +
            std::to_string(mebibytes(input_bytes)) + " MiB); try again later",
        out);
  }
  std::unique_ptr<SubmittedInput> input;
  try {
    input = make_input(std::move(layout));
  } catch (const std::exception& e) {
    log(Level::kError, "cannot keep a job's input: ", e.what());
    return reject(Status::kQueueFull,
                  std::string("queue full: cannot keep the job's input now (") + e.what() +
                      "); try again later",
                  out);
  }
  if (const auto working =
          planned_working_bytes(input->view(), input->layout().options, scheduler_.plan_limits());
      input_bytes + working > budget_->limit()) {
    return never_fits(working);
  }
  // With a data directory the job is answered once its row is committed, by the database
  // writer's thread: until then this connection waits, and every other goes on.
  // A SUBMIT whose maps started early hands them to its job; every other way out of here drops
  // `early`, which stops them.
  struct Accepted {
    std::shared_ptr<MemoryBudget> budget;  ///< outlives `charge`, however late this goes
    std::unique_ptr<SubmittedInput> input;
    MemoryCharge charge;
    std::unique_ptr<EarlyStart> early;
  };
  auto accepted = std::make_shared<Accepted>(
      Accepted{budget_, std::move(input), std::move(input_charge), std::move(early)});
  const auto deferred = store_.durable() ? replies.defer() : nullptr;
  const auto& key = accepted->input->layout().idempotency_key;
  // The bytes written are the input's own (the segment), alive as long as `accepted` is; or,
  // for a body received into a file, the file's name and the body's digest.
  const auto& layout_kept = accepted->input->layout();
  JobFacts facts{layout_kept.mapper, layout_kept.reducer, accepted->input->body().size()};
  store_.create(tenant, std::move(facts), key, digest ? &*digest : nullptr, accepted->input->body(),
                std::move(file),
                [this, accepted, deferred, &out](std::shared_ptr<JobTicket> ticket,
                                                 const std::string& error) {
                  std::string reply;
                  if (!ticket) {
                    reject(Status::kServerError, "cannot record the job: " + error, reply);
                  } else {
                    const auto id = ticket->id;
                    if (!ticket->cancelled) {  // a cancel may come first (LIST shows the job)
                      scheduler_.enqueue(std::move(ticket), std::move(accepted->input),
                                         std::move(accepted->charge),
                                         accepted->early ? accepted->early->release() : nullptr);
                    }
                    protocol::append_message(reply, code(Status::kOk), protocol::JobId{id});
                  }
                  // Without a database this runs inside create(), while `out` is the reply.
                  if (deferred) return deferred->resolve(std::move(reply));
                  out += reply;
                });
}

cluster::ClusterNode::Reply RequestHandler::deferred_reply(ReplyQueue& replies) {
  return [deferred = replies.defer()](std::string frame) { deferred->resolve(std::move(frame)); };
}

void RequestHandler::submit_to_cluster(std::shared_ptr<const void> owner, std::string_view body,
                                       const protocol::SubmitLayout& layout, ReplyQueue& replies,
                                       const Session& session,
                                       const std::optional<RequestDigest>& body_digest) {
  std::string& out = replies.bytes();
  if (!runnable(layout, out)) return;
  if (!accepting_jobs_) {
    return reject(Status::kShuttingDown,
                  "the server is shutting down and takes no new jobs; submit to another node, or "
                  "again once it is back",
                  out);
  }
  // The body stays in this node's memory until Redis has it, counted against the budget: in the
  // segment it arrived in, or (a small one, whose bytes the connection reuses) in a copy.
  auto charge = MemoryCharge::try_take(*budget_, body.size());
  if (!charge) {
    return reject(Status::kQueueFull,
                  "queue full: this node's memory budget cannot hold the job's input while it "
                  "goes to Redis (" +
                      std::to_string(mebibytes(budget_->used())) + " of " +
                      std::to_string(budget_->limit() >> 20) + " MiB in use); try again later",
                  out);
  }
  if (!owner) {
    auto copy = std::make_shared<const std::string>(body);
    body = *copy;
    owner = std::move(copy);
  }
  const bool keyed = !layout.idempotency_key.empty();
  cluster::ClusterNode::Submission submission{
      session.tenant(),
      JobFacts{layout.mapper, layout.reducer, body.size(), unix_ms_now()},
      keyed,
      layout.idempotency_key,
      keyed ? known_or_digest_of(body, body_digest) : RequestDigest{},
      std::move(owner),
      body,
      std::move(charge)};
  cluster_->submit(std::move(submission), deferred_reply(replies));
}

bool RequestHandler::read_job_id(std::string_view body, std::uint32_t& id, std::string& out) {
  auto decoded = protocol::decode<protocol::JobId>(body);
  if (!decoded) {
    reject(Status::kBadRequest, "the body must be a 4-byte job id: " + decoded.error, out);
    return false;
  }
  id = decoded.value->id;
  return true;
}

void RequestHandler::reply_missing(JobStore::Lookup lookup, std::uint32_t id, std::string& out) {
  append_missing_job(out, lookup == JobStore::Lookup::kExpired, id, auth_required());
}

void RequestHandler::fetch(std::string_view body, ReplyQueue& replies, const JobScope& scope) {
  std::string& out = replies.bytes();
  std::uint32_t id = 0;
  if (!read_job_id(body, id, out)) return;
  if (cluster_) {
    return cluster_->lookup(id, scope, cluster::ClusterNode::Want::kFetch, auth_required(),
                            deferred_reply(replies));
  }
  const JobRecord* record = nullptr;
  if (auto lookup = store_.find(id, scope, record); lookup != JobStore::Lookup::kFound) {
    return reply_missing(lookup, id, out);
  }
  if (!record->finished) {
    return protocol::append_message(out, code(Status::kPending), record->progress());
  }
  switch (record->final_state) {
    case protocol::JobState::kDone:
      // The result was encoded once, when the job finished (or written in place by its
      // workers); every FETCH shares those bytes.
      protocol::append_header(out, code(Status::kOk),
                              static_cast<std::uint32_t>(record->body->bytes().size()));
      return replies.share(record->body);
    case protocol::JobState::kFailed:
      return protocol::append_message(out, code(record->failure),
                                      protocol::ErrorMessage{std::string(record->body->bytes())});
    default:
      return protocol::append_message(
          out, code(Status::kJobCancelled),
          protocol::ErrorMessage{"job " + std::to_string(id) + " was cancelled"});
  }
}

namespace {

/// Decodes a request that carries a `u8 options` (version 3's LIST, version 4's STATUS and STATS)
/// into `request`. Returns what BAD_REQUEST says if the body does not decode or sets bits beyond
/// `known`, the options this server has (`meaning` names them).
template <class Request>
std::optional<std::string> decode_options(std::string_view body, const char* what,
                                          std::uint8_t known, const char* meaning,
                                          Request& request) {
  auto decoded = protocol::decode<Request>(body);
  if (!decoded) return std::string(what) + ": " + decoded.error;
  request = *decoded.value;
  if ((request.options & ~known) == 0) return std::nullopt;
  return std::string(what) + ": unknown option bits " + std::to_string(request.options) +
         "; this server knows " + std::to_string(known) + " (" + meaning + ")";
}

}  // namespace

void RequestHandler::status(std::string_view body, ReplyQueue& replies, const JobScope& scope) {
  std::string& out = replies.bytes();
  // Version 1's STATUS is a bare id and gets the progress; version 4's may ask for details.
  protocol::StatusRequest request{.options = 0};
  if (body.size() == sizeof(std::uint32_t) + 1) {
    if (auto problem =
            decode_options(body, "status", protocol::kStatusWithDetails, "with details", request)) {
      return reject(Status::kBadRequest, *problem, out);
    }
  } else if (!read_job_id(body, request.id, out)) {
    return;
  }
  if (cluster_) {
    return cluster_->lookup(request.id, scope,
                            (request.options & protocol::kStatusWithDetails)
                                ? cluster::ClusterNode::Want::kDetails
                                : cluster::ClusterNode::Want::kProgress,
                            auth_required(), deferred_reply(replies));
  }
  const JobRecord* record = nullptr;
  if (auto lookup = store_.find(request.id, scope, record); lookup != JobStore::Lookup::kFound) {
    return reply_missing(lookup, request.id, out);
  }
  if (request.options & protocol::kStatusWithDetails) {
    return protocol::append_message(out, code(Status::kOk), JobStore::details(*record));
  }
  protocol::append_message(out, code(Status::kOk), record->progress());
}

void RequestHandler::cancel(std::string_view body, ReplyQueue& replies, const JobScope& scope) {
  std::string& out = replies.bytes();
  std::uint32_t id = 0;
  if (!read_job_id(body, id, out)) return;
  if (cluster_) return cluster_->cancel(id, scope, auth_required(), deferred_reply(replies));
  // Answered once the cancellation is on disk (at once without a data directory): a cancelled
  // job never comes back after a restart.
  auto deferred = store_.durable() ? replies.defer() : nullptr;
  bool was_running = false;
  const auto lookup = store_.cancel(id, scope, was_running, [deferred, &out](const std::string&) {
    std::string reply;
    protocol::append_frame(reply, code(Status::kOk), {});
    if (deferred) return deferred->resolve(std::move(reply));
    out += reply;  // without a database this runs inside cancel(), while `out` is the reply
  });
  if (lookup != JobStore::Lookup::kFound) {
    if (deferred) replies.forget_deferred();  // nothing to wait for
    return reply_missing(lookup, id, out);
  }
  if (was_running) scheduler_.notify_cancelled();
}

void RequestHandler::list(std::string_view body, ReplyQueue& replies, const JobScope& scope) {
  std::string& out = replies.bytes();
  // Version 1's LIST has an empty body and gets ids and states; version 3's may ask for tenants.
  protocol::ListRequest request{.options = 0};
  if (!body.empty()) {
    if (auto problem =
            decode_options(body, "list", protocol::kListWithTenants, "with tenants", request)) {
      return reject(Status::kBadRequest, *problem, out);
    }
  }
  if (cluster_) {
    return cluster_->list(scope, request.options & protocol::kListWithTenants,
                          deferred_reply(replies));
  }
  append_job_list(out, store_.list(scope), request.options & protocol::kListWithTenants);
}

void RequestHandler::stats(std::string_view body, std::string& out, const Session& session) {
  // Version 1's STATS has an empty body; version 4's may ask for the details.
  protocol::StatsRequest request{.options = 0};
  if (!body.empty()) {
    if (auto problem =
            decode_options(body, "stats", protocol::kStatsWithDetails, "with details", request)) {
      return reject(Status::kBadRequest, *problem, out);
    }
  }
  if (auth_required() && session.identity->role != protocol::Role::kAdmin) {
    return reject(Status::kForbidden,
                  "stats: the server's counters are for admin tokens; tenant '" +
                      session.identity->tenant + "' is a user",
                  out);
  }
  const auto counters = server_stats();
  if (!(request.options & protocol::kStatsWithDetails)) {
    return protocol::append_message(out, code(Status::kOk), counters);
  }
  const auto& activity = scheduler_.activity();
  protocol::DetailedStats details{counters, activity.workers_busy.load(),
                                  activity.tasks_done.load(), activity.task_us.snapshot(),
                                  store_.job_latencies().snapshot()};
  protocol::append_message(out, code(Status::kOk), details);
}

protocol::ServerStats RequestHandler::server_stats() const {
  protocol::ServerStats stats;
  stats.uptime_ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - started_)
                                     .count());
  stats.connections_open = counters_.open;
  stats.connections_total = counters_.total;
  stats.requests_total = counters_.requests;
  stats.requests_rejected = counters_.rejected;
  store_.fill_stats(stats);
  stats.workers = scheduler_.workers();
  stats.worker_restarts = scheduler_.worker_restarts();
  return stats;
}

void RequestHandler::hello(std::string_view body, std::string& out) {
  auto decoded = protocol::decode<protocol::Hello>(body);
  if (!decoded) return reject(Status::kBadRequest, "hello: " + decoded.error, out);
  const auto version = decoded.value->protocol_version;
  if (version < protocol::kOldestProtocolVersion || version > protocol::kProtocolVersion) {
    return reject(Status::kVersionMismatch,
                  "this server speaks protocol versions " +
                      std::to_string(protocol::kOldestProtocolVersion) + " to " +
                      std::to_string(protocol::kProtocolVersion) + ", the client " +
                      std::to_string(version),
                  out);
  }
  // Each version gets its own layout: version 1's reply has no flags.
  if (version == 1) {
    return protocol::append_message(out, code(Status::kOk), protocol::Hello{1, "mrd " MRD_VERSION});
  }
  // A cluster's node says which one answered (the name is unique in the cluster).
  protocol::append_message(
      out, code(Status::kOk),
      protocol::HelloReply{version,
                           cluster_ ? "mrd " MRD_VERSION " node " + cluster_->name()
                                    : std::string("mrd " MRD_VERSION),
                           auth_required() ? protocol::kHelloAuthRequired : std::uint8_t{0}});
}

void RequestHandler::auth(std::string_view body, std::string& out, Session& session) {
  auto decoded = protocol::decode<protocol::AuthRequest>(body);
  if (!decoded) return reject(Status::kBadRequest, "auth: " + decoded.error, out);
  // The token itself is never logged, kept or echoed: only the tenant it names.
  if (!tokens_) {
    return reject(Status::kAuthFailed,
                  "auth: this server takes no tokens (it was started without --auth-file)", out);
  }
  auto identity = tokens_->find(decoded.value->token);
  if (!identity) {
    ++session.failed_auths;
    session.close = session.failed_auths >= kMaxFailedAuths;
    return reject(Status::kAuthFailed,
                  session.close ? "auth: the token is not valid; closing the connection"
                                : "auth: the token is not valid",
                  out);
  }
  session.identity = std::move(identity);
  protocol::append_message(out, code(Status::kOk),
                           protocol::AuthReply{session.identity->tenant, session.identity->role});
}

}  // namespace mrd::server
