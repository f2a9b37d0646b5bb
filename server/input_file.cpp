#include "server/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace mrd::server {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string directory_of(const std::string& path) {
  return std::filesystem::path(path).parent_path().string();
}

/// fsync (or with `data_only`, fdatasync) of the file or directory `path`, opened with `flags`.
void sync_path(const std::string& path, int flags, bool data_only = false) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail("opening " + path + " to sync it");
  const int rc = data_only ? ::fdatasync(fd) : ::fsync(fd);
  const int error = errno;
  ::close(fd);
  errno = error;
  if (rc != 0) fail(std::string(data_only ? "fdatasync " : "fsync ") + path);
}

}  // namespace

std::string inputs_directory(const std::string& data_directory) {
  return (std::filesystem::path(data_directory) / "inputs").string();
}

std::string input_file_name(std::uint32_t id) {
  return std::to_string(id) + ".input";
}

std::unique_ptr<InputFile> InputFile::create(const std::string& directory, int& fd) {
  auto name = (std::filesystem::path(directory) / "upload-XXXXXX.part").string();
  fd = ::mkostemps(name.data(), 5, O_CLOEXEC);
  if (fd < 0) fail("creating an input file in " + directory);
  return std::unique_ptr<InputFile>(new InputFile(std::move(name)));
}

InputFile::~InputFile() {
  if (part_) ::unlink(path_.c_str());
}

void InputFile::rename_to(const std::string& name) {
  const auto target = (std::filesystem::path(directory_of(path_)) / name).string();
  if (target == path_) return;
  if (::rename(path_.c_str(), target.c_str()) != 0) fail("renaming " + path_ + " to " + target);
  path_ = target;
  part_ = false;
}

void InputFile::sync_data() const {
  sync_path(path_, O_RDONLY, true);
}

void InputFile::sync() const {
  sync_path(path_, O_RDONLY);
  sync_path(directory_of(path_), O_RDONLY | O_DIRECTORY);  // its name, too
}

void InputFile::remove() {
  ::unlink(path_.c_str());
  part_ = false;  // nothing left to remove
}

std::unique_ptr<Segment> open_stored_input(const std::string& path, std::uint64_t offset,
                                           const RequestDigest& digest) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error("its input file " + path +
                             " cannot be opened: " + std::generic_category().message(errno));
  }
  auto segment = Segment::map_file(fd);  // owns fd from here on
  if (segment->size() < offset) {
    throw std::runtime_error("its input file " + path + " holds " +
                             std::to_string(segment->size()) + " bytes, fewer than stored");
  }
  const std::string_view body(segment->data() + offset,
                              static_cast<std::size_t>(segment->size() - offset));
  if (digest_of(body) != digest) {
    throw std::runtime_error("its input file " + path +
                             " does not hold the bytes that were stored (SHA-256 differs)");
  }
  return segment;
}

std::size_t remove_unused_files(const std::string& directory, const std::set<std::string>& in_use) {
  std::size_t removed = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    if (in_use.count(entry.path().filename().string())) continue;
    if (std::filesystem::remove(entry.path(), error)) ++removed;
  }
  return removed;
}

}  // namespace mrd::server
