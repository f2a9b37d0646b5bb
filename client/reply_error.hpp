// How an error reply from the server becomes a ClientError: its kind and a readable message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "client/client_error.hpp"
#include "protocol/wire.hpp"

namespace mrd::client {

/// The kind of failure a reply status means to a client:
///   job failed / cancelled / expired                -> kJobFailed
///   queue full, bad job, shutting down, unknown job,
///   frame too large                                 -> kRejected
///   server busy (connections or memory: retryable),
///   unavailable (a cluster node without its Redis)  -> kConnection
///   bad request, unknown opcode, version mismatch,
///   and OK or PENDING where they make no sense      -> kProtocol
ErrorKind error_kind_of(protocol::Status status);

/// The description of a request about one job, for its errors: "fetch job 7".
inline std::string job_what(std::string_view verb, std::uint32_t job_id) {
  return std::string(verb) + " job " + std::to_string(job_id);
}

/// A ClientError for a reply with `status` to the request described by `what` ("submit",
/// "fetch job 7"), quoting the server's own message when it sent one.
ClientError reply_error(std::string_view what, protocol::Status status,
                        std::string_view server_message);

}  // namespace mrd::client
