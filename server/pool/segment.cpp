#include "server/pool/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>
#include <system_error>

#include "protocol/huge_pages.hpp"

namespace mrd::server {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// A new descriptor of the same file, opened read-only: a shared mapping through it, or a worker
/// that receives it, cannot write the file.
int reopen_read_only(int fd) {
  return ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_CLOEXEC);
}

/// Writes all of `bytes` into `fd` at `offset`, however many calls it takes. Throws
/// std::system_error, saying `what` failed.
void write_all_at(int fd, std::string_view bytes, std::uint64_t offset, const char* what) {
  for (std::uint64_t done = 0; done < bytes.size();) {
    const auto n =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = EIO;  // no room, and no error to say so: never loop forever
    if (n <= 0) fail(what);
    done += static_cast<std::uint64_t>(n);
  }
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

GrowingSegment::GrowingSegment(std::uint64_t padding, int fd) : segment_(new Segment) {
  memory_file_ = fd < 0;
  if (memory_file_) fd = ::memfd_create("mrd-input", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) fail("memfd_create");
  segment_->fd_ = fd;  // closed by the Segment's destructor from here on
  ++Segment::live_shared_;
  segment_->size_ = padding;
  if (::ftruncate(fd, static_cast<off_t>(padding)) != 0) fail("ftruncate");
}

std::unique_ptr<Segment> Segment::map_file(int fd) {
  std::unique_ptr<Segment> segment(new Segment);
  segment->fd_ = fd;  // closed by the destructor from here on
  ++live_shared_;
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail("fstat");
  segment->size_ = static_cast<std::uint64_t>(info.st_size);
  segment->map_read_only();
  return segment;
}

GrowingSegment::~GrowingSegment() = default;

void GrowingSegment::append(std::string_view bytes) {
  // write() fills the file's pages directly, where writing through a mapping would fault (and
  // zero) every page first.
  write_all_at(segment_->fd_, bytes, segment_->size_, "writing the input to its file");
  segment_->size_ += bytes.size();
}

ArrivingMapping::ArrivingMapping(int fd, std::uint64_t size) : size_(size) {
  // A descriptor of its own, opened read-only: a shared mapping through a writable one would keep
  // the memory file from being sealed against writes once whole.
  fd_ = reopen_read_only(fd);
  if (fd_ < 0) fail("reopening the input read-only");
  mapped_ = std::max<std::uint64_t>(size, 1);
  void* mapping = ::mmap(nullptr, mapped_, PROT_READ, MAP_SHARED | MAP_NORESERVE, fd_, 0);
  if (mapping == MAP_FAILED) {
    const int error = errno;
    ::close(fd_);
    throw std::system_error(error, std::generic_category(), "mapping the arriving input");
  }
  data_ = static_cast<const char*>(mapping);
}

ArrivingMapping::~ArrivingMapping() {
  ::munmap(const_cast<char*>(data_), mapped_);
  ::close(fd_);
}

std::shared_ptr<const ArrivingMapping> GrowingSegment::map_ahead(std::uint64_t size) {
  if (!segment_->ahead_) segment_->ahead_ = std::make_shared<ArrivingMapping>(segment_->fd_, size);
  return segment_->ahead_;
}

std::unique_ptr<Segment> GrowingSegment::seal() {
  // No one may write, grow or shrink it again: a worker that maps it could otherwise see bytes
  // change under it, or fault past a shrunk end.
  const int fd = segment_->fd_;
  if (memory_file_ &&
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    // The kernel refuses the write seal while it holds an extra reference to one of the file's
    // pages: a fault being served in a worker whose map started while the file arrived, or a
    // page just written still in another core's batch of pages for the LRU list (which only
    // that core empties). Sealed against resizing, nobody can fault past its end; and the only
    // writable descriptor, this one, is swapped for a read-only one, so no one can write it.
    if (errno != EBUSY || ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
      fail("sealing the input");
    }
    const int read_only = reopen_read_only(fd);
    if (read_only < 0) fail("reopening the input read-only");
    ::close(fd);
    segment_->fd_ = read_only;
  }
  if (segment_->ahead_ && segment_->ahead_->size() == segment_->size_) {
    segment_->data_ = segment_->ahead_->data();  // the same addresses the early views point at
  } else {
    segment_->ahead_.reset();
    segment_->map_read_only();
  }
  return std::move(segment_);
}

void Segment::map_read_only() {
  const auto mapped = std::max<std::uint64_t>(size_, 1);
  void* mapping = ::mmap(nullptr, mapped, PROT_READ, MAP_SHARED, fd_, 0);
  if (mapping == MAP_FAILED) fail("mmap");
  mapped_ = mapped;
  data_ = static_cast<const char*>(mapping);
}

Segment::~Segment() {
  if (fd_ < 0) return;
  if (mapped_) ::munmap(const_cast<char*>(data_), mapped_);
  ::close(fd_);
  --live_shared_;
}

std::unique_ptr<ResultSegment> ResultSegment::create(std::uint64_t padding, std::string_view header,
                                                     std::uint64_t body_bytes) {
  std::unique_ptr<ResultSegment> segment(new ResultSegment);
  segment->padding_ = padding;
  segment->body_size_ = body_bytes;
  const int fd = ::memfd_create("mrd-result", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) fail("memfd_create");
  segment->fd_ = fd;  // closed by finish() or the destructor from here on
  ++Segment::live_shared_;
  if (::ftruncate(fd, static_cast<off_t>(padding + body_bytes)) != 0) fail("ftruncate");
  write_all_at(fd, header, padding, "writing the result's header to its memory file");
  return segment;
}

void ResultSegment::finish() {
  if (fd_ < 0) return;
  // Sealed, nobody can change the bytes FETCH sends. The seal needs every writable mapping gone:
  // workers unmap before they answer, and a killed worker's mappings go with it; should one
  // still linger, the file stays unsealed, with no writer left all the same.
  ::fcntl(fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  mapped_ = std::max<std::uint64_t>(padding_ + body_size_, 1);
  void* mapping = ::mmap(nullptr, mapped_, PROT_READ, MAP_SHARED, fd_, 0);
  if (mapping == MAP_FAILED) {
    mapped_ = 0;
    fail("mmap");
  }
  mapping_ = mapping;
  ::close(fd_);
  fd_ = -1;
  --Segment::live_shared_;
}

std::string_view ResultSegment::body() const {
  if (!mapping_) return {};
  return {static_cast<const char*>(mapping_) + padding_, body_size_};
}

ResultSegment::~ResultSegment() {
  if (mapping_) ::munmap(mapping_, mapped_);
  if (fd_ >= 0) {
    ::close(fd_);
    --Segment::live_shared_;
  }
}

namespace {

/// A mapping of bytes [begin, end) of the memory file `fd`, from the page that holds `begin` (a
/// mapping starts on a page boundary), after checking that the file holds them.
struct RangeMapping {
  void* mapping = nullptr;
  std::uint64_t length = 0;
  std::uint64_t skip = 0;  ///< from the mapping's start to byte `begin`
};

/// Throws unless the memory file `fd` holds bytes [begin, end).
void check_range(int fd, std::uint64_t begin, std::uint64_t end, const char* what) {
  struct stat info {};
  if (::fstat(fd, &info) != 0)
    throw std::runtime_error(std::string("cannot read the size of ") + what);
  if (begin > end || end > static_cast<std::uint64_t>(info.st_size)) {
    throw std::runtime_error("a task names bytes " + std::to_string(begin) + " to " +
                             std::to_string(end) + " of " + what + " of " +
                             std::to_string(info.st_size) + " bytes");
  }
}

RangeMapping map_range(int fd, std::uint64_t begin, std::uint64_t end, int protection, int flags,
                       const char* what) {
  check_range(fd, begin, end, what);
  RangeMapping range;
  const auto first_page = begin - begin % page_size();
  range.skip = begin - first_page;
  range.length = std::max<std::uint64_t>(end - first_page, 1);
  range.mapping = ::mmap(nullptr, range.length, protection, MAP_SHARED | flags, fd,
                         static_cast<off_t>(first_page));
  if (range.mapping == MAP_FAILED) {
    throw std::runtime_error(std::string("cannot map ") + what + ": " + std::strerror(errno));
  }
  return range;
}

}  // namespace

namespace {

/// The memory ResultRows computes in: this process's, kept from task to task.
struct KeptRows {
  char* data = nullptr;
  std::uint64_t size = 0;
};

KeptRows& kept_rows() {
  static KeptRows rows;  // a worker runs one task at a time
  return rows;
}

void release(KeptRows& rows) {
  if (rows.data) ::munmap(rows.data, rows.size);
  rows = {};
}

}  // namespace

ResultRows::ResultRows(int fd, std::uint64_t begin, std::uint64_t end)
    : fd_(fd), begin_(begin), size_(end - begin) {
  check_range(fd, begin, end, "the result");
  auto& kept = kept_rows();
  if (kept.size < size_ || !kept.data) {
    release(kept);
    // Whole huge pages: the hint only covers those.
    const auto huge = protocol::kHugePageBytes;
    const auto size = (std::max<std::uint64_t>(size_, 1) + huge - 1) / huge * huge;
    void* memory =
        ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    protocol::prefer_huge_pages(memory, size);
    kept = {static_cast<char*>(memory), size};
  }
  data_ = kept.data;
}

ResultRows::~ResultRows() {
  if (kept_rows().size > kKeptBytes) release(kept_rows());
}

std::uint64_t kept_memory_bytes() {
  return kept_rows().size;
}

void ResultRows::write_to_file() const {
  write_all_at(fd_, {data_, size_}, begin_, "writing the result's rows to its memory file");
}

SegmentView::SegmentView(int fd, std::uint64_t begin, std::uint64_t end) {
  // Not populated: a span may hold bytes the task never reads (the rows of A between its block
  // and B), and a read fault maps the pages around it too (the kernel's fault-around), so the
  // pages the task does read cost a fault per 64 KiB, not per page.
  const auto range = map_range(fd, begin, end, PROT_READ, 0, "the input");
  mapping_ = range.mapping;
  length_ = range.length;
  data_ = static_cast<const char*>(mapping_) + range.skip;
}

SegmentView::~SegmentView() {
  if (mapping_) ::munmap(mapping_, length_);
}

}  // namespace mrd::server
