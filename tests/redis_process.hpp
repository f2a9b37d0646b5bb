// Test support: a real redis-server of the test's own, on a free loopback port, in a temporary
// directory; stopped (and its files removed) when the test ends. Restartable on the same port and
// directory, so that a test can take Redis away under a cluster and bring it back with its AOF.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "server_process.hpp"

namespace mrd::testing {

class RedisProcess {
 public:
  /// `append_only`: with an AOF written and fsynced at every write (appendfsync always), so that a
  /// restart (even after SIGKILL) loses nothing Redis acknowledged.
  explicit RedisProcess(bool append_only = false) : append_only_(append_only) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_loopback_port();
      if (start()) return;
    }
    throw std::runtime_error("redis-server did not start; log:\n" + log());
  }
  ~RedisProcess() { stop(SIGKILL); }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  /// Stops it with `signal` and waits for it to exit.
  void stop(int signal = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }

  /// Starts it again on the same port and directory (with its AOF, if it keeps one).
  void restart() {
    if (!start()) throw std::runtime_error("redis-server did not restart; log:\n" + log());
  }

  /// What `redis-cli` prints for `command` (arguments split by spaces).
  std::string cli(const std::string& command) const {
    std::string output;
    run_command("redis-cli -p " + std::to_string(port_) + " " + command, &output);
    while (!output.empty() && (output.back() == '\n' || output.back() == '\r'))
      output.pop_back();
    return output;
  }

  std::string log() const {
    std::ifstream in(dir_.path() / "redis.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  /// Starts redis-server and waits until it answers PING; false if it exits first (port taken).
  bool start() {
    std::vector<std::string> args{"redis-server",
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--dir",
                                  dir_.path().string(),
                                  "--save",
                                  "",
                                  "--appendonly",
                                  append_only_ ? "yes" : "no",
                                  "--appendfsync",
                                  "always",
                                  "--logfile",
                                  (dir_.path() / "redis.log").string()};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t test_pid = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      tie_child_to_test(test_pid, ::open("/dev/null", O_WRONLY));
      execvp(argv[0], argv.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return false;
      }
      if (cli("PING") == "PONG") return true;
      std::this_thread::sleep_for(20ms);
    }
    stop(SIGKILL);
    return false;
  }

  TempDir dir_;
  bool append_only_;
  std::uint16_t port_ = 0;
  pid_t pid_ = 0;
};

}  // namespace mrd::testing
