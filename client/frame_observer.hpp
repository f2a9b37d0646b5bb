// FrameObserver: a way to watch every frame a Connection sends and receives (mrctl --trace).
//
// The library only reports the bytes; what to do with them (describe_frame in frame_trace.hpp,
// printing, counting) is the observer's business, so the library itself never prints.
#pragma once

#include <functional>
#include <string_view>

#include "protocol/wire.hpp"

namespace mrd::client {

/// Which way a frame crossed the connection.
enum class Direction {
  kSent,      ///< a request, client to server
  kReceived,  ///< a reply, server to client
};

/// Called with each whole frame, header included, as it is sent (before the first byte goes
/// out) or once it has been received whole. `request` is the request's opcode: for a reply,
/// the request it answers, which an OK body's layout depends on. `frame` is valid only during
/// the call.
using FrameObserver =
    std::function<void(Direction direction, std::string_view frame, protocol::Opcode request)>;

}  // namespace mrd::client
