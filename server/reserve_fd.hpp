// A file descriptor held in reserve, so that the server can still answer a client when it has
// run out of them.
//
// When accept() fails with EMFILE the new connection stays in the listen queue, the listener stays
// readable, and the client waits for an answer that never comes. Closing the reserve frees one
// descriptor: enough to accept that client, tell it SERVER_BUSY and close it; then the reserve is
// taken again. (The trick libev and nginx users know as "the spare fd".)
#pragma once

#include <fcntl.h>
#include <unistd.h>

namespace mrd::server {

class ReserveFd {
 public:
  ReserveFd() { restore(); }
  ~ReserveFd() { release(); }
  ReserveFd(const ReserveFd&) = delete;
  ReserveFd& operator=(const ReserveFd&) = delete;

  /// Gives the descriptor back to the process, so that the next open or accept can have it.
  void release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  /// Takes a descriptor into reserve again; false if none is free (the reserve stays empty).
  bool restore() {
    if (fd_ < 0) fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd_ >= 0;
  }

  /// True while a descriptor is held.
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;  ///< /dev/null, opened only to occupy a descriptor number; -1 when released
};

}  // namespace mrd::server
