// TcpStream: one connected, blocking TCP socket, with a stall timeout on every call, and TLS over
// it if asked for (tls_session.hpp).
//
// Why plain POSIX sockets rather than Asio: the client is blocking and single-threaded, so it
// needs nothing from an event loop. Asio's synchronous calls wait in their own poll() and ignore
// SO_RCVTIMEO, while a plain socket honours it, which is how a stalled server becomes an error
// instead of a hung mrctl. It also keeps Asio's compile cost out of every tool that links this.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "client/server_address.hpp"
#include "client/socket_io.hpp"
#include "client/tls_session.hpp"

namespace mrd::client {

class TcpStream {
 public:
  /// Connects to the first address `address.host` resolves to that accepts, then (if
  /// `tls.enabled`) makes the TLS handshake. `io_timeout` bounds the connect and each later send
  /// or receive that makes no progress; zero waits forever. Throws ClientError (kConnection)
  /// naming the address and the reason.
  static TcpStream connect(const ServerAddress& address, std::chrono::milliseconds io_timeout,
                           const TlsOptions& tls = {});

  TcpStream(TcpStream&& other) noexcept;
  TcpStream& operator=(TcpStream&& other) noexcept;
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;
  ~TcpStream();

  /// Sends every byte. A broken connection is a value here, not an exception: the caller may
  /// still find the server's last words (say, FRAME_TOO_LARGE) waiting to be read.
  std::error_code send_all(std::string_view bytes);
  /// The same for `pieces`, in order, each sent from where it is (socket_send_all).
  std::error_code send_all(std::span<const SendPiece> pieces);

  /// Receives what is available, up to `into.size()` bytes, waiting for at least one. Returns
  /// the count, 0 when the server has closed, or sets `error` (std::errc::timed_out on a stall).
  std::size_t receive_some(std::span<char> into, std::error_code& error);

 private:
  explicit TcpStream(int fd) : fd_(fd) {}

  int fd_ = -1;                      ///< owned socket, -1 once moved from
  std::unique_ptr<TlsSession> tls_;  ///< TLS over fd_, if asked for
};

}  // namespace mrd::client
