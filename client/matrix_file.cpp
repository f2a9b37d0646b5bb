#include "client/matrix_file.hpp"

#include <algorithm>
#include <cctype>

#include "client/input_file.hpp"
#include "client/npy.hpp"
#include "client/text_matrix.hpp"

namespace mrd::client {

bool is_npy_path(std::string_view path) {
  constexpr std::string_view kExtension = ".npy";
  if (path.size() < kExtension.size()) return false;
  const auto tail = path.substr(path.size() - kExtension.size());
  return std::equal(tail.begin(), tail.end(), kExtension.begin(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == b;
  });
}

protocol::Matrix load_matrix_file(const std::string& path) {
  const std::string bytes = read_input_file(path);
  return is_npy_path(path) ? parse_npy(bytes, path) : parse_text_matrix(bytes, path);
}

void save_matrix_file(const std::string& path, const protocol::Matrix& m) {
  write_output_file(path, is_npy_path(path) ? encode_npy(m) : format_text_matrix(m));
}

}  // namespace mrd::client
