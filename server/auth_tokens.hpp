// The tokens a server with --auth-file accepts, read from that file (and again on SIGHUP).
//
// The file has one token per line, `tenant role sha256-of-token`, with # comments and blank lines:
//
//   # tenant   role    SHA-256 of the token (sha256sum, in hex)
//   alice      user    2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
//   ops        admin   fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9
//
// Only digests are kept, in the file and in memory: the server never has a token at rest. A token
// is looked up by its digest, compared with every line's in constant time (CRYPTO_memcmp, and no
// early exit), so the time an AUTH takes says nothing about which digests are close.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/wire.hpp"
#include "server/request_digest.hpp"

namespace mrd::server {

/// Who a token says a connection is.
struct Identity {
  std::string tenant;
  protocol::Role role = protocol::Role::kUser;
};

class AuthTokens {
 public:
  /// Reads `path`. Throws std::runtime_error naming the file and line of the first problem: an
  /// unreadable file, a line that is not three fields, a tenant name that is not 1 to 64 of
  /// [A-Za-z0-9._-], a role other than user or admin, a digest that is not 64 hex digits, or
  /// the same digest twice.
  static AuthTokens load(const std::string& path);

  /// The identity of `token`, or null if the file has no line for it.
  std::shared_ptr<const Identity> find(std::string_view token) const;

  /// Lines read (tokens known).
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    RequestDigest digest;
    std::shared_ptr<const Identity> identity;  ///< shared with the connections it authenticated
  };
  std::vector<Entry> entries_;
};

}  // namespace mrd::server
