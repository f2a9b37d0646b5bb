// Session: who is on the other end of one connection, as far as its requests are concerned. The
// connection owns it; the request handler reads and changes it (AUTH).
#pragma once

#include <cstdint>
#include <memory>

#include "server/auth_tokens.hpp"
#include "server/job_scope.hpp"

namespace mrd::server {

struct Session {
  /// Set by a successful AUTH (and kept if a later AUTH fails); null before. Shared with the
  /// token table, so that a reload (SIGHUP) leaves authenticated connections as they are.
  std::shared_ptr<const Identity> identity;
  std::uint8_t failed_auths = 0;  ///< AUTHs refused on this connection
  bool close = false;             ///< close once this reply is written (too many failed AUTHs)

  /// The tenant the connection's jobs belong to: "" before AUTH (a server without tokens).
  const std::string& tenant() const {
    static const std::string kNobody;
    return identity ? identity->tenant : kNobody;
  }

  /// The jobs its requests may see and change.
  JobScope scope() const {
    if (!identity || identity->role == protocol::Role::kAdmin) return {};
    return {.everyone = false, .tenant = identity->tenant};
  }
};

}  // namespace mrd::server
