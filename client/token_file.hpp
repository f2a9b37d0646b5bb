// The token a client presents with AUTH, read from a file (mrctl and mrd-web --token-file).
#pragma once

#include <string>

namespace mrd::client {

/// The first line of `path`, without trailing whitespace. Throws ClientError (kUsage) if the
/// file cannot be read or its first line is empty.
std::string read_token_file(const std::string& path);

}  // namespace mrd::client
