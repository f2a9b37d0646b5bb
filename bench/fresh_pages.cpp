// fresh_pages: what it costs to fill memory no one has touched yet, by the ways mrd fills it.
//
//   fresh_pages [--mib 64] [--runs 3]
//
// Each way runs in a child process of its own (a fresh address space, as a new client or a new
// job would have), and fills --mib MiB once:
//   anonymous            mmap, then write every byte (what std::vector or malloc of a big block do)
//   anonymous+populate   the same after madvise(MADV_POPULATE_WRITE)
//   anonymous+huge       the same after madvise(MADV_HUGEPAGE) (transparent huge pages, "madvise")
//   memfd mapped         a memory file, written through a shared mapping
//   memfd pwrite         a memory file, written with pwrite (how an upload fills its segment)
// and, timing only the send, written memory handed to the kernel (as a SUBMIT's body is):
//   sent                 written anonymous memory, sent over a loopback TCP connection
//   sent from huge       the same in transparent huge pages
// Prints one JSON line per way: the seconds of every run. On a virtual machine the first touch of
// a page is dear; the ratios between the ways are the point (docs/benchmarks.md, "Fresh pages").
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

namespace {

using Clock = std::chrono::steady_clock;

enum class Way { kAnonymous, kPopulate, kHuge, kMemfdMapped, kMemfdPwrite, kSent, kSentFromHuge };

const char* name(Way way) {
  switch (way) {
    case Way::kAnonymous: return "anonymous";
    case Way::kPopulate: return "anonymous+populate";
    case Way::kHuge: return "anonymous+huge";
    case Way::kMemfdMapped: return "memfd mapped";
    case Way::kMemfdPwrite: return "memfd pwrite";
    case Way::kSent: return "sent";
    case Way::kSentFromHuge: return "sent from huge";
  }
  return "?";
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// A connected pair of TCP sockets over loopback, as a client and mrd have; false on failure.
bool loopback_pair(int pair[2]) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool ok = listener >= 0 &&
                  bind(listener, reinterpret_cast<sockaddr*>(&address), length) == 0 &&
                  listen(listener, 1) == 0 &&
                  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0 &&
                  (pair[0] = socket(AF_INET, SOCK_STREAM, 0)) >= 0 &&
                  connect(pair[0], reinterpret_cast<sockaddr*>(&address), length) == 0 &&
                  (pair[1] = accept(listener, nullptr, nullptr)) >= 0;
  if (listener >= 0) close(listener);
  return ok;
}

/// Writes `bytes` of fresh memory, then times only handing them to the kernel: sent over a
/// loopback TCP connection whose other end a child process drains. Returns the seconds, negative
/// on failure.
double send_written(std::size_t bytes, bool huge) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int pair[2];
  if (p == MAP_FAILED || !loopback_pair(pair)) return -1;
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);
  std::memset(p, 1, bytes);
  const pid_t drain = fork();
  if (drain == 0) {
    close(pair[0]);  // else the drain would never see the end
    static char sink[1 << 16];
    while (read(pair[1], sink, sizeof sink) > 0) {
    }
    _exit(0);
  }
  close(pair[1]);
  const auto start = Clock::now();
  for (std::size_t at = 0; at < bytes;) {
    const ssize_t sent = write(pair[0], static_cast<char*>(p) + at, bytes - at);
    if (sent <= 0) return -1;
    at += static_cast<std::size_t>(sent);
  }
  const double seconds = seconds_since(start);
  close(pair[0]);
  waitpid(drain, nullptr, 0);
  return seconds;
}

/// Fills `bytes` the given way; returns the seconds it took, negative if the system refused a
/// step.
double fill(Way way, std::size_t bytes) {
  if (way == Way::kSent || way == Way::kSentFromHuge)
    return send_written(bytes, way == Way::kSentFromHuge);
  const auto start = Clock::now();
  if (way == Way::kMemfdMapped || way == Way::kMemfdPwrite) {
    const int fd = memfd_create("fresh-pages", 0);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) return -1;
    if (way == Way::kMemfdPwrite) {
      static char chunk[1 << 20];
      std::memset(chunk, 1, sizeof chunk);
      for (std::size_t at = 0; at < bytes; at += sizeof chunk) {
        const auto n = std::min(sizeof chunk, bytes - at);
        if (pwrite(fd, chunk, n, static_cast<off_t>(at)) != static_cast<ssize_t>(n)) return -1;
      }
      return seconds_since(start);
    }
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return -1;
    std::memset(p, 1, bytes);
    return seconds_since(start);
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -1;
  if (way == Way::kPopulate && madvise(p, bytes, MADV_POPULATE_WRITE) != 0) return -1;
  if (way == Way::kHuge) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: may be refused
  std::memset(p, 1, bytes);
  return seconds_since(start);
}

/// Runs fill() in a child process; returns its seconds, or a negative number if it failed.
double time_in_child(Way way, std::size_t bytes) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    const double seconds = fill(way, bytes);
    _exit(write(pipe_fds[1], &seconds, sizeof seconds) == sizeof seconds ? 0 : 1);
  }
  close(pipe_fds[1]);
  double seconds = -1;
  if (read(pipe_fds[0], &seconds, sizeof seconds) != sizeof seconds) seconds = -1;
  close(pipe_fds[0]);
  waitpid(pid, nullptr, 0);
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"What filling fresh memory costs, by the ways mrd fills it"};
  std::size_t mib = 64;
  int runs = 3;
  app.add_option("--mib", mib, "MiB filled by each run")->check(CLI::Range(1, 4096));
  app.add_option("--runs", runs, "Runs of each way (they take turns)")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  const std::vector<Way> ways{Way::kAnonymous,   Way::kPopulate,    Way::kHuge,
                              Way::kMemfdMapped, Way::kMemfdPwrite, Way::kSent,
                              Way::kSentFromHuge};
  std::vector<std::vector<double>> seconds(ways.size());
  for (int r = 0; r < runs; ++r) {
    for (std::size_t w = 0; w < ways.size(); ++w)
      seconds[w].push_back(time_in_child(ways[w], mib << 20));
  }
  for (std::size_t w = 0; w < ways.size(); ++w) {
    std::cout << "{\"tool\": \"fresh_pages\", \"way\": \"" << name(ways[w])
              << "\", \"mib\": " << mib << ", \"seconds\": [";
    for (std::size_t i = 0; i < seconds[w].size(); ++i)
      std::cout << (i ? ", " : "") << seconds[w][i];
    std::cout << "]}\n";
  }
  return 0;
}
