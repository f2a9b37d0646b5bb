// Fuzz target: the incremental frame parser (protocol/frame.hpp), fed as a connection feeds it.
//
// Input:
//   byte 0  settings: bit 0 the side (0: requests through parse_request, as mrd reads them;
//           1: replies through parse_frame, as mrctl reads them), bits 1-2 the limit,
//           bits 3-5 the largest piece the stream arrives in
//   byte 1  seed for the sizes of the pieces
//   rest    the stream of bytes
//
// The stream arrives in pieces, as from a socket, and whole frames are consumed from the front of
// the buffer (as server/connection.cpp does). What the connection sees must be what parsing the
// whole stream at once sees: the same frames, then the same end (a too-large header at the same
// place, or the same unfinished tail). Every parse result is checked against the bytes it came
// from, and every whole frame's body goes to the decoder for its opcode or status.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "protocol/codec.hpp"
#include "protocol/frame.hpp"
#include "protocol/limits.hpp"
#include "protocol/wire.hpp"

namespace {

using mrd::protocol::ParsedFrame;
using Outcome = ParsedFrame::Outcome;
namespace protocol = mrd::protocol;

enum class Side { kRequest, kReply };

/// Limits worth telling apart: the real ones, none at all, and small ones that the fuzzer can
/// cross with a few bytes (a limit is only interesting where a body meets it).
constexpr std::uint64_t kRequestLimits[] = {protocol::kDefaultMaxFrameBytes, 0, 16, 300};
constexpr std::uint64_t kReplyLimits[] = {std::numeric_limits<std::uint32_t>::max(), 0, 16, 300};
constexpr std::size_t kLargestPiece[] = {1, 2, 3, 7, 16, 64, 512, std::size_t(-1)};

struct Parser {
  Side side;
  std::uint64_t limit;

  ParsedFrame operator()(std::string_view input) const {
    return side == Side::kRequest ? protocol::parse_request(input, limit)
                                  : protocol::parse_frame(input, limit);
  }
  /// The body limit that applies to a frame starting with `code`.
  std::uint64_t body_limit(std::uint8_t code) const {
    return side == Side::kRequest ? protocol::request_body_limit(code, limit) : limit;
  }
};

/// Everything parse_frame promises about one result for `input`.
void check_result(const ParsedFrame& parsed, std::string_view input, const Parser& parser) {
  if (input.size() < protocol::kHeaderBytes) {
    FUZZ_CHECK(parsed.outcome == Outcome::kNeedMore, "a partial header needs more");
    FUZZ_CHECK(parsed.frame_bytes == 0, "a partial header gives no frame size");
    FUZZ_CHECK(parsed.body.empty(), "a partial header gives no body");
    return;
  }
  std::uint32_t declared = 0;
  for (int i = 4; i >= 1; --i)
    declared = (declared << 8) | static_cast<std::uint8_t>(input[i]);
  FUZZ_CHECK(parsed.code == static_cast<std::uint8_t>(input[0]), "the code is byte 0");
  FUZZ_CHECK(parsed.body_bytes == declared, "the body length is bytes 1-4, little-endian");

  const bool too_large = declared > parser.body_limit(parsed.code);
  if (too_large) {
    // The caller must not size a buffer from a length it has not accepted.
    FUZZ_CHECK(parsed.outcome == Outcome::kTooLarge, "a length over the limit is too large");
    FUZZ_CHECK(parsed.frame_bytes == 0, "a too-large frame reports no frame size");
    FUZZ_CHECK(parsed.body.empty(), "a too-large frame has no body");
    return;
  }
  FUZZ_CHECK(parsed.frame_bytes == protocol::kHeaderBytes + declared,
             "frame_bytes is header plus body as soon as the header is in");
  if (input.size() < parsed.frame_bytes) {
    FUZZ_CHECK(parsed.outcome == Outcome::kNeedMore, "a partial body needs more");
    FUZZ_CHECK(parsed.body.empty(), "a partial body is not handed out");
    return;
  }
  FUZZ_CHECK(parsed.outcome == Outcome::kFrame, "a whole frame is a frame");
  FUZZ_CHECK(parsed.body.data() == input.data() + protocol::kHeaderBytes,
             "the body starts right after the header");
  FUZZ_CHECK(parsed.body.size() == declared, "the body is as long as declared");
}

/// Every decoder that could meet this body, each held to the round trip.
void decode_body(const Parser& parser, std::uint8_t code, std::string_view body) {
  using mrd::fuzz::check_round_trip;
  if (parser.side == Side::kRequest) {
    if (!protocol::is_known_opcode(code)) return;  // answered UNKNOWN_OPCODE, body unread
    switch (static_cast<protocol::Opcode>(code)) {
      case protocol::Opcode::kSubmit: check_round_trip<protocol::SubmitRequest>(body); return;
      case protocol::Opcode::kFetch:
      case protocol::Opcode::kStatus:
      case protocol::Opcode::kCancel: check_round_trip<protocol::JobId>(body); return;
      case protocol::Opcode::kHello: check_round_trip<protocol::Hello>(body); return;
      case protocol::Opcode::kAuth: check_round_trip<protocol::AuthRequest>(body); return;
      case protocol::Opcode::kList:
        if (!body.empty()) check_round_trip<protocol::ListRequest>(body);  // version 3's options
        return;
      case protocol::Opcode::kStats: return;  // no body to decode
    }
    return;
  }
  if (!protocol::is_known_status(code)) return;  // mrctl gives up on an unknown status
  switch (static_cast<protocol::Status>(code)) {
    case protocol::Status::kOk:
      // What an OK body holds depends on the request, which a reply does not repeat.
      check_round_trip<protocol::Hello>(body);
      check_round_trip<protocol::HelloReply>(body);
      check_round_trip<protocol::AuthReply>(body);
      check_round_trip<protocol::JobId>(body);
      check_round_trip<protocol::JobResult>(body);
      check_round_trip<protocol::JobProgress>(body);
      check_round_trip<protocol::JobList>(body);
      check_round_trip<protocol::TenantJobList>(body);
      check_round_trip<protocol::ServerStats>(body);
      return;
    case protocol::Status::kPending: check_round_trip<protocol::JobProgress>(body); return;
    default: check_round_trip<protocol::ErrorMessage>(body); return;
  }
}

/// What a reader made of a stream.
struct Reading {
  std::vector<std::pair<std::uint8_t, std::string>> frames;  ///< code and body, in order
  bool too_large = false;  ///< ended on a header over the limit (the connection closes)
  std::size_t end_at = 0;  ///< stream offset of that header, or of the unfinished tail
  std::string tail;        ///< bytes left over when the stream ran out (not when too large)
};

/// The whole stream at once.
Reading read_whole(std::string_view stream, const Parser& parser) {
  Reading reading;
  std::size_t at = 0;
  for (;;) {
    const std::string_view rest = stream.substr(at);
    const auto parsed = parser(rest);
    check_result(parsed, rest, parser);
    if (parsed.outcome == Outcome::kFrame) {
      reading.frames.emplace_back(parsed.code, std::string(parsed.body));
      decode_body(parser, parsed.code, parsed.body);
      at += parsed.frame_bytes;  // >= kHeaderBytes, checked above: the loop always moves on
      continue;
    }
    reading.too_large = parsed.outcome == Outcome::kTooLarge;
    reading.end_at = at;
    if (!reading.too_large) reading.tail = std::string(rest);
    return reading;
  }
}

/// The stream in pieces of 1 to `largest_piece` bytes, consumed frame by frame from a buffer.
Reading read_in_pieces(std::string_view stream, const Parser& parser, std::size_t largest_piece,
                       std::uint8_t seed) {
  std::minstd_rand pieces(seed + 1u);  // the same sizes on every platform, for replays
  Reading reading;
  std::string buffer;  // received, not consumed; starts at stream offset `consumed`
  std::size_t consumed = 0;
  std::size_t received = 0;
  std::size_t known_frame_bytes = 0;  // the size the front frame announced, once its header is in
  while (received < stream.size()) {
    const std::size_t piece =
        largest_piece >= stream.size() ? stream.size() : 1 + pieces() % largest_piece;
    const std::size_t n = std::min(piece, stream.size() - received);
    buffer.append(stream.substr(received, n));
    received += n;

    std::size_t at = 0;
    for (;;) {
      const std::string_view rest = std::string_view(buffer).substr(at);
      const auto parsed = parser(rest);
      check_result(parsed, rest, parser);
      if (known_frame_bytes != 0) {
        // A connection sizes its buffer from the first answer; later bytes must not change it.
        FUZZ_CHECK(parsed.frame_bytes == known_frame_bytes,
                   "the frame size stays what the header said");
      }
      if (parsed.outcome == Outcome::kNeedMore) {
        known_frame_bytes = parsed.frame_bytes;
        break;
      }
      known_frame_bytes = 0;
      if (parsed.outcome == Outcome::kTooLarge) {
        reading.too_large = true;
        reading.end_at = consumed + at;
        return reading;  // the connection answers FRAME_TOO_LARGE and closes
      }
      reading.frames.emplace_back(parsed.code, std::string(parsed.body));
      at += parsed.frame_bytes;
    }
    buffer.erase(0, at);
    consumed += at;
  }
  reading.end_at = consumed;
  reading.tail = buffer;
  return reading;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t settings = data[0];
  const std::uint8_t seed = data[1];
  const std::string_view stream = mrd::fuzz::bytes_of(data + 2, size - 2);

  const Side side = (settings & 1) ? Side::kReply : Side::kRequest;
  const std::size_t limit_choice = (settings >> 1) & 3;
  const Parser parser{
      side, side == Side::kRequest ? kRequestLimits[limit_choice] : kReplyLimits[limit_choice]};
  const std::size_t largest_piece = kLargestPiece[(settings >> 3) & 7];

  const Reading whole = read_whole(stream, parser);
  const Reading pieces = read_in_pieces(stream, parser, largest_piece, seed);
  FUZZ_CHECK(pieces.frames == whole.frames, "pieces give the frames the whole stream gives");
  FUZZ_CHECK(pieces.too_large == whole.too_large, "pieces end the way the whole stream ends");
  FUZZ_CHECK(pieces.end_at == whole.end_at, "pieces end where the whole stream ends");
  FUZZ_CHECK(pieces.tail == whole.tail, "pieces leave the tail the whole stream leaves");
  return 0;
}
