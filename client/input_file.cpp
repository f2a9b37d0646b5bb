#include "client/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client/client_error.hpp"
#include "protocol/huge_pages.hpp"

namespace mrd::client {
namespace {

[[noreturn]] void file_error(const std::string& path, int error) {
  throw ClientError(ErrorKind::kInput, path + ": " + std::strerror(error));
}

}  // namespace

FdCloser::~FdCloser() {
  ::close(fd_);
}

std::string read_input_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) file_error(path, errno);
  const FdCloser closer(fd);

  struct stat info {};
  if (::fstat(fd, &info) != 0) file_error(path, errno);
  // open() succeeds on a directory; read() would then fail with a less helpful EISDIR.
  if (S_ISDIR(info.st_mode)) throw ClientError(ErrorKind::kInput, path + ": is a directory");

  std::string bytes;
  if (S_ISREG(info.st_mode)) {
    protocol::reserve_in_huge_pages(bytes, static_cast<std::size_t>(info.st_size));
  }
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got == 0) return bytes;
    if (got < 0) {
      if (errno == EINTR) continue;
      file_error(path, errno);
    }
    bytes.append(chunk, static_cast<std::size_t>(got));
  }
}

void write_output_file(const std::string& path, std::string_view bytes) {
  write_output_file(path, {bytes});
}

void write_output_file(const std::string& path, std::initializer_list<std::string_view> pieces) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) file_error(path, errno);
  const FdCloser closer(fd);
  for (auto bytes : pieces) {
    while (!bytes.empty()) {
      const ssize_t wrote = ::write(fd, bytes.data(), bytes.size());
      if (wrote < 0) {
        if (errno == EINTR) continue;
        file_error(path, errno);
      }
      bytes.remove_prefix(static_cast<std::size_t>(wrote));
    }
  }
}

}  // namespace mrd::client
