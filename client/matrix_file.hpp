// Matrix files: .npy or text, chosen by the file name's extension.
#pragma once

#include <string>
#include <string_view>

#include "protocol/messages.hpp"

namespace mrd::client {

/// True when `path` ends in ".npy" (in any case).
bool is_npy_path(std::string_view path);

/// Loads a matrix: load_npy for a .npy path, parse_text_matrix for any other.
/// Throws ClientError (kInput) naming the file.
protocol::Matrix load_matrix_file(const std::string& path);

/// Saves a matrix: as encode_npy makes it for a .npy path, format_text_matrix for any other.
void save_matrix_file(const std::string& path, const protocol::Matrix& m);

}  // namespace mrd::client
