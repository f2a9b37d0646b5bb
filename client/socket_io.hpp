// Sending and receiving on a connected, blocking socket whose timeouts (SO_SNDTIMEO, SO_RCVTIMEO)
// are set: what TcpStream does for plain TCP, and TlsSession for the encrypted bytes of TLS.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <system_error>

namespace mrd::client {

/// Sends every byte. Never raises SIGPIPE (a closed peer is EPIPE); a stall past the send timeout
/// is std::errc::timed_out.
std::error_code socket_send_all(int fd, std::string_view bytes);

/// Sends every byte of `pieces`, in order, as one stream (a gather write: sendmsg with several
/// buffers, so that they need not be copied into one first).
std::error_code socket_send_all(int fd, std::span<const std::string_view> pieces);

/// Receives what is available, up to `into.size()` bytes, waiting for at least one. Returns the
/// count, 0 when the peer has closed, or sets `error` (std::errc::timed_out on a stall).
std::size_t socket_receive_some(int fd, std::span<char> into, std::error_code& error);

}  // namespace mrd::client
