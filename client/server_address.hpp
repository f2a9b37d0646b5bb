// ServerAddress: where mrd listens, parsed from "HOST:PORT" as users type it; and lists of them
// ("a:1936,b:1936"), the nodes of a cluster a client fails over between (failover_connection.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/wire.hpp"

namespace mrd::client {

/// The address mrctl uses when neither --server nor MRD_SERVER says otherwise.
inline constexpr std::string_view kDefaultServer = "127.0.0.1:1936";

/// A host name or IP literal and a TCP port.
struct ServerAddress {
  std::string host = "127.0.0.1";  ///< name or literal; IPv6 literals without brackets
  std::uint16_t port = protocol::kDefaultPort;
  bool operator==(const ServerAddress&) const = default;
};

/// Parses "HOST:PORT", "HOST", ":PORT", "[V6]:PORT", "[V6]" or a bare IPv6 literal ("::1"). A
/// missing host means 127.0.0.1 and a missing port means 1936. Throws ClientError (kUsage) on an
/// empty host in brackets, a port that is not a number in 1..65535, or text after "]".
ServerAddress parse_server_address(std::string_view text);

/// "host:port", with brackets around IPv6 literals so the result parses back.
std::string to_string(const ServerAddress& address);

/// Parses a comma-separated list of addresses, each as parse_server_address reads it:
/// "a:1936,b:1936", "[::1]:1936,10.0.0.2". Text without a comma is one address, parsed (and
/// refused) exactly as parse_server_address does. Throws ClientError (kUsage) for an empty item
/// ("a,,b", "a,", ",a") or a bad address, naming it. A server may be listed more than once.
std::vector<ServerAddress> parse_server_list(std::string_view text);

/// The addresses joined by commas, in the form parse_server_list reads back.
std::string to_string(const std::vector<ServerAddress>& addresses);

}  // namespace mrd::client
