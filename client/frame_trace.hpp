// describe_frame: one frame of the protocol as a person reads it, for mrctl --trace.
//
//   >> FETCH (1) body 4 bytes
//      01 04 00 00 00 07 00 00 00
//      job id: 7
//
// The header line (direction, opcode or status, body length), the bytes in hex as
// docs/protocol.md shows them, then the body decoded by the protocol codec, one field per line.
// A pure function over bytes: it never throws on bad input, it says what is wrong with it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "client/frame_observer.hpp"
#include "protocol/wire.hpp"

namespace mrd::client {

/// Bytes of a frame shown in hex; the rest is only counted, since a SUBMIT can be 384 MiB.
inline constexpr std::size_t kTraceHexBytes = 64;

/// Describes one whole frame as lines of text, each ending in '\n'. `answering` is the opcode
/// of the request a received frame replies to: an OK body is a job id after SUBMIT but a result
/// after FETCH. Without it an OK body is shown in hex only. Ignored for sent frames, whose first
/// byte says what they are.
///
/// Decoding copies the body, so describing a large SUBMIT costs as much memory again.
std::string describe_frame(Direction direction, std::string_view frame,
                           std::optional<protocol::Opcode> answering = std::nullopt);

}  // namespace mrd::client
