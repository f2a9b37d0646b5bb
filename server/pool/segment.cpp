#include "server/pool/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010  // Linux 5.1; older headers lack the name
#endif

namespace mrd::server {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::uint64_t page_size() {
  static const auto size = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

std::unique_ptr<Segment> Segment::create(std::uint64_t size, bool shared) {
  std::unique_ptr<Segment> segment(new Segment);
  segment->size_ = size;
  if (!shared) {
    // Not zeroed: every byte is written before it is read.
    segment->heap_ = std::make_unique_for_overwrite<char[]>(std::max<std::uint64_t>(size, 1));
    segment->data_ = segment->heap_.get();
    return segment;
  }
  const int fd = ::memfd_create("mrd-input", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) fail("memfd_create");
  segment->fd_ = fd;  // closed by the destructor from here on
  ++live_shared_;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) fail("ftruncate");
  // A file's pages exist only once written, so the size costs nothing until the bytes arrive.
  segment->mapped_ = std::max<std::uint64_t>(size, 1);
  void* mapping = ::mmap(nullptr, segment->mapped_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping == MAP_FAILED) {
    segment->mapped_ = 0;
    fail("mmap");
  }
  segment->data_ = static_cast<char*>(mapping);
  return segment;
}

Segment::~Segment() {
  if (fd_ < 0) return;
  if (mapped_) ::munmap(data_, mapped_);
  ::close(fd_);
  --live_shared_;
}

void Segment::seal() {
  if (fd_ < 0) return;
  // Read-only here first; then no one may write, grow or shrink the file again (a worker that
  // maps it could otherwise see bytes change under it, or fault past a shrunk end).
  if (::mprotect(data_, mapped_, PROT_READ) != 0) fail("mprotect");
  if (::fcntl(fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) !=
      0) {
    fail("sealing the input");
  }
}

SegmentView::SegmentView(int fd, std::uint64_t begin, std::uint64_t end) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw std::runtime_error("cannot read the input's size");
  if (begin > end || end > static_cast<std::uint64_t>(info.st_size)) {
    throw std::runtime_error("a task names bytes " + std::to_string(begin) + " to " +
                             std::to_string(end) + " of an input of " +
                             std::to_string(info.st_size) + " bytes");
  }
  // A mapping starts on a page boundary: map from the page that holds `begin`.
  const auto first_page = begin - begin % page_size();
  length_ = std::max<std::uint64_t>(end - first_page, 1);
  // Populated at once: one call instead of a page fault per 4 KiB the task then reads.
  mapping_ = ::mmap(nullptr, length_, PROT_READ, MAP_SHARED | MAP_POPULATE, fd,
                    static_cast<off_t>(first_page));
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    throw std::runtime_error("cannot map the task's input: " + std::string(std::strerror(errno)));
  }
  data_ = static_cast<const char*>(mapping_) + (begin - first_page);
}

SegmentView::~SegmentView() {
  if (mapping_) ::munmap(mapping_, length_);
}

}  // namespace mrd::server
