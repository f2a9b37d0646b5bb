// Framing: the 5-byte header that starts every request and reply, and the incremental parser that
// finds whole frames in a buffer of received bytes.
//
//   offset 0  u8   opcode (request) or status (reply)
//   offset 1  u32  body length in bytes, little-endian
//   offset 5  body
//
// Pure functions over bytes: no sockets. Parsing never allocates; the caller owns the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mrd::protocol {

/// What parse_frame found at the start of a buffer.
struct ParsedFrame {
  enum class Outcome {
    kNeedMore,  ///< not a whole frame yet; `frame_bytes` is the total needed once the header is in
    kFrame,     ///< a whole frame: `code`, `body`, and `frame_bytes` to consume
    kTooLarge,  ///< the header declares a body longer than the limit; `code`, `body_bytes` say what
  };
  Outcome outcome = Outcome::kNeedMore;
  std::uint8_t code = 0;         ///< opcode or status byte (valid unless the header is incomplete)
  std::uint32_t body_bytes = 0;  ///< declared body length (valid unless the header is incomplete)
  std::size_t frame_bytes = 0;   ///< header + body, 0 while the header itself is incomplete
  std::string_view body;         ///< the body, for kFrame; views into the caller's buffer
};

/// Largest body allowed for a frame that starts with `code`. A parser gets one of these.
using BodyLimit = std::uint64_t (*)(std::uint8_t code, std::uint64_t max_frame_bytes);

/// Request limit: SUBMIT bodies up to `max_frame_bytes`, AUTH kMaxAuthBodyBytes, every other
/// opcode kMaxSmallBodyBytes.
std::uint64_t request_body_limit(std::uint8_t opcode, std::uint64_t max_frame_bytes);

/// Parses the frame at the start of `input`. The length is checked against the limit as soon as
/// the header is complete, before the body has arrived, so a caller may size its buffer from
/// `frame_bytes` safely.
ParsedFrame parse_frame(std::string_view input, std::uint64_t max_body_bytes);

/// Parses a request, applying request_body_limit.
ParsedFrame parse_request(std::string_view input, std::uint64_t max_frame_bytes);

/// Appends a header for a body of `body_bytes` to `out`.
void append_header(std::string& out, std::uint8_t code, std::uint32_t body_bytes);

/// Appends a whole frame (header and body) to `out`.
void append_frame(std::string& out, std::uint8_t code, std::string_view body);

}  // namespace mrd::protocol
