// RedisAddress: where a cluster's Redis is, parsed from `mrd --redis URL`.
//
// The URL is redis://[[user]:password@]HOST:PORT[/DB], the form redis-cli -u and most Redis clients
// take. Parsing is pure (no lookup, no socket), so that every malformed URL gets its own message in
// a unit test.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mrd::server::cluster {

struct RedisAddress {
  std::string host;
  std::uint16_t port = 6379;
  std::string user;      ///< empty: AUTH with the password alone (Redis's `default` user)
  std::string password;  ///< empty: no AUTH
  unsigned database = 0;

  /// HOST:PORT/DB, without credentials: what logs and errors may show.
  std::string to_string() const;
};

/// The address `url` names, or nullopt and `error` says what is wrong with it.
std::optional<RedisAddress> parse_redis_url(std::string_view url, std::string& error);

}  // namespace mrd::server::cluster
