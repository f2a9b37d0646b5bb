// Reading and writing whole local files, with errors that name the file.
#pragma once

#include <string>
#include <string_view>

namespace mrd::client {

/// Every byte of the file at `path`, read in binary. Works for pipes and /dev/stdin too.
/// Throws ClientError (kInput): "PATH: is a directory", "PATH: No such file or directory", ...
std::string read_input_file(const std::string& path);

/// Replaces the file at `path` with `bytes`. Throws ClientError (kInput) naming the file.
void write_output_file(const std::string& path, std::string_view bytes);

}  // namespace mrd::client
