#include "server/request_handler.hpp"

#include "protocol/codec.hpp"
#include "server/engine/job_kind.hpp"
#include "server/log.hpp"

namespace mrd::server {

using protocol::Opcode;
using protocol::Status;

namespace {
constexpr auto code(Status s) {
  return static_cast<std::uint8_t>(s);
}
}  // namespace

RequestHandler::RequestHandler(const ServerConfig& config, JobStore& store, Scheduler& scheduler,
                               ConnectionCounters& counters)
    : config_(config), store_(store), scheduler_(scheduler), counters_(counters) {}

void RequestHandler::handle(std::uint8_t opcode, std::string_view body, ReplyQueue& replies) {
  ++counters_.requests;
  if (opcode == static_cast<std::uint8_t>(Opcode::kFetch)) return fetch(body, replies);
  std::string& out = replies.bytes();
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kSubmit: return submit(body, out);
    case Opcode::kFetch: break;  // answered above
    case Opcode::kStatus: return status(body, out);
    case Opcode::kCancel: return cancel(body, out);
    case Opcode::kList:
    case Opcode::kStats:
      // Their body is empty: anything else is a request this version does not understand.
      if (!body.empty()) {
        return reject(Status::kBadRequest,
                      std::string(protocol::to_string(static_cast<Opcode>(opcode))) +
                          ": the body must be empty",
                      out);
      }
      return opcode == static_cast<std::uint8_t>(Opcode::kList) ? list(out) : stats(out);
    case Opcode::kHello: return hello(body, out);
  }
  reject(Status::kUnknownOpcode,
         "unknown opcode " + std::to_string(opcode) + "; this server knows 0 to 6", out);
}

void RequestHandler::reject(Status status, const std::string& message, std::string& out) {
  // A frame too large is refused by the connection from its header, before handle() counts it.
  if (status == Status::kFrameTooLarge) ++counters_.requests;
  ++counters_.rejected;
  log(Level::kDebug, "rejected: ", protocol::to_string(status), ": ", message);
  protocol::append_message(out, code(status), protocol::ErrorMessage{message});
}

void RequestHandler::submit(std::string_view body, std::string& out) {
  auto decoded = protocol::decode<protocol::SubmitRequest>(body);
  if (!decoded) return reject(Status::kBadRequest, "submit: " + decoded.error, out);
  auto& request = *decoded.value;
  if (auto problem = engine::check_submit(request, config_.enable_test_jobs); !problem.empty()) {
    return reject(Status::kBadJob, problem, out);
  }
  if (request.options.partitions > kMaxPartitions) {
    return reject(Status::kBadJob, "partitions must be at most " + std::to_string(kMaxPartitions),
                  out);
  }
  // A resent SUBMIT (the client lost the first reply) gets the job it already has, even while
  // the server is stopping: that job was accepted before.
  if (const auto existing = store_.find_by_key(request.idempotency_key)) {
    return protocol::append_message(out, code(Status::kOk), protocol::JobId{*existing});
  }
  if (!accepting_jobs_) {
    return reject(Status::kShuttingDown,
                  "the server is shutting down and takes no new jobs; submit again once it is "
                  "back",
                  out);
  }
  if (store_.unfinished() >= config_.max_queued_jobs) {
    return reject(Status::kQueueFull,
                  "queue full: " + std::to_string(store_.unfinished()) +
                      " jobs are waiting or running; try again later",
                  out);
  }
  std::shared_ptr<JobTicket> ticket;
  try {
    ticket = store_.create(request.idempotency_key, body);
  } catch (const std::exception& e) {
    log(Level::kError, "cannot accept a job: ", e.what());
    return reject(Status::kServerError, std::string("cannot record the job: ") + e.what(), out);
  }
  const auto id = ticket->id;
  scheduler_.enqueue(std::move(ticket), std::move(request));
  protocol::append_message(out, code(Status::kOk), protocol::JobId{id});
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
  if (lookup == JobStore::Lookup::kExpired) {
    protocol::append_message(
        out, code(Status::kJobExpired),
        protocol::ErrorMessage{"job " + std::to_string(id) + " expired: its result was evicted"});
  } else {
    protocol::append_message(out, code(Status::kUnknownJob),
                             protocol::ErrorMessage{"no job " + std::to_string(id)});
  }
}

void RequestHandler::fetch(std::string_view body, ReplyQueue& replies) {
  std::string& out = replies.bytes();
  std::uint32_t id = 0;
  if (!read_job_id(body, id, out)) return;
  const JobRecord* record = nullptr;
  if (auto lookup = store_.find(id, record); lookup != JobStore::Lookup::kFound) {
    return reply_missing(lookup, id, out);
  }
  if (!record->finished) {
    return protocol::append_message(out, code(Status::kPending), record->progress());
  }
  switch (record->final_state) {
    case protocol::JobState::kDone:
      // The result was encoded once, when the job finished; every FETCH shares those bytes.
      protocol::append_header(out, code(Status::kOk),
                              static_cast<std::uint32_t>(record->body->size()));
      return replies.share(record->body);
    case protocol::JobState::kFailed:
      return protocol::append_message(out, code(record->failure),
                                      protocol::ErrorMessage{*record->body});
    default:
      return protocol::append_message(
          out, code(Status::kJobCancelled),
          protocol::ErrorMessage{"job " + std::to_string(id) + " was cancelled"});
  }
}

void RequestHandler::status(std::string_view body, std::string& out) {
  std::uint32_t id = 0;
  if (!read_job_id(body, id, out)) return;
  const JobRecord* record = nullptr;
  if (auto lookup = store_.find(id, record); lookup != JobStore::Lookup::kFound) {
    return reply_missing(lookup, id, out);
  }
  protocol::append_message(out, code(Status::kOk), record->progress());
}

void RequestHandler::cancel(std::string_view body, std::string& out) {
  std::uint32_t id = 0;
  if (!read_job_id(body, id, out)) return;
  bool was_running = false;
  if (auto lookup = store_.cancel(id, was_running); lookup != JobStore::Lookup::kFound) {
    return reply_missing(lookup, id, out);
  }
  if (was_running) scheduler_.notify_cancelled();
  protocol::append_frame(out, code(Status::kOk), {});
}

void RequestHandler::list(std::string& out) {
  protocol::append_message(out, code(Status::kOk), store_.list());
}

void RequestHandler::stats(std::string& out) {
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
  protocol::append_message(out, code(Status::kOk), stats);
}

void RequestHandler::hello(std::string_view body, std::string& out) {
  auto decoded = protocol::decode<protocol::Hello>(body);
  if (!decoded) return reject(Status::kBadRequest, "hello: " + decoded.error, out);
  if (decoded.value->protocol_version != protocol::kProtocolVersion) {
    return reject(Status::kVersionMismatch,
                  "this server speaks protocol version " +
                      std::to_string(protocol::kProtocolVersion) + ", the client " +
                      std::to_string(decoded.value->protocol_version),
                  out);
  }
  protocol::append_message(out, code(Status::kOk),
                           protocol::Hello{protocol::kProtocolVersion, "mrd " MRD_VERSION});
}

}  // namespace mrd::server
