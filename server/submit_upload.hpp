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
//
// With a data directory the file is a part file there instead (input_file.hpp). The body is hashed
// as it arrives when its digest will be needed: with a data directory (its row will name the file
// and keep the digest, not the 64 MiB), or when it carries an idempotency key (bound to the
// digest). Hashing it once whole would read all of it again, on the network thread, before the
// reply.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "server/early_start.hpp"
#include "server/input_file.hpp"
#include "server/memory_budget.hpp"
#include "server/pool/segment.hpp"
#include "server/request_digest.hpp"

namespace mrd::server {

/// A SUBMIT body received whole.
struct ReceivedBody {
  std::unique_ptr<Segment> segment;    ///< sealed, read-only
  std::uint64_t offset = 0;            ///< where the body starts in it
  std::unique_ptr<ReceivedFile> file;  ///< with a data directory: the file the segment maps
  std::unique_ptr<EarlyStart> early;   ///< if its maps started while it arrived
  /// The body's digest, if it was hashed as it arrived (with a file, or an idempotency key).
  std::optional<RequestDigest> digest;
};

class SubmitUpload {
 public:
  /// Starts receiving a body of `body_bytes` whose first bytes are `start` (at least
  /// kSubmitPrefixBytes of them), charged to `budget`, into a part file in `inputs_directory`
  /// (with a data directory) or else a memory file. Null if the body goes the buffered way
  /// instead: its start is not a valid SUBMIT (the whole body's decode will say why), no file
  /// may be opened now (kMaxSharedSegments live, or the system refuses), or the budget cannot
  /// hold `start`.
  static std::unique_ptr<SubmitUpload> start(std::string_view start, std::uint64_t body_bytes,
                                             MemoryBudget& budget,
                                             const std::string& inputs_directory);

  /// Appends `bytes` (at most missing()). False, nothing kept, if the budget has no room for them
  /// or the system cannot store them (then error() says why).
  bool add(std::string_view bytes);
  /// Why the system could not store what add() was given (a full disk, say); empty otherwise.
  const std::string& error() const { return error_; }
  /// Body bytes still to come.
  std::uint64_t missing() const { return body_bytes_ - (segment_.size() - offset_); }
  /// Body bytes received so far.
  std::uint64_t received() const { return segment_.size() - offset_; }
  /// Where the body starts in the segment (SubmittedInput::body_offset of its values).
  std::uint64_t offset() const { return offset_; }
  /// The file mapped as it will be when the body is whole, to read what has arrived while the rest
  /// comes (early_start.hpp). Throws std::system_error.
  std::shared_ptr<const ArrivingMapping> map_ahead() {
    return segment_.map_ahead(offset_ + body_bytes_);
  }
  /// Once nothing is missing: the sealed segment, its charge released (the job that keeps it is
  /// charged anew). Throws std::system_error if it cannot be sealed or mapped.
  ReceivedBody finish();

  /// Fills `file` (whose descriptor is `fd`, adopted), or a new memory file if it is null; hashes
  /// what arrives if `hash` (always with a file).
  SubmitUpload(std::uint64_t offset, std::uint64_t body_bytes, MemoryCharge charge,
               std::unique_ptr<InputFile> file, int fd, bool hash);

 private:
  std::uint64_t offset_;
  std::uint64_t body_bytes_;
  GrowingSegment segment_;
  std::unique_ptr<InputFile> file_;       ///< the part file, with a data directory
  std::unique_ptr<DigestStream> digest_;  ///< of the body so far, if it is hashed
  MemoryCharge charge_;                   ///< the bytes in segment_
  std::string error_;                     ///< see error()
};

}  // namespace mrd::server
