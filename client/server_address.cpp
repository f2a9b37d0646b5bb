#include "client/server_address.hpp"

#include <charconv>

#include "client/client_error.hpp"

namespace mrd::client {
namespace {

[[noreturn]] void bad_address(std::string_view text, std::string_view why) {
  throw ClientError(ErrorKind::kUsage,
                    "bad server address '" + std::string(text) + "': " + std::string(why));
}

std::uint16_t parse_port(std::string_view whole, std::string_view digits) {
  unsigned value = 0;
  const auto* end = digits.data() + digits.size();
  const auto [stop, error] = std::from_chars(digits.data(), end, value);
  if (digits.empty() || error != std::errc() || stop != end || value == 0 || value > 65535) {
    bad_address(whole, "the port must be a number from 1 to 65535");
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

ServerAddress parse_server_address(std::string_view text) {
  ServerAddress address;
  if (text.empty()) bad_address(text, "it is empty");

  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) bad_address(text, "missing ']'");
    address.host = std::string(text.substr(1, close - 1));
    if (address.host.empty()) bad_address(text, "empty host between brackets");
    const auto rest = text.substr(close + 1);
    if (rest.empty()) return address;
    if (rest.front() != ':') bad_address(text, "expected ':PORT' after ']'");
    address.port = parse_port(text, rest.substr(1));
    return address;
  }

  const auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    address.host = std::string(text);
    return address;
  }
  // More than one colon without brackets can only be an IPv6 literal with no port.
  if (text.find(':', colon + 1) != std::string_view::npos) {
    address.host = std::string(text);
    return address;
  }
  if (colon > 0) address.host = std::string(text.substr(0, colon));
  address.port = parse_port(text, text.substr(colon + 1));
  return address;
}

std::string to_string(const ServerAddress& address) {
  const bool ipv6 = address.host.find(':') != std::string::npos;
  return (ipv6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

std::vector<ServerAddress> parse_server_list(std::string_view text) {
  // No address form holds a comma (IPv6 literals neither), so the items are what lies between.
  if (text.find(',') == std::string_view::npos) return {parse_server_address(text)};
  std::vector<ServerAddress> addresses;
  for (std::size_t start = 0;;) {
    const auto comma = text.find(',', start);
    const auto item =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    if (item.empty()) {
      throw ClientError(ErrorKind::kUsage, "bad server list '" + std::string(text) + "': item " +
                                               std::to_string(addresses.size() + 1) + " is empty");
    }
    addresses.push_back(parse_server_address(item));
    if (comma == std::string_view::npos) return addresses;
    start = comma + 1;
  }
}

std::string to_string(const std::vector<ServerAddress>& addresses) {
  std::string text;
  for (const auto& address : addresses)
    text += (text.empty() ? "" : ",") + to_string(address);
  return text;
}

}  // namespace mrd::client
