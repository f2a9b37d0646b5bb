// Test support: the real mrd binary on an ephemeral port, and a raw-bytes client for it.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/frame.hpp"

namespace mrd::testing {

using namespace std::chrono_literals;

/// A fresh empty directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "mrd-test-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// True in a build under AddressSanitizer or ThreadSanitizer. The server's memory figures then
/// include the sanitizer's shadow memory and quarantine, so tests assert memory bounds only in
/// plain builds; and no address-space cap is applied (sanitizers reserve terabytes of it).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

/// Limits the test puts on the server process (and so on its workers, which inherit them).
struct ProcessLimits {
  /// Address-space cap (RLIMIT_AS, as `prlimit --as`), in MiB; 0 = none. An attack that makes the
  /// server grow fails against this cap instead of taking the machine down.
  std::uint64_t address_space_mib = 0;
  /// Open-files limit (RLIMIT_NOFILE, soft and hard); 0 = inherited.
  std::uint64_t open_files = 0;
};

/// The programs the tests run: the environment's MRD_BINARY and MRCTL_BINARY when set and not
/// empty, else the ones this build made (MRD_BUILT_BINARY and MRCTL_BUILT_BINARY, defined by
/// tests/CMakeLists.txt). The variables run the repository's tests against another build, a
/// student's own mrd for one (docs/solutions/README.md):
///   MRD_BINARY=$PWD/build/server/mrd build/tests/server_test --gtest_filter='Server.Ping*'
/// A program taken from the environment is named once on stderr, so that a variable left set
/// does not go unnoticed.
inline std::string binary_from_environment(const char* variable, const char* built) {
  const char* given = std::getenv(variable);
  if (given == nullptr || *given == '\0') return built;
  std::fprintf(stderr, "note: %s=%s, from the environment\n", variable, given);
  return given;
}
inline std::string mrd_binary() {
  static const std::string binary = binary_from_environment("MRD_BINARY", MRD_BUILT_BINARY);
  return binary;
}
#ifdef MRCTL_BUILT_BINARY
inline std::string mrctl_binary() {
  static const std::string binary = binary_from_environment("MRCTL_BINARY", MRCTL_BUILT_BINARY);
  return binary;
}
#endif

/// In a child just forked by a test, before exec: the child is killed when the test process
/// ends, however it ends, and writes nothing to the test's own output. A test that aborts then
/// leaves no server running, and none holding ctest's output pipe open, which would make ctest
/// wait out the test's whole timeout instead of reporting the abort. `test_pid` is getpid()
/// taken before fork; only async-signal-safe calls are made.
inline void tie_child_to_test(pid_t test_pid, int output_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != test_pid) _exit(127);  // the test ended before prctl took effect
  if (output_fd >= 0) {
    dup2(output_fd, STDOUT_FILENO);
    dup2(output_fd, STDERR_FILENO);
    if (output_fd > STDERR_FILENO) close(output_fd);
  }
}

/// The descriptors process `pid` has open, each as its /proc/PID/fd entry and what that links
/// to. The process opens and closes descriptors meanwhile: errors end the listing or skip an
/// entry, never throw.
inline std::vector<std::pair<std::filesystem::path, std::string>> open_descriptors(pid_t pid) {
  std::vector<std::pair<std::filesystem::path, std::string>> descriptors;
  std::error_code listing, error;
  for (std::filesystem::directory_iterator
           fd(std::filesystem::path("/proc") / std::to_string(pid) / "fd", listing),
       end;
       !listing && fd != end; fd.increment(listing)) {
    auto target = std::filesystem::read_symlink(fd->path(), error);
    if (!error) descriptors.emplace_back(fd->path(), target.string());
  }
  return descriptors;
}

/// Drain after SIGTERM for servers whose test sets no --drain-seconds: short, so that a test
/// that leaves a hung job behind waits for it at most this long at stop() (mrd's default is 30 s).
inline constexpr const char* kTestDrainSeconds = "1";

/// mrd, started with `--listen 127.0.0.1:0` and the given extra arguments; stopped with SIGTERM.
class ServerProcess {
 public:
  /// `binary` is the mrd to start (a copy, for a test that must take it away later).
  explicit ServerProcess(std::vector<std::string> extra_args = {}, ProcessLimits limits = {},
                         std::string binary = mrd_binary()) {
    const auto port_file = (dir_.path() / "port").string();
    const auto tls_port_file = (dir_.path() / "tls-port").string();
    log_file_ = (dir_.path() / "mrd.log").string();
    const auto given = [&](std::string_view option) {
      return std::find(extra_args.begin(), extra_args.end(), option) != extra_args.end();
    };
    // The plain listener on a free port unless the test chose its own --listen; the TLS one's
    // port (with --tls-listen) is read from its own file, written before the plain one's.
    const bool own_listen = given("--listen");
    const bool tls = given("--tls-listen");
    std::vector<std::string> args{binary};
    if (!own_listen) args.insert(args.end(), {"--listen", "127.0.0.1:0", "--port-file", port_file});
    if (tls) args.insert(args.end(), {"--tls-port-file", tls_port_file});
    if (std::find(extra_args.begin(), extra_args.end(), "--drain-seconds") == extra_args.end()) {
      args.insert(args.end(), {"--drain-seconds", kTestDrainSeconds});
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    // Everything the child needs is built before fork: a test may run threads, and in the child
    // of a threaded process only async-signal-safe calls (no allocation) are safe until exec.
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    // Its TMPDIR is this server's own directory, removed with it: what mrd makes there (the test
    // jobs' directory) goes even when a test SIGKILLs it, which leaves mrd no chance to clean up.
    std::string tmpdir = "TMPDIR=" + dir_.path().string();
    std::vector<char*> envp;
    for (char** variable = environ; *variable != nullptr; ++variable) {
      if (!std::string_view(*variable).starts_with("TMPDIR=")) envp.push_back(*variable);
    }
    envp.push_back(tmpdir.data());
    envp.push_back(nullptr);
    const pid_t test_pid = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      tie_child_to_test(test_pid, ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
      if (limits.address_space_mib > 0 && !kSanitized) {
        const rlimit as{limits.address_space_mib << 20, limits.address_space_mib << 20};
        setrlimit(RLIMIT_AS, &as);
      }
      if (limits.open_files > 0) {
        const rlimit files{limits.open_files, limits.open_files};
        setrlimit(RLIMIT_NOFILE, &files);
      }
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(own_listen ? tls_port_file : port_file);
      if (own_listen ? bool(in >> tls_port_) : bool(in >> port_)) {
        if (tls && !own_listen) std::ifstream(tls_port_file) >> tls_port_;
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        throw std::runtime_error("mrd exited at start-up; log:\n" + log());
      }
      std::this_thread::sleep_for(10ms);
    }
    throw std::runtime_error("mrd did not start listening within 20 s; log:\n" + log());
  }

  ~ServerProcess() {
    if (pid_ > 0) stop();
    // A failed check, or a helper that threw (the test fails once the exception reaches gtest).
    if (::testing::Test::HasFailure() || std::uncaught_exceptions() > 0) {
      // What the server said is often the quickest way to why the test failed: its last lines.
      const auto said = log();
      const std::size_t tail = 16 << 10;
      std::fprintf(stderr, "--- the end of mrd's log ---\n%s--- end ---\n",
                   said.substr(said.size() > tail ? said.size() - tail : 0).c_str());
    }
  }

  /// The plain TCP port (0 if the test gave its own --listen), and the TLS one (0 without
  /// --tls-listen).
  std::uint16_t port() const { return port_; }
  std::uint16_t tls_port() const { return tls_port_; }
  pid_t pid() const { return pid_; }

  /// Sends SIGTERM and waits; returns the exit status (as waitpid reports it).
  int stop(int signal = SIGTERM) {
    if (pid_ <= 0) return exit_status_;
    ::kill(pid_, signal);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    pid_ = 0;
    return status;
  }

  /// Everything mrd wrote so far (its stderr and stdout both go to the log file).
  std::string log() const {
    std::ifstream in(log_file_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  /// The server's resident memory, in KiB (VmRSS).
  std::uint64_t rss_kib() const { return status_kib("VmRSS:"); }

  /// The most resident memory the server has had since it started, in KiB (VmHWM).
  std::uint64_t peak_rss_kib() const { return status_kib("VmHWM:"); }

  /// True while the server process has not exited (one that has is reaped, and stays so).
  bool running() {
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = status;
      pid_ = 0;
    }
    return pid_ > 0;
  }

  /// How the server ended, as waitpid reports it, once running() saw it exit.
  int exit_status() const { return exit_status_; }

  /// File descriptors the server has open.
  std::size_t open_fds() const { return open_descriptors(pid_).size(); }

  /// Process ids of mrd's worker processes (its children, whichever thread started them).
  std::vector<pid_t> worker_pids() const {
    std::vector<pid_t> pids;
    const auto tasks = std::filesystem::path("/proc") / std::to_string(pid_) / "task";
    std::error_code error;
    for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
      std::ifstream children(task.path() / "children");
      pid_t child;
      while (children >> child)
        pids.push_back(child);
    }
    return pids;
  }

 private:
  /// A "Name:   123 kB" field of /proc/PID/status, in KiB; 0 if absent.
  std::uint64_t status_kib(std::string_view field) const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind(field, 0) == 0) return std::stoull(line.substr(field.size()));
    }
    return 0;
  }

  TempDir dir_;
  std::string log_file_;
  pid_t pid_ = 0;
  int exit_status_ = 0;
  std::uint16_t tls_port_ = 0;
  std::uint16_t port_ = 0;
};

/// Runs `command` in sh; returns its exit code (-1 if it did not exit), with its stdout and stderr
/// in `output` if given.
/// A loopback port that was free a moment ago (bound, read, closed): for a server the test starts
/// there, or for an address nobody listens on.
inline std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

inline int run_command(const std::string& command, std::string* output = nullptr) {
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string text;
  char chunk[4096];
  while (const auto n = std::fread(chunk, 1, sizeof chunk, pipe))
    text.append(chunk, n);
  const int status = ::pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A reply as it came off the wire.
struct RawReply {
  std::uint8_t status = 0;
  std::string body;
};

/// A blocking TCP client that sends exact bytes and reads exact frames, with timeouts.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  template <class T>
  void send_message(protocol::Opcode opcode, const T& body) {
    std::string frame;
    protocol::append_message(frame, static_cast<std::uint8_t>(opcode), body);
    send(frame);
  }

  /// The next reply frame, or nothing if the server closed first or `timeout` passed.
  std::optional<RawReply> read_reply(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto parsed = protocol::parse_frame(buffer_, 1ull << 32);
      if (parsed.outcome == protocol::ParsedFrame::Outcome::kFrame) {
        RawReply reply{parsed.code, std::string(parsed.body)};
        buffer_.erase(0, parsed.frame_bytes);
        return reply;
      }
      if (!fill(deadline)) return std::nullopt;
    }
  }

  /// True if the server closes the connection (EOF) within `timeout` and sends nothing more.
  bool closed_by_server(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    return eof_;
  }

  /// Closes with a reset (RST) instead of an orderly FIN, as a crashed client's kernel would.
  void reset() {
    linger hard{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    ::close(fd_);
    fd_ = -1;
  }

  /// Bytes received but not yet returned as a reply.
  const std::string& unread() const { return buffer_; }

 private:
  /// Reads more into buffer_; false at EOF, on error, or at the deadline.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[65536];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

/// How many of a process's mappings, and of its descriptors, are job inputs (memory files), or
/// results of matrix products (with `name` "memfd:mrd-result").
struct InputFiles {
  std::size_t mappings = 0;
  std::size_t descriptors = 0;
  std::size_t all_mappings = 0;  ///< every line of /proc/PID/maps
};

inline InputFiles input_files_of(pid_t pid, const std::string& name = "memfd:mrd-input") {
  InputFiles files;
  const auto proc = std::filesystem::path("/proc") / std::to_string(pid);
  std::ifstream maps(proc / "maps");
  for (std::string line; std::getline(maps, line);) {
    ++files.all_mappings;
    if (line.find(name) != std::string::npos) ++files.mappings;
  }
  for (const auto& [fd, target] : open_descriptors(pid)) {
    if (target.find(name) != std::string::npos) ++files.descriptors;
  }
  return files;
}

/// The sizes of the job input memory files a process holds open (each file once, however many
/// descriptors it has open on it: an input whose maps start while it arrives has two).
inline std::vector<std::uint64_t> input_file_sizes(pid_t pid) {
  std::map<ino_t, std::uint64_t> sizes_by_file;
  for (const auto& [fd, target] : open_descriptors(pid)) {
    struct stat info {};
    if (target.find("memfd:mrd-input") != std::string::npos && ::stat(fd.c_str(), &info) == 0) {
      sizes_by_file[info.st_ino] = static_cast<std::uint64_t>(info.st_size);
    }
  }
  std::vector<std::uint64_t> sizes;
  for (const auto& [file, size] : sizes_by_file)
    sizes.push_back(size);
  return sizes;
}

}  // namespace mrd::testing
