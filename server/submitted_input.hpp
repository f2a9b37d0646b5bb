// SubmittedInput: a job's input, kept once for the job's whole life.
//
// The SUBMIT body is in a segment (pool/segment.hpp), placed so that its numbers sit on 8-byte
// boundaries, and sealed: a big body was received straight into it, a small one is copied once.
// From then on nothing copies it: the input is views into the segment, the scheduler cuts those
// views into chunks, and workers read their chunks in place from the segment's memory file (or, for
// a small input, from the task message).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "protocol/submit_layout.hpp"
#include "server/engine/input_view.hpp"
#include "server/pool/segment.hpp"

namespace mrd::server {

class SubmittedInput {
 public:
  /// Copies `body` (which decoded as `layout`) into a new segment, in a memory file if `shared`.
  /// Throws std::system_error if the segment cannot be made, std::bad_alloc without memory.
  SubmittedInput(std::string_view body, protocol::SubmitLayout layout, bool shared);
  /// A copy of `body` in the segment its size calls for: a memory file that workers map for a
  /// big input (while fewer than kMaxSharedSegments are alive), the heap for a small one, which
  /// travels in its task messages. Throws as the constructor does.
  static std::unique_ptr<SubmittedInput> copy_of(std::string_view body,
                                                 protocol::SubmitLayout layout);
  /// Takes a segment that already holds the body at `offset` (received straight into it), which
  /// decoded as `layout`. `offset` must be body_offset(layout.values_offset).
  SubmittedInput(std::unique_ptr<Segment> segment, std::uint64_t offset,
                 protocol::SubmitLayout layout);

  /// Where a body whose values start at `values_offset` goes in its segment: after the few bytes
  /// that put those 8-byte values on 8-byte boundaries.
  static std::uint64_t body_offset(std::uint64_t values_offset);

  const protocol::SubmitLayout& layout() const { return layout_; }
  /// The input, as views into the segment.
  const engine::InputView& view() const { return view_; }
  /// The body's bytes, in the segment.
  std::string_view body() const;
  /// The whole segment: the body after a few bytes of padding. The views point into it, and task
  /// messages name offsets into it (which are offsets into its memory file).
  std::string_view bytes() const;
  /// The segment's memory file, or -1 if it is on the heap.
  int fd() const { return segment_->fd(); }

  /// Bytes this holds in memory: the segment and the views' bookkeeping.
  std::uint64_t held_bytes() const;

  /// What an input of `body_bytes` with `documents` documents will hold, before it exists.
  static std::uint64_t held_bytes(std::uint64_t body_bytes, std::uint64_t documents);

 private:
  std::unique_ptr<Segment> segment_;
  std::uint64_t offset_ = 0;  ///< where the body starts in the segment
  protocol::SubmitLayout layout_;
  engine::InputView view_;
};

}  // namespace mrd::server
