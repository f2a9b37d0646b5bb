#include "server/pool/worker_process.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <vector>

extern char** environ;

namespace mrd::server {

std::string worker_malloc_tunables(const char* inherited) {
  // A map task fills fresh memory (its table, its keys) that a fault per 4 KiB page would make
  // dear: glibc's malloc then asks for transparent huge pages for what it maps and for its heap.
  // The word count of 64 MiB ran about 9% faster with it (docs/benchmarks.md, "Fresh pages").
  // Tunables the server was started with are kept, and win.
  const std::string given = inherited ? inherited : "";
  if (given.find("glibc.malloc.hugetlb=") != std::string::npos) return "GLIBC_TUNABLES=" + given;
  return "GLIBC_TUNABLES=" + given + (given.empty() ? "" : ":") + "glibc.malloc.hugetlb=1";
}

std::unique_ptr<WorkerProcess> WorkerProcess::spawn(const std::string& executable,
                                                    const std::vector<std::string>& plugins,
                                                    const std::vector<std::string>& environment,
                                                    MemoryBudget* budget) {
  int fds[2];
  // CLOEXEC on both ends: other workers must not inherit this pair, or a dead worker's EOF would
  // never arrive. The child's end loses the flag through dup2 below.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 3);
  // And nothing else: whatever the server holds open (client sockets that Asio accepted without
  // close-on-exec, the database, other workers' channels) must not leak into a worker, or a
  // client closed by the server would never see EOF while the worker lives.
  posix_spawn_file_actions_addclosefrom_np(&actions, 4);

  // Own process group: a Ctrl-C at the terminal reaches the server, which stops its workers in
  // order, instead of killing the workers under a server that is still running.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);

  // One BLAS thread per worker: the pool is the parallelism. And the server's pid, so that a
  // worker can tell whether its server died before it started (worker_main.cpp).
  std::vector<std::string> added = environment;
  added.push_back("OPENBLAS_NUM_THREADS=1");
  added.push_back(worker_malloc_tunables(std::getenv("GLIBC_TUNABLES")));
  added.push_back(std::string(kServerPidVariable) + "=" + std::to_string(::getpid()));
  std::vector<char*> env;
  for (char** e = environ; *e; ++e) {
    const std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('=') + 1);
    const bool replaced = std::any_of(added.begin(), added.end(), [&](const std::string& a) {
      return std::string_view(a).substr(0, a.find('=') + 1) == name;
    });
    if (!replaced) env.push_back(*e);
  }
  for (auto& entry : added)
    env.push_back(entry.data());
  env.push_back(nullptr);

  std::vector<std::string> arguments{executable, "--worker-fd", "3"};
  for (const auto& plugin : plugins) {
    arguments.push_back("--plugin");
    arguments.push_back(plugin);
  }
  std::vector<char*> argv;
  for (auto& argument : arguments)
    argv.push_back(argument.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, executable.c_str(), &actions, &attributes, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("cannot start worker " + executable + ": " + std::strerror(rc));
  }
  return std::unique_ptr<WorkerProcess>(new WorkerProcess(pid, fds[0], budget));
}

WorkerProcess::~WorkerProcess() {
  channel_.reset();
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

std::string WorkerProcess::reap() {
  channel_.reset();
  if (pid_ <= 0) return "already reaped";
  // The pipe broke, so the worker is dead or broken: a broken one is killed, never waited on.
  int status = 0;
  pid_t got = waitpid(pid_, &status, WNOHANG);
  if (got == 0) {
    ::kill(pid_, SIGKILL);
    while ((got = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
  }
  pid_ = 0;
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

}  // namespace mrd::server
