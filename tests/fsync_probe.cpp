// Preloaded into mrd by a test (LD_PRELOAD): watches the process's fsync and fdatasync calls.
// - Counts them: each call appends one byte to the file named by MRD_TEST_FSYNC_LOG.
// - Holds some of them: while the file named by MRD_TEST_FSYNC_HOLD exists, a sync of a file in
//   a data directory's inputs/ (a big job's input) waits, the way a slow disk would make it wait.
//   It first creates HOLD.waiting, so the test knows the sync has started. It waits at most 60 s;
//   if it had to give up, it creates HOLD.gave-up, for the test to fail on.
// Then it does the real call.
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

void note_a_sync() {
  const char* log = std::getenv("MRD_TEST_FSYNC_LOG");
  if (log == nullptr) return;
  const int fd = ::open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  [[maybe_unused]] const auto written = ::write(fd, "s", 1);
  ::close(fd);
}

void create(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
}

bool is_input_file(int fd) {
  char path[4096];
  const auto n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), path, sizeof path);
  return n > 0 &&
         std::string(path, static_cast<std::size_t>(n)).find("/inputs/") != std::string::npos;
}

void maybe_hold(int fd) {
  const char* hold = std::getenv("MRD_TEST_FSYNC_HOLD");
  if (hold == nullptr || ::access(hold, F_OK) != 0 || !is_input_file(fd)) return;
  create(std::string(hold) + ".waiting");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (::access(hold, F_OK) == 0) {
    if (std::chrono::steady_clock::now() > give_up) {
      create(std::string(hold) + ".gave-up");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

template <typename Function>
Function real(const char* name) {
  return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fsync(int fd) {
  static const auto real_fsync = real<int (*)(int)>("fsync");
  note_a_sync();
  maybe_hold(fd);
  return real_fsync(fd);
}

extern "C" int fdatasync(int fd) {
  static const auto real_fdatasync = real<int (*)(int)>("fdatasync");
  note_a_sync();
  maybe_hold(fd);
  return real_fdatasync(fd);
}
