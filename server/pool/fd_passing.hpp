// Passing a file descriptor over a Unix socket (SCM_RIGHTS), with the bytes it travels with.
//
// The descriptor rides on the first byte of the data it is sent with; the receiver gets it with
// whichever read takes that byte. A message's header is read on its own, so the descriptor of a
// task message always arrives with the header of its own message.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

namespace mrd::server {

/// A descriptor this code owns and closes.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~OwnedFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_ = -1;
};

/// Most descriptors sent with one message: a task's input and its result.
inline constexpr std::size_t kMaxAttachedFds = 2;

/// send() of `size` bytes with `fd` attached (a copy of it goes to the receiver). Returns what
/// sendmsg returns; the descriptor is sent if any byte was.
ssize_t send_with_fd(int socket, const char* data, std::size_t size, int fd);

/// send_with_fd for `count` (1 to kMaxAttachedFds) descriptors, which arrive in this order.
ssize_t send_with_fds(int socket, const char* data, std::size_t size, const int* fds,
                      std::size_t count);

/// read() of up to `size` bytes that also takes a descriptor attached to them, if any, into
/// `received` (closing one it held). Returns what recvmsg returns.
ssize_t receive_with_fd(int socket, char* data, std::size_t size, OwnedFd& received);

/// receive_with_fd for up to `slots` descriptors, in the order they were sent, into
/// received[0..slots) (descriptors past `slots` are closed). Returns what recvmsg returns.
ssize_t receive_with_fds(int socket, char* data, std::size_t size, OwnedFd* received,
                         std::size_t slots);

}  // namespace mrd::server
