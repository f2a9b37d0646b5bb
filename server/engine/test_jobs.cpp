// The test-only jobs: word counts that fail on purpose, so that tests can inject worker faults
// through the real protocol. mrd accepts them only with --enable-test-jobs.
//
//   test-crash      + sum   the map task segfaults (SIGSEGV)
//   test-abort      + sum   the map task aborts (SIGABRT)
//   test-exit       + sum   the worker exits with status 3 in the middle of the task
//   test-hang       + sum   the map task never returns
//   test-slow       + sum   sleeps, per document whose name is a number N, N milliseconds
//   test-oom        + sum   allocates (and touches) memory until it runs out
//   test-throw      + sum   the mapper refuses its input (an ordinary job error)
//   test-crash-once + sum   segfaults unless its marker for the first document's name exists,
//                           which it creates first: the first attempt crashes, the retry succeeds.
//                           The marker is a file in the server's private TestJobDirectory, named
//                           by a hash of the document name: a client never chooses a path.
//
// Apart from the fault, each is the word count: a run that survives gives the words+sum result.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "server/engine/counts_job.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/test_job_directory.hpp"
#include "server/engine/tokenizer.hpp"

namespace mrd::engine {
namespace {

enum class Fault { kCrash, kAbort, kExit, kHang, kSlow, kOutOfMemory, kThrow, kCrashOnce };

/// Touches memory 64 MiB at a time until allocation fails: std::bad_alloc under a memory limit.
void exhaust_memory() {
  constexpr std::size_t kStep = 64u << 20;
  constexpr std::size_t kMaxSteps = 1024;  // 64 GiB: never reached under any sane limit
  std::vector<std::unique_ptr<char[]>> blocks;
  for (std::size_t i = 0; i < kMaxSteps; ++i) {
    blocks.emplace_back(new char[kStep]);
    std::memset(blocks.back().get(), 1, kStep);  // really use it, so it counts as resident too
  }
}

/// test-crash-once: the first attempt for a document name leaves its marker and crashes; a retry
/// finds the marker and goes on.
void crash_once(const DocumentsView& chunk) {
  if (chunk.documents.empty()) return;
  const char* directory = std::getenv(kTestJobDirectoryVariable);
  if (!directory || !*directory) {
    throw JobError("test-crash-once: the server named no directory for its marker");
  }
  // FNV-1a: any fixed hash will do; it only turns a client's name into a safe file name.
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : chunk.documents.front().name) {
    hash = (hash ^ c) * 0x100000001b3ull;
  }
  char name[40];
  std::snprintf(name, sizeof name, "/crash-once-%016llx", static_cast<unsigned long long>(hash));
  const auto marker = std::string(directory) + name;
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return;  // this is the retry
    throw JobError("test-crash-once: cannot create its marker: " +
                   std::string(std::strerror(errno)));
  }
  ::close(fd);
  std::raise(SIGSEGV);
}

void inject(Fault fault, const DocumentsView& chunk) {
  switch (fault) {
    case Fault::kCrash: std::raise(SIGSEGV); break;
    case Fault::kAbort: std::abort();
    case Fault::kExit: std::_Exit(3);
    case Fault::kHang:
      for (;;)
        pause();
    case Fault::kSlow:
      for (const auto& document : chunk.documents) {
        const std::string name(document.name);  // strtoul needs the NUL a view lacks
        char* end = nullptr;
        const auto ms = std::strtoul(name.c_str(), &end, 10);
        if (!name.empty() && *end == '\0') {
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        }
      }
      break;
    case Fault::kOutOfMemory: exhaust_memory(); break;
    case Fault::kThrow: throw JobError("test-throw: the mapper refused its input, as asked");
    case Fault::kCrashOnce: crash_once(chunk); break;
  }
}

class FaultyWordCount final : public CountsJob {
 public:
  FaultyWordCount(std::string_view mapper, Fault fault) : mapper_(mapper), fault_(fault) {}

  std::string_view mapper() const override { return mapper_; }

 protected:
  void count_keys(const DocumentsView& chunk, CountTable& counts) const override {
    inject(fault_, chunk);
    std::string scratch;
    for (const auto& document : chunk.documents) {
      for_each_word(document.text, scratch, [&](std::string_view word) { ++counts[word]; });
    }
  }

 private:
  std::string_view mapper_;
  Fault fault_;
};

}  // namespace

const std::vector<const JobKind*>& test_job_kinds() {
  static const FaultyWordCount crash("test-crash", Fault::kCrash);
  static const FaultyWordCount abort("test-abort", Fault::kAbort);
  static const FaultyWordCount exit("test-exit", Fault::kExit);
  static const FaultyWordCount hang("test-hang", Fault::kHang);
  static const FaultyWordCount slow("test-slow", Fault::kSlow);
  static const FaultyWordCount oom("test-oom", Fault::kOutOfMemory);
  static const FaultyWordCount refuse("test-throw", Fault::kThrow);
  static const FaultyWordCount crash_once("test-crash-once", Fault::kCrashOnce);
  static const std::vector<const JobKind*> kinds = {&crash, &abort, &exit,   &hang,
                                                    &slow,  &oom,   &refuse, &crash_once};
  return kinds;
}

}  // namespace mrd::engine
