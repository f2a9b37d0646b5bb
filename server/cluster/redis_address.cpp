#include "server/cluster/redis_address.hpp"

#include <charconv>

namespace mrd::server::cluster {

std::string RedisAddress::to_string() const {
  return host + ":" + std::to_string(port) + "/" + std::to_string(database);
}

namespace {

template <class Number>
bool parse_number(std::string_view text, Number& value) {
  const auto* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  return !text.empty() && error == std::errc() && stop == end;
}

}  // namespace

std::optional<RedisAddress> parse_redis_url(std::string_view url, std::string& error) {
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) {
    error = "a Redis URL starts with redis:// (redis://[user:password@]HOST:PORT[/DB])";
    return std::nullopt;
  }
  url.remove_prefix(scheme.size());
  RedisAddress address;
  // Credentials end at the last '@': a password may hold one.
  if (const auto at = url.rfind('@'); at != std::string_view::npos) {
    const auto credentials = url.substr(0, at);
    url.remove_prefix(at + 1);
    const auto colon = credentials.find(':');
    if (colon == std::string_view::npos) {
      error = "credentials in a Redis URL are user:password@ or :password@";
      return std::nullopt;
    }
    address.user = credentials.substr(0, colon);
    address.password = credentials.substr(colon + 1);
  }
  if (const auto slash = url.find('/'); slash != std::string_view::npos) {
    if (!parse_number(url.substr(slash + 1), address.database) || address.database > 65535) {
      error = "the Redis database after '/' must be a number";
      return std::nullopt;
    }
    url = url.substr(0, slash);
  }
  const auto colon = url.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    error = "a Redis URL names HOST:PORT (redis://127.0.0.1:6379)";
    return std::nullopt;
  }
  if (!parse_number(url.substr(colon + 1), address.port) || address.port == 0) {
    error = "the Redis port must be a number from 1 to 65535";
    return std::nullopt;
  }
  address.host = url.substr(0, colon);
  return address;
}

}  // namespace mrd::server::cluster
