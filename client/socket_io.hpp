// Sending and receiving on a connected, blocking socket whose timeouts (SO_SNDTIMEO, SO_RCVTIMEO)
// are set: what TcpStream does for plain TCP, and TlsSession for the encrypted bytes of TLS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

namespace mrd::client {

/// Sends every byte. Never raises SIGPIPE (a closed peer is EPIPE); a stall past the send timeout
/// is std::errc::timed_out.
std::error_code socket_send_all(int fd, std::string_view bytes);

/// Part of what a request sends: bytes in memory, or `file_bytes` bytes from `file_offset` of the
/// open file `file` (a document's text, a matrix's values: sent as they are read, never copied
/// into memory), which `name` names in errors.
struct SendPiece {
  std::string_view bytes;
  int file = -1;
  std::uint64_t file_offset = 0;
  std::uint64_t file_bytes = 0;
  std::string_view name;
  std::uint64_t size() const { return file >= 0 ? file_bytes : bytes.size(); }
  /// Bytes in memory.
  static SendPiece in_memory(std::string_view bytes) {
    SendPiece piece;
    piece.bytes = bytes;
    return piece;
  }
};

/// Sends every byte of `pieces`, in order, as one stream: pieces in memory with one sendmsg (a
/// gather write, at most IOV_MAX of them a call), files with sendfile. Throws ClientError
/// (kInput) if a file has fewer bytes than `file_bytes` (it shrank since it was opened).
std::error_code socket_send_all(int fd, std::span<const SendPiece> pieces);

/// Receives what is available, up to `into.size()` bytes, waiting for at least one. Returns the
/// count, 0 when the peer has closed, or sets `error` (std::errc::timed_out on a stall).
std::size_t socket_receive_some(int fd, std::span<char> into, std::error_code& error);

}  // namespace mrd::client
