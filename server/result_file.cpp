#include "server/result_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace mrd::server {
namespace {

[[noreturn]] void result_file_error(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// Closes a descriptor when it goes out of scope, keeping the errno of whatever failed before.
struct CloseAtEnd {
  int fd;
  ~CloseAtEnd() {
    const int error = errno;
    ::close(fd);
    errno = error;
  }
};

}  // namespace

std::string results_directory(const std::string& data_directory) {
  return (std::filesystem::path(data_directory) / "results").string();
}

std::string result_file_name(std::uint32_t id) {
  return std::to_string(id) + ".result";
}

RequestDigest write_result_file(const std::string& directory, const std::string& name,
                                std::string_view bytes, bool sync) {
  const auto path = (std::filesystem::path(directory) / name).string();
  // The final name at once: only a committed row makes the file count, and a file no row names
  // is removed at the next start.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) result_file_error("creating " + path);
  {
    CloseAtEnd closed{fd};
    for (std::size_t done = 0; done < bytes.size();) {
      const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) errno = EIO;  // no room, and no error to say so: never loop forever
      if (n <= 0) result_file_error("writing " + path);
      done += static_cast<std::size_t>(n);
    }
    if (sync && ::fdatasync(fd) != 0) result_file_error("fdatasync " + path);
  }
  if (sync) {
    const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) result_file_error("opening " + directory + " to sync it");
    CloseAtEnd closed{dir};
    if (::fsync(dir) != 0) result_file_error("fsync " + directory);  // the file's name, too
  }
  return digest_of(bytes);
}

std::string read_result_file(const std::string& path, const RequestDigest& digest) {
  const auto unreadable = [&path](const char* what) {
    return std::runtime_error("its result file " + path + " cannot be " + what + ": " +
                              std::generic_category().message(errno));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw unreadable("opened");
  CloseAtEnd closed{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw unreadable("read");
  std::string bytes(static_cast<std::size_t>(info.st_size), '\0');
  for (std::size_t done = 0; done < bytes.size();) {
    const auto n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw unreadable("read");
    if (n == 0) break;  // shorter than it was a moment ago: the digest tells
    done += static_cast<std::size_t>(n);
  }
  if (digest_of(bytes) != digest) {
    throw std::runtime_error("its result file " + path +
                             " does not hold the bytes that were stored (SHA-256 differs)");
  }
  return bytes;
}

}  // namespace mrd::server
