#include "client/tcp_stream.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "client/client_error.hpp"
#include "client/socket_io.hpp"

namespace mrd::client {
namespace {

std::error_code last_error() {
  return {errno, std::generic_category()};
}

/// A would-block from a socket with SO_RCVTIMEO/SO_SNDTIMEO means the timeout ran out.
std::error_code timeout_or(std::error_code error) {
  if (error == std::errc::resource_unavailable_try_again ||
      error == std::errc::operation_would_block || error == std::errc::operation_in_progress) {
    return std::make_error_code(std::errc::timed_out);
  }
  return error;
}

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) return;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  // On Linux SO_SNDTIMEO bounds connect() too.
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

}  // namespace

TcpStream TcpStream::connect(const ServerAddress& address, std::chrono::milliseconds io_timeout,
                             const TlsOptions& tls) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const auto port = std::to_string(address.port);
  if (const int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw ClientError(ErrorKind::kConnection,
                      "cannot resolve '" + address.host + "': " + gai_strerror(rc));
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, &freeaddrinfo);

  std::error_code error;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = last_error();
      continue;
    }
    set_timeouts(fd, io_timeout);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      // Each request goes out in one send(); don't let Nagle hold back the tail of a large one.
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      TcpStream stream(fd);
      if (tls.enabled) stream.tls_ = TlsSession::handshake(fd, address, tls);
      return stream;
    }
    error = timeout_or(last_error());
    ::close(fd);
  }

  std::string message = "cannot connect to " + to_string(address) + ": " + error.message();
  if (error == std::errc::connection_refused) message += " (is mrd running there?)";
  throw ClientError(ErrorKind::kConnection, message);
}

TcpStream::TcpStream(TcpStream&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), tls_(std::move(other.tls_)) {}

TcpStream& TcpStream::operator=(TcpStream&& other) noexcept {
  if (this != &other) {
    tls_.reset();
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    tls_ = std::move(other.tls_);
  }
  return *this;
}

TcpStream::~TcpStream() {
  tls_.reset();  // says close_notify first, while the socket is open
  if (fd_ >= 0) ::close(fd_);
}

namespace {

[[noreturn]] void file_shrank(std::string_view name) {
  throw ClientError(ErrorKind::kInput, std::string(name) +
                                           ": the file got shorter while it was being sent; "
                                           "send it again once nothing writes it");
}

/// Keeps SIGPIPE from this thread while it lives, and discards one it caused: sendfile has no
/// MSG_NOSIGNAL, and a server that has closed must be an EPIPE here, not the end of the process.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlocked() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      const timespec now{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
};

/// Sends a piece that is in a file: the kernel sends its bytes from the file's cached pages,
/// without copying them into this process.
std::error_code send_file(int socket, const SendPiece& piece) {
  const SigpipeBlocked no_sigpipe;
  auto offset = static_cast<off_t>(piece.file_offset);
  const auto end = piece.file_offset + piece.file_bytes;
  while (static_cast<std::uint64_t>(offset) < end) {
    const auto left = end - static_cast<std::uint64_t>(offset);
    const ssize_t sent =
        ::sendfile(socket, piece.file, &offset, std::min<std::uint64_t>(left, 1 << 30));
    if (sent < 0) {
      if (errno == EINTR) continue;
      return timeout_or(last_error());
    }
    if (sent == 0) file_shrank(piece.name);
  }
  return {};
}

/// Sends `pieces` in memory: sendmsg, at most IOV_MAX a call; a partial send resumes in the
/// middle of a piece. MSG_NOSIGNAL: a server that has closed gives EPIPE here instead of killing
/// us with SIGPIPE.
std::error_code send_in_memory(int fd, std::span<const SendPiece> pieces) {
  std::vector<iovec> buffers;
  std::size_t next = 0;     // the first piece not wholly sent
  std::size_t sent_of = 0;  // bytes of pieces[next] already sent
  while (next < pieces.size()) {
    buffers.clear();
    for (auto i = next; i < pieces.size() && buffers.size() < IOV_MAX; ++i) {
      const auto piece = i == next ? pieces[i].bytes.substr(sent_of) : pieces[i].bytes;
      buffers.push_back({const_cast<char*>(piece.data()), piece.size()});
    }
    msghdr message{};
    message.msg_iov = buffers.data();
    message.msg_iovlen = buffers.size();
    const ssize_t sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return timeout_or(last_error());
    }
    auto left = static_cast<std::size_t>(sent);
    while (next < pieces.size() && left >= pieces[next].bytes.size() - sent_of) {
      left -= pieces[next].bytes.size() - sent_of;
      ++next;
      sent_of = 0;
    }
    sent_of += left;
  }
  return {};
}

}  // namespace

std::error_code socket_send_all(int fd, std::string_view bytes) {
  const auto piece = SendPiece::in_memory(bytes);
  return send_in_memory(fd, {&piece, 1});
}

std::error_code socket_send_all(int fd, std::span<const SendPiece> pieces) {
  // Runs of pieces in memory go together; a file between them goes on its own.
  while (!pieces.empty()) {
    if (pieces.front().file >= 0) {
      if (const auto error = send_file(fd, pieces.front())) return error;
      pieces = pieces.subspan(1);
      continue;
    }
    std::size_t run = 0;
    while (run < pieces.size() && pieces[run].file < 0)
      ++run;
    if (const auto error = send_in_memory(fd, pieces.first(run))) return error;
    pieces = pieces.subspan(run);
  }
  return {};
}

std::size_t socket_receive_some(int fd, std::span<char> into, std::error_code& error) {
  error.clear();
  for (;;) {
    const ssize_t received = ::recv(fd, into.data(), into.size(), 0);
    if (received >= 0) return static_cast<std::size_t>(received);
    if (errno == EINTR) continue;
    error = timeout_or(last_error());
    return 0;
  }
}

std::error_code TcpStream::send_all(std::string_view bytes) {
  return tls_ ? tls_->send_all(bytes) : socket_send_all(fd_, bytes);
}

std::error_code TcpStream::send_all(std::span<const SendPiece> pieces) {
  if (!tls_) return socket_send_all(fd_, pieces);
  // TLS copies every byte into its records anyway: one piece after the other, a file read a
  // MiB at a time.
  std::vector<char> buffer;
  for (const auto& piece : pieces) {
    if (piece.file < 0) {
      if (const auto error = tls_->send_all(piece.bytes)) return error;
      continue;
    }
    buffer.resize(1 << 20);
    for (std::uint64_t offset = 0; offset < piece.file_bytes;) {
      const auto want = std::min<std::uint64_t>(buffer.size(), piece.file_bytes - offset);
      const ssize_t got =
          ::pread(piece.file, buffer.data(), want, static_cast<off_t>(piece.file_offset + offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        throw ClientError(ErrorKind::kInput, std::string(piece.name) + ": " + std::strerror(errno));
      }
      if (got == 0) file_shrank(piece.name);
      if (const auto error = tls_->send_all({buffer.data(), static_cast<std::size_t>(got)})) {
        return error;
      }
      offset += static_cast<std::uint64_t>(got);
    }
  }
  return {};
}

std::size_t TcpStream::receive_some(std::span<char> into, std::error_code& error) {
  return tls_ ? tls_->receive_some(into, error) : socket_receive_some(fd_, into, error);
}

}  // namespace mrd::client
