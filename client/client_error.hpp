// ClientError: every failure the client library reports, tagged with what kind of failure it is.
//
// The kind is what a caller acts on (mrctl turns it into an exit code); the message is what a
// person reads, and already names the file, server or job involved.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "protocol/wire.hpp"

namespace mrd::client {

/// What went wrong, coarsely enough to choose a reaction.
enum class ErrorKind {
  kUsage,  ///< a malformed argument, such as a server address without a valid port
  kInput,  ///< a local file is missing, unreadable or malformed; or an output cannot be written
  kConnection,  ///< cannot connect, or the connection broke or stalled
  kTls,  ///< TLS failed: a certificate not trusted or for another name, a TLS alert, no TLS there
  kProtocol,   ///< the server sent something this client cannot understand, or speaks another
               ///< version
  kRejected,   ///< the server refused the request (queue full, bad job, unknown job, too large...)
  kJobFailed,  ///< the job itself failed, was cancelled, or its result has expired
};

/// "usage", "input", "connection", ... for messages and tests.
std::string_view to_string(ErrorKind kind);

/// A failure with its kind and, when the server reported it, the server's status.
class ClientError : public std::runtime_error {
 public:
  ClientError(ErrorKind kind, const std::string& message,
              std::optional<protocol::Status> server_status = std::nullopt)
      : std::runtime_error(message), kind_(kind), server_status_(server_status) {}

  ErrorKind kind() const { return kind_; }

  /// The reply status behind the error, if it came from a server reply.
  std::optional<protocol::Status> server_status() const { return server_status_; }

 private:
  ErrorKind kind_;
  std::optional<protocol::Status> server_status_;
};

}  // namespace mrd::client
