// Segment: the bytes a job's input lives in, written once and then only read.
//
// A big input goes into shared memory: an anonymous memory file (memfd) that the server fills
// with write() (no page faults, no zero-filled pages: the kernel copies straight into the file's
// pages), then seals so that nobody can change or resize it, and maps read-only. Its descriptor
// goes to the workers over their sockets (SCM_RIGHTS, see fd_passing.hpp); each worker maps the
// part its task reads. A small input stays in the server's heap and travels inside its task
// messages: a memory file per tiny job would cost more than the copy it saves, and one descriptor
// per queued job.
//
// A big SUBMIT body does not wait in a buffer: the connection appends it to a GrowingSegment as it
// arrives and seals it when the last byte is in. With a data directory the same is done with a file
// there instead of a memory file, so that the job's input is on disk without being written again.
//
// The kernel frees a memory file when its last descriptor and mapping are gone, so nothing is left
// behind whether the job finishes, fails, is cancelled, or its worker is killed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace mrd::server {

/// Inputs at least this big go into shared memory.
inline constexpr std::uint64_t kSharedSegmentBytes = 64 << 10;

/// Most shared segments alive at once: each holds a descriptor until its job's maps are done, and
/// the server keeps this many descriptors aside for them. Past it, inputs wait on the heap and
/// travel inside their task messages, as small ones do: slower, never refused.
inline constexpr std::uint64_t kMaxSharedSegments = 256;

/// A read-only mapping of the first `size` bytes of a file that is still being written, with a
/// descriptor of its own: what the scheduler reads a job's input through while it is arriving, and
/// sends its workers, whatever becomes of the connection receiving it. Only bytes already written
/// may be read (past the file's end a read faults).
class ArrivingMapping {
 public:
  /// Maps the first `size` bytes of `fd` (which it duplicates). Throws std::system_error.
  ArrivingMapping(int fd, std::uint64_t size);
  ~ArrivingMapping();
  ArrivingMapping(const ArrivingMapping&) = delete;
  ArrivingMapping& operator=(const ArrivingMapping&) = delete;

  const char* data() const { return data_; }
  std::uint64_t size() const { return size_; }
  int fd() const { return fd_; }

 private:
  const char* data_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t mapped_ = 0;
  int fd_ = -1;
};

class Segment {
 public:
  /// A read-only segment of `padding` zero bytes followed by a copy of `bytes`: in a sealed memory
  /// file if `shared`, else on the heap. Throws std::system_error if the memory file cannot be
  /// made (no descriptor left, no memory), std::bad_alloc if the heap has no room.
  static std::unique_ptr<Segment> create(std::uint64_t padding, std::string_view bytes,
                                         bool shared);

  /// A read-only segment of the whole file `fd`, which it adopts (closed with it, also if this
  /// throws): a job's input kept in the data directory (input_file.hpp). Throws
  /// std::system_error if the file cannot be mapped.
  static std::unique_ptr<Segment> map_file(int fd);

  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const char* data() const { return data_; }
  std::uint64_t size() const { return size_; }
  /// The memory file's descriptor, or -1 for a heap segment.
  int fd() const { return fd_; }

  /// Shared segments alive in this process (each holds a descriptor until its job is done),
  /// result segments not yet finished included.
  static std::uint64_t live_shared() { return live_shared_.load(); }

 private:
  friend class GrowingSegment;
  Segment() = default;
  /// Maps the whole file fd_ (size_ bytes, at least one page) read-only. Throws std::system_error.
  void map_read_only();
  const char* data_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t mapped_ = 0;  ///< bytes this maps itself (at least one page for a shared segment)
  int fd_ = -1;
  std::unique_ptr<unsigned char[]> heap_;
  /// The mapping made while it was growing, which it reads through once sealed (GrowingSegment::
  /// map_ahead): views into it stay valid.
  std::shared_ptr<const ArrivingMapping> ahead_;
  static inline std::atomic<std::uint64_t> live_shared_{0};
  friend class ResultSegment;
};

/// A job's result, written by its workers straight into shared memory (a matrix product's C).
///
/// The server makes a memory file of `padding` zero bytes, then `header`, then room for the rest
/// of the body; each worker computes the range of it that its task writes (ResultRows) and writes
/// it there. When every task has answered, finish() seals the file and maps it read-only: from then
/// on it is the result's bytes, [padding, size()), which FETCH sends as they are. No descriptor
/// is kept after finish(): a finished result costs a mapping, not a file descriptor.
class ResultSegment {
 public:
  /// A memory file of `padding` + `body_bytes` bytes whose body starts with `header`. Throws
  /// std::system_error if it cannot be made (no descriptor left, no memory).
  static std::unique_ptr<ResultSegment> create(std::uint64_t padding, std::string_view header,
                                               std::uint64_t body_bytes);

  ~ResultSegment();
  ResultSegment(const ResultSegment&) = delete;
  ResultSegment& operator=(const ResultSegment&) = delete;

  /// The memory file's descriptor for workers to map, or -1 once finished.
  int fd() const { return fd_; }
  /// Where the body starts in the file.
  std::uint64_t padding() const { return padding_; }
  /// Bytes of the body.
  std::uint64_t body_size() const { return body_size_; }

  /// Every writer is done: seals the file against writes and resizes (if no writable mapping is
  /// left anywhere; otherwise it stays unsealed, and unchanged all the same), maps it read-only
  /// and closes its descriptor. Throws std::system_error if the mapping fails.
  void finish();
  /// The body, once finished (empty before).
  std::string_view body() const;

 private:
  ResultSegment() = default;
  void* mapping_ = nullptr;
  std::uint64_t mapped_ = 0;  ///< bytes mapped once finished
  std::uint64_t padding_ = 0;
  std::uint64_t body_size_ = 0;
  int fd_ = -1;
};

/// Bytes of memory this process keeps from task to task for ResultRows: a worker's memory limit
/// for a task comes on top of them, whatever the task.
std::uint64_t kept_memory_bytes();

/// Where a worker computes its task's part of a job's result file (a block of a matrix
/// product's rows of C) before it writes them there with one pwrite.
///
/// The memory is the worker's own and kept from task to task (in huge pages where the kernel
/// grants them), so its pages are touched once per worker, not once per task. On a virtual
/// machine the first touch of each page is dear: writing the rows in place, through a shared
/// mapping of the file made for the task, took longer than computing them here and copying them
/// into the file (docs/benchmarks.md, "Rows of C computed in kept memory").
class ResultRows {
 public:
  /// Room for bytes [begin, end) of the memory file `fd`, after checking that the file holds
  /// them. Throws std::runtime_error if it does not, std::bad_alloc if there is no memory.
  ResultRows(int fd, std::uint64_t begin, std::uint64_t end);
  /// Gives the memory back if it is more than kKeptBytes; else keeps it for the next task.
  ~ResultRows();
  ResultRows(const ResultRows&) = delete;
  ResultRows& operator=(const ResultRows&) = delete;

  /// A worker keeps at most this much between tasks (a 2000 x 2000 product's half is 16 MiB).
  static constexpr std::uint64_t kKeptBytes = 64 << 20;

  /// Where the rows go: end - begin bytes, page-aligned.
  char* data() const { return data_; }
  /// Writes the rows into the file, at `begin`. Throws std::runtime_error if it cannot.
  void write_to_file() const;

 private:
  int fd_;
  std::uint64_t begin_;
  std::uint64_t size_;
  char* data_ = nullptr;
};

/// A shared segment being filled in order, as its bytes arrive (a big SUBMIT body is received
/// straight into one), then sealed into a Segment. Its memory file holds only what was appended:
/// memory grows with the bytes that came, never with the size a sender announced.
class GrowingSegment {
 public:
  /// A memory file holding `padding` zero bytes; or, given the empty file `fd`, which it adopts,
  /// that file instead: with a data directory a big input goes to a file there (input_file.hpp).
  /// A file on disk cannot be sealed; nothing writes it once it is complete all the same. Throws
  /// std::system_error if the memory file cannot be made.
  explicit GrowingSegment(std::uint64_t padding, int fd = -1);
  ~GrowingSegment();
  GrowingSegment(const GrowingSegment&) = delete;
  GrowingSegment& operator=(const GrowingSegment&) = delete;

  /// Writes `bytes` after what is there. Throws std::system_error (no memory for the file).
  void append(std::string_view bytes);
  /// Maps the file as it will be once `size` bytes (padding included) are in, for reading what
  /// has arrived while the rest comes; once sealed, the segment reads through the same mapping.
  /// Throws std::system_error.
  std::shared_ptr<const ArrivingMapping> map_ahead(std::uint64_t size);
  /// Bytes in the file so far, padding included.
  std::uint64_t size() const { return segment_->size_; }
  /// Seals the file against every change and maps it read-only. Throws std::system_error.
  std::unique_ptr<Segment> seal();

 private:
  std::unique_ptr<Segment> segment_;  ///< owns the descriptor; mapped only once sealed
  bool memory_file_ = true;           ///< false: a file on disk, which cannot be sealed
};

/// A read-only mapping of part of a memory file, made by a worker for one task.
class SegmentView {
 public:
  /// Maps bytes [begin, end) of the memory file `fd`, after checking that the file holds them.
  /// Throws std::runtime_error if it does not or the mapping fails.
  SegmentView(int fd, std::uint64_t begin, std::uint64_t end);
  ~SegmentView();
  SegmentView(const SegmentView&) = delete;
  SegmentView& operator=(const SegmentView&) = delete;

  /// The address of byte `begin`.
  const char* data() const { return data_; }
  /// Bytes of address space the mapping takes.
  std::uint64_t mapped_bytes() const { return length_; }

 private:
  void* mapping_ = nullptr;
  std::uint64_t length_ = 0;
  const char* data_ = nullptr;
};

}  // namespace mrd::server
