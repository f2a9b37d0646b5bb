#include "client/token_file.hpp"

#include <cctype>
#include <fstream>

#include "client/client_error.hpp"

namespace mrd::client {

std::string read_token_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw ClientError(ErrorKind::kUsage, "--token-file " + path + ": cannot be read");
  std::string line;
  std::getline(file, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
    line.pop_back();
  if (line.empty()) {
    throw ClientError(ErrorKind::kUsage, "--token-file " + path + ": no token on its first line");
  }
  return line;
}

}  // namespace mrd::client
