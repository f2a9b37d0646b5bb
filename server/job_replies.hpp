// The replies about jobs that a single server and a cluster node (cluster/cluster_node.cpp) both
// send, written once so that a client cannot tell which answered: the same bytes for a job that is
// missing, for a key reused with another request, and for LIST in either layout.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/codec.hpp"
#include "protocol/messages.hpp"

namespace mrd::server {

/// What BAD_REQUEST says to a SUBMIT whose idempotency key came first with another request.
inline constexpr const char* kKeyUsedForAnotherRequest =
    "submit: this idempotency key was already used with a different request; a different job "
    "needs a new key";

/// Appends the reply for job `id` that is not there: JOB_EXPIRED if its id was handed out
/// (`expired`), UNKNOWN_JOB if not. Another tenant's job gets these very bytes too (job_scope.hpp):
/// with tokens (`tokens`), the words say so.
inline void append_missing_job(std::string& out, bool expired, std::uint32_t id, bool tokens) {
  if (expired) {
    protocol::append_message(
        out, static_cast<std::uint8_t>(protocol::Status::kJobExpired),
        protocol::ErrorMessage{"job " + std::to_string(id) + " expired: its result was evicted" +
                               (tokens ? " (or it is not yours)" : "")});
  } else {
    protocol::append_message(out, static_cast<std::uint8_t>(protocol::Status::kUnknownJob),
                             protocol::ErrorMessage{"no job " + std::to_string(id)});
  }
}

/// Appends LIST's OK reply: with tenants (version 3's option), or version 1's ids and states.
inline void append_job_list(std::string& out, const protocol::TenantJobList& jobs,
                            bool with_tenants) {
  constexpr auto ok = static_cast<std::uint8_t>(protocol::Status::kOk);
  if (with_tenants) return protocol::append_message(out, ok, jobs);
  protocol::JobList list;
  list.jobs.reserve(jobs.jobs.size());
  for (const auto& job : jobs.jobs)
    list.jobs.push_back({job.id, job.state});
  protocol::append_message(out, ok, list);
}

}  // namespace mrd::server
