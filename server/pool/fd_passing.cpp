#include "server/pool/fd_passing.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mrd::server {

ssize_t send_with_fd(int socket, const char* data, std::size_t size, int fd) {
  return send_with_fds(socket, data, size, &fd, 1);
}

ssize_t send_with_fds(int socket, const char* data, std::size_t size, const int* fds,
                      std::size_t count) {
  if (count == 0 || count > kMaxAttachedFds) {
    errno = EINVAL;
    return -1;
  }
  iovec io{const_cast<char*>(data), size};
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxAttachedFds * sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = CMSG_SPACE(count * sizeof(int));
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(count * sizeof(int));
  std::memcpy(CMSG_DATA(header), fds, count * sizeof(int));
  return ::sendmsg(socket, &message, MSG_NOSIGNAL);
}

ssize_t receive_with_fd(int socket, char* data, std::size_t size, OwnedFd& received) {
  return receive_with_fds(socket, data, size, &received, 1);
}

ssize_t receive_with_fds(int socket, char* data, std::size_t size, OwnedFd* received,
                         std::size_t slots) {
  iovec io{data, size};
  // Room for a few descriptors: a broken sender's extra ones are closed, never leaked.
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  const auto n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const auto count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
      OwnedFd taken(fd);
      if (i < slots) received[i] = std::move(taken);  // any extra one is closed right here
    }
  }
  return n;
}

}  // namespace mrd::server
