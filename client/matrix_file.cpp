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
  return is_npy_path(path) ? load_npy(path) : parse_text_matrix(read_input_file(path), path);
}

void save_matrix_file(const std::string& path, const protocol::Matrix& m) {
  if (!is_npy_path(path)) return write_output_file(path, format_text_matrix(m));
  // The values are written from the matrix itself, after their header (on a little-endian host
  // the doubles' bytes already are '<f8'): not copied into a whole file's bytes first.
  const std::string header = npy_header(m.rows, m.cols);
  write_output_file(
      path,
      {header, {reinterpret_cast<const char*>(m.values.data()), m.values.size() * sizeof(double)}});
}

}  // namespace mrd::client
