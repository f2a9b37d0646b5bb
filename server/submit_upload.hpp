// SubmitUpload: a big SUBMIT body received straight into the shared segment its job will keep.
//
// A SUBMIT of kSharedSegmentBytes or more does not wait in the connection's buffer. Once its
// header (the length already checked against the limit) and the first kSubmitPrefixBytes of its
// body are in, the connection knows where the input's values will start; it opens a memory file
// padded so that they land on 8-byte boundaries, and appends every byte that arrives to it. The
// file grows with what arrived, each byte charged to the memory budget first, never with what the
// header announced: a sender that lies or trickles costs what it sent. When the last byte is in,
// the file is sealed and the request handler decodes the body in place (views, no copy); if the
// connection ends first, the file goes with it.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "server/memory_budget.hpp"
#include "server/pool/segment.hpp"

namespace mrd::server {

class SubmitUpload {
 public:
  /// Starts receiving a body of `body_bytes` whose first bytes are `start` (at least
  /// kSubmitPrefixBytes of them), charged to `budget`. Null if the body goes the buffered way
  /// instead: its start is not a valid SUBMIT (the whole body's decode will say why), no memory
  /// file may be opened now (kMaxSharedSegments live), or the budget cannot hold `start`.
  static std::unique_ptr<SubmitUpload> start(std::string_view start, std::uint64_t body_bytes,
                                             MemoryBudget& budget);

  /// Appends `bytes` (at most missing()). False, nothing kept, if the budget or the system has no
  /// memory for them.
  bool add(std::string_view bytes);
  /// Body bytes still to come.
  std::uint64_t missing() const { return body_bytes_ - (segment_.size() - offset_); }
  /// Where the body starts in the segment (SubmittedInput::body_offset of its values).
  std::uint64_t offset() const { return offset_; }
  /// Once nothing is missing: the sealed segment, its charge released (the job that keeps it is
  /// charged anew). Throws std::system_error if it cannot be sealed or mapped.
  std::unique_ptr<Segment> finish();

  SubmitUpload(std::uint64_t offset, std::uint64_t body_bytes, MemoryCharge charge);

 private:
  std::uint64_t offset_;
  std::uint64_t body_bytes_;
  GrowingSegment segment_;
  MemoryCharge charge_;  ///< the bytes in segment_
};

}  // namespace mrd::server
