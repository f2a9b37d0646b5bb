// Preloaded into mrd by a test (LD_PRELOAD): counts the process's fsync and fdatasync calls, so
// the test can see whether commits reach the disk. Each call appends one byte to the file named
// by MRD_TEST_FSYNC_LOG, then does the real call.
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

namespace {

void note_a_sync() {
  const char* log = std::getenv("MRD_TEST_FSYNC_LOG");
  if (log == nullptr) return;
  const int fd = ::open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  [[maybe_unused]] const auto written = ::write(fd, "s", 1);
  ::close(fd);
}

template <typename Function>
Function real(const char* name) {
  return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fsync(int fd) {
  static const auto real_fsync = real<int (*)(int)>("fsync");
  note_a_sync();
  return real_fsync(fd);
}

extern "C" int fdatasync(int fd) {
  static const auto real_fdatasync = real<int (*)(int)>("fdatasync");
  note_a_sync();
  return real_fdatasync(fd);
}
