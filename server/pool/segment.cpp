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

std::unique_ptr<Segment> Segment::create(std::uint64_t padding, std::string_view bytes,
                                         bool shared) {
  if (shared) {
    GrowingSegment growing(padding);
    growing.append(bytes);
    return growing.seal();
  }
  std::unique_ptr<Segment> segment(new Segment);
  segment->size_ = padding + bytes.size();
  // unsigned char: storage in which the doubles of an input may be viewed.
  segment->heap_ =
      std::make_unique_for_overwrite<unsigned char[]>(std::max<std::uint64_t>(segment->size_, 1));
  std::memset(segment->heap_.get(), 0, padding);
  std::memcpy(segment->heap_.get() + padding, bytes.data(), bytes.size());
  segment->data_ = reinterpret_cast<const char*>(segment->heap_.get());
  return segment;
}

GrowingSegment::GrowingSegment(std::uint64_t padding) : segment_(new Segment) {
  const int fd = ::memfd_create("mrd-input", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) fail("memfd_create");
  segment_->fd_ = fd;  // closed by the Segment's destructor from here on
  ++Segment::live_shared_;
  segment_->size_ = padding;
  if (::ftruncate(fd, static_cast<off_t>(padding)) != 0) fail("ftruncate");
}

GrowingSegment::~GrowingSegment() = default;

void GrowingSegment::append(std::string_view bytes) {
  // write() fills the file's pages directly, where writing through a mapping would fault (and
  // zero) every page first.
  const int fd = segment_->fd_;
  for (std::uint64_t done = 0; done < bytes.size();) {
    const auto n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                            static_cast<off_t>(segment_->size_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("writing the input to its memory file");
    done += static_cast<std::uint64_t>(n);
  }
  segment_->size_ += bytes.size();
}

std::unique_ptr<Segment> GrowingSegment::seal() {
  // No one may write, grow or shrink it again: a worker that maps it could otherwise see bytes
  // change under it, or fault past a shrunk end.
  const int fd = segment_->fd_;
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    fail("sealing the input");
  }
  const auto mapped = std::max<std::uint64_t>(segment_->size_, 1);
  void* mapping = ::mmap(nullptr, mapped, PROT_READ, MAP_SHARED, fd, 0);
  if (mapping == MAP_FAILED) fail("mmap");
  segment_->mapped_ = mapped;
  segment_->data_ = static_cast<const char*>(mapping);
  return std::move(segment_);
}

Segment::~Segment() {
  if (fd_ < 0) return;
  if (mapped_) ::munmap(const_cast<char*>(data_), mapped_);
  ::close(fd_);
  --live_shared_;
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
  // Not populated: a span may hold bytes the task never reads (the rows of A between its block
  // and B), and a read fault maps the pages around it too (the kernel's fault-around), so the
  // pages the task does read cost a fault per 64 KiB, not per page.
  mapping_ = ::mmap(nullptr, length_, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(first_page));
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
