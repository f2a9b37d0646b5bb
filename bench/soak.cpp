// soak: the real server under a bounded storm of real jobs, bad frames, cancels, worker kills and
// one SIGKILL + restart, then every acknowledged job checked against a reference. The server
// requires tokens (--auth-file): every client says AUTH first, and the bad frames include wrong
// tokens and requests before AUTH.
//
//   soak --mrd build/server/mrd [--seconds 180] [--clients 16]
//
// Prints: acknowledged, completed correctly, cancelled, failed with a reason, lost, wrong.
// Exits 1 if any job was lost or wrong. Everything runs on 127.0.0.1 and stops by itself.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <thread>

#include <openssl/sha.h>

#include "client/client_error.hpp"
#include "client/connection.hpp"
#include "client/tcp_stream.hpp"
#include "protocol/codec.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
/// The token every soak client presents.
constexpr const char* kToken = "soak-token-5e1d";
using mrd::client::ClientError;
using mrd::client::Connection;
namespace protocol = mrd::protocol;

// ---------- the server under test ----------

class Server {
 public:
  Server(std::string binary, std::filesystem::path dir) : binary_(std::move(binary)), dir_(dir) {}

  void start() {
    const auto port_file = dir_ / "port";
    std::filesystem::remove(port_file);
    // Built before fork: the client threads are running, and the child of a threaded process may
    // only make async-signal-safe calls (no allocation) until it execs.
    const auto log = (dir_ / "mrd.log").string();
    const auto data = (dir_ / "data").string();
    const auto pf = port_file.string();
    const auto tokens = write_auth_file();
    const std::string listen = port_ ? "127.0.0.1:" + std::to_string(port_) : "127.0.0.1:0";
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) dup2(fd, STDERR_FILENO);
      execl(binary_.c_str(), binary_.c_str(), "--listen", listen.c_str(), "--port-file", pf.c_str(),
            "--data-dir", data.c_str(), "--workers", "2", "--log-level", "warn", "--auth-file",
            tokens.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 400; ++i) {
      std::ifstream in(port_file);
      if (in >> port_) return;
      std::this_thread::sleep_for(25ms);
    }
    throw std::runtime_error("mrd did not start; see " + (dir_ / "mrd.log").string());
  }

  /// The auth file: one admin line for kToken, by its SHA-256.
  std::string write_auth_file() const {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(kToken), std::strlen(kToken), digest);
    std::string hex;
    for (const unsigned char byte : digest) {
      hex += "0123456789abcdef"[byte >> 4];
      hex += "0123456789abcdef"[byte & 15];
    }
    const auto path = (dir_ / "tokens").string();
    std::ofstream(path) << "soak admin " << hex << "\n";
    return path;
  }

  void kill_hard() {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  void stop() {
    ::kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }

  /// SIGKILLs one of the worker processes; true if there was one.
  bool kill_a_worker(std::mt19937& rng) {
    std::vector<pid_t> workers;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/task")) {
      std::ifstream children(task.path() / "children");
      pid_t child;
      while (children >> child)
        workers.push_back(child);
    }
    if (workers.empty()) return false;
    ::kill(workers[rng() % workers.size()], SIGKILL);
    return true;
  }

  std::uint64_t rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
    }
    return 0;
  }

  std::uint16_t port() const { return port_; }

 private:
  std::string binary_;
  std::filesystem::path dir_;
  pid_t pid_ = 0;
  std::uint16_t port_ = 0;  ///< kept across a restart, so clients reconnect to the same place
};

// ---------- jobs and their references ----------

std::string random_text(std::mt19937& rng, std::size_t words) {
  static const char* kWords[] = {"alpha", "Beta",  "GAMMA", "delta", "eps", "zeta",
                                 "eta",   "theta", "iota",  "kappa", "x1",  "caf\xc3\xa9"};
  std::string text;
  for (std::size_t i = 0; i < words; ++i) {
    text += kWords[rng() % 12];
    text += (rng() % 7 == 0) ? ", " : " ";
  }
  return text;
}

/// The word count of `texts` by the spec's rule, computed plainly.
protocol::JobResult reference_words(const std::vector<std::string>& texts) {
  std::map<std::string, std::uint64_t> counts;
  for (const auto& text : texts) {
    std::string word;
    for (unsigned char c : text + " ") {
      if ((c < 0x80 && std::isalnum(c)) || c >= 0x80) {
        word += static_cast<char>(c < 0x80 ? std::tolower(c) : c);
      } else if (!word.empty()) {
        ++counts[word];
        word.clear();
      }
    }
  }
  protocol::Counts result;
  for (auto& [k, v] : counts)
    result.entries.push_back({k, v});
  std::sort(result.entries.begin(), result.entries.end(), [](const auto& a, const auto& b) {
    return a.count != b.count ? a.count > b.count : a.key < b.key;
  });
  return result;
}

protocol::Matrix multiply(const protocol::Matrix& a, const protocol::Matrix& b) {
  protocol::Matrix c{a.rows, b.cols, std::vector<double>(a.rows * b.cols, 0.0)};
  for (std::uint64_t i = 0; i < a.rows; ++i)
    for (std::uint64_t k = 0; k < a.cols; ++k)
      for (std::uint64_t j = 0; j < b.cols; ++j)
        c.values[i * b.cols + j] += a.values[i * a.cols + k] * b.values[k * b.cols + j];
  return c;
}

bool close_enough(const protocol::JobResult& got, const protocol::JobResult& want) {
  if (got.index() != want.index()) return false;
  if (const auto* m = std::get_if<protocol::Matrix>(&want)) {
    const auto& g = std::get<protocol::Matrix>(got);
    if (g.rows != m->rows || g.cols != m->cols) return false;
    for (std::size_t i = 0; i < m->values.size(); ++i) {
      if (std::abs(g.values[i] - m->values[i]) > 1e-9 * (1 + std::abs(m->values[i]))) return false;
    }
    return true;
  }
  return got == want;
}

/// A random real job and the result it must give.
std::pair<protocol::SubmitRequest, protocol::JobResult> random_job(std::mt19937& rng) {
  if (rng() % 4 == 0) {
    const auto n = 1 + rng() % 12;
    std::uniform_real_distribution<double> value(-1, 1);
    protocol::Matrix a{n, n, {}}, b{n, n, {}};
    for (std::uint64_t i = 0; i < n * n; ++i) {
      a.values.push_back(value(rng));
      b.values.push_back(value(rng));
    }
    return {{"matmul", "rows", {8 * n, 0}, protocol::MatrixPair{a, b}}, multiply(a, b)};
  }
  std::vector<std::string> texts;
  protocol::Documents docs;
  const auto count = 1 + rng() % 4;
  for (std::size_t i = 0; i < count; ++i) {
    texts.push_back(random_text(rng, 20 + rng() % 3000));
    docs.documents.push_back({"doc" + std::to_string(i), texts.back()});
  }
  const std::uint64_t chunk = rng() % 2 ? 0 : 256 + rng() % 4096;
  return {{"words", "sum", {chunk, 0}, docs}, reference_words(texts)};
}

// ---------- the ledger of what the server promised ----------

struct Promise {
  protocol::JobResult expected;
  bool cancelled = false;  ///< CANCEL was acknowledged: FETCH must say cancelled
};

struct Ledger {
  std::mutex mutex;
  std::map<std::uint32_t, Promise> jobs;
  std::atomic<std::uint64_t> bad_frames{0}, cancels{0}, reconnects{0}, queue_full{0},
      worker_kills{0};
};

Connection connect(std::uint16_t port) {
  auto c = Connection::connect({"127.0.0.1", port}, 10s);
  c.hello();
  c.auth(kToken);
  return c;
}

/// Runs `request` on a fresh connection, again and again through broken connections (the server
/// may be down for a restart) until the server answers it. Only for requests that are safe to
/// resend: a SUBMIT with an idempotency key, a CANCEL (cancelling a cancelled job is OK).
template <typename Request>
auto until_acknowledged(std::uint16_t port, Ledger& ledger, Request request) {
  const auto give_up = Clock::now() + 60s;
  for (;;) {
    try {
      auto c = connect(port);
      return request(c);
    } catch (const ClientError& e) {
      const bool queue_full = e.server_status() == protocol::Status::kQueueFull;
      if ((e.kind() != mrd::client::ErrorKind::kConnection && !queue_full) ||
          Clock::now() > give_up) {
        throw;
      }
      // Back-pressure (QUEUE_FULL) and a restarting server are both "later", not "never".
      ++(queue_full ? ledger.queue_full : ledger.reconnects);
      std::this_thread::sleep_for(50ms);
    }
  }
}

/// Sends one kind of bad frame on its own connection and checks the error reply.
void send_bad_frame(std::uint16_t port, std::mt19937& rng, Ledger& ledger) {
  static const std::vector<std::string> kFrames = {
      std::string("\x2a\x00\x00\x00\x00", 5),                          // unknown opcode
      std::string("\x01\x03\x00\x00\x00\x01\x02\x03", 8),              // undecodable FETCH body
      std::string("\x00\xff\xff\xff\x7f", 5),                          // too large
      std::string("\x00\x04\x00\x00\x00garb", 9),                      // undecodable SUBMIT
      std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),                // another protocol
      std::string("\x07\x0d\x00\x00\x00\x05\0\0\0\0\0\0\0wrong", 18),  // AUTH, wrong token
      std::string("\x04\x00\x00\x00\x00", 5),                          // LIST before AUTH
  };
  try {
    auto stream = mrd::client::TcpStream::connect({"127.0.0.1", port}, 5s);
    if (stream.send_all(kFrames[rng() % kFrames.size()])) return;
    char status = 0;
    std::error_code error;
    if (stream.receive_some(std::span<char>(&status, 1), error) != 1) return;  // restarting
    if (status == 0 || status == 1) {
      std::fprintf(stderr, "soak: a bad frame was answered with status %d\n", status);
      std::abort();
    }
    ++ledger.bad_frames;
  } catch (const ClientError&) {
    // the server restarting: nothing to check
  }
}

void client_loop(std::uint16_t port, int index, Clock::time_point stop, Ledger& ledger,
                 std::atomic<bool>& failed) {
  std::mt19937 rng(1000 + index);
  std::vector<std::uint32_t> mine;
  int serial = 0;
  while (Clock::now() < stop && !failed) {
    try {
      const auto dice = rng() % 100;
      if (dice < 70) {
        auto [request, expected] = random_job(rng);
        const auto key = "soak-" + std::to_string(index) + "-" + std::to_string(serial++);
        request.idempotency_key = key;
        const auto id =
            until_acknowledged(port, ledger, [&](Connection& c) { return c.submit(request); });
        std::lock_guard lock(ledger.mutex);
        auto [it, fresh] = ledger.jobs.try_emplace(id, Promise{expected, false});
        if (!fresh && !(it->second.expected == expected)) {
          std::fprintf(stderr, "soak: job id %u was given to two different jobs\n", id);
          failed = true;
        }
        mine.push_back(id);
      } else if (dice < 85) {
        send_bad_frame(port, rng, ledger);
      } else if (dice < 90 && !mine.empty()) {
        const auto id = mine[rng() % mine.size()];
        // A CANCEL whose reply a server SIGKILL swallowed may have happened: resend it until it
        // is answered, so that the ledger knows.
        until_acknowledged(port, ledger, [&](Connection& c) { c.cancel(id); });
        std::lock_guard lock(ledger.mutex);
        ledger.jobs[id].cancelled = true;
        ++ledger.cancels;
      } else if (!mine.empty()) {
        auto c = connect(port);
        c.fetch(mine[rng() % mine.size()]);
      }
    } catch (const ClientError& e) {
      // Connection trouble while the server restarts is expected; anything else is not.
      if (e.kind() != mrd::client::ErrorKind::kConnection) {
        std::fprintf(stderr, "soak: client %d: %s\n", index, e.what());
        failed = true;
      }
      std::this_thread::sleep_for(20ms);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string mrd = "build/server/mrd";
  int seconds = 180, clients = 16;
  CLI::App app{"soak: a bounded storm against a real mrd, then every acknowledged job checked"};
  app.add_option("--mrd", mrd, "The server binary")->capture_default_str();
  app.add_option("--seconds", seconds, "How long the storm lasts")->capture_default_str();
  app.add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto dir =
      std::filesystem::temp_directory_path() / ("mrd-soak-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  Server server(mrd, dir);
  server.start();
  const auto rss_start = server.rss_kib();
  Ledger ledger;
  std::atomic<bool> failed{false};
  const auto start = Clock::now();
  const auto stop = start + std::chrono::seconds(seconds);

  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back(client_loop, server.port(), i, stop, std::ref(ledger), std::ref(failed));
  }
  // Chaos: a worker killed every few seconds, and the whole server SIGKILLed once, half-way.
  std::mt19937 chaos(7);
  bool restarted = false;
  std::uint64_t rss_before_restart = 0;
  while (Clock::now() < stop && !failed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000 + chaos() % 3000));
    if (!restarted && Clock::now() > start + std::chrono::seconds(seconds) / 2) {
      rss_before_restart = server.rss_kib();
      std::fprintf(stderr, "soak: SIGKILL to the server, then restarting it\n");
      server.kill_hard();
      std::this_thread::sleep_for(300ms);
      server.start();
      restarted = true;
    } else if (server.kill_a_worker(chaos)) {
      ++ledger.worker_kills;
    }
  }
  for (auto& t : threads)
    t.join();
  const auto rss_end_of_load = server.rss_kib();

  // The verdict: every acknowledged job must end with its right result or a clear reason.
  std::uint64_t correct = 0, cancelled = 0, failed_with_reason = 0, lost = 0, wrong = 0;
  auto c = connect(server.port());
  for (const auto& [id, promise] : ledger.jobs) {
    const auto outcome = c.wait_for_result(id);
    if (outcome.status == protocol::Status::kOk && !promise.cancelled &&
        close_enough(*outcome.result, promise.expected)) {
      ++correct;
    } else if (outcome.status == protocol::Status::kJobCancelled && promise.cancelled) {
      ++cancelled;
    } else if (protocol::is_job_failure(outcome.status)) {
      ++failed_with_reason;
      std::fprintf(stderr, "soak: job %u failed: %s\n", id, outcome.message.c_str());
    } else if (outcome.status == protocol::Status::kUnknownJob ||
               outcome.status == protocol::Status::kJobExpired) {
      ++lost;
      std::fprintf(stderr, "soak: job %u LOST (%s)\n", id,
                   std::string(protocol::to_string(outcome.status)).c_str());
    } else {
      ++wrong;
      std::fprintf(stderr, "soak: job %u WRONG (status %s%s)\n", id,
                   std::string(protocol::to_string(outcome.status)).c_str(),
                   promise.cancelled ? ", cancelled" : "");
    }
  }
  server.stop();
  std::filesystem::remove_all(dir);

  std::printf("soak: %d s, %d clients, %llu worker kills, 1 server SIGKILL + restart\n", seconds,
              clients, static_cast<unsigned long long>(ledger.worker_kills.load()));
  std::printf("  bad frames answered with an error  %llu\n",
              static_cast<unsigned long long>(ledger.bad_frames.load()));
  std::printf("  resends after a broken connection  %llu\n",
              static_cast<unsigned long long>(ledger.reconnects.load()));
  std::printf("  QUEUE_FULL answers (backed off)    %llu\n",
              static_cast<unsigned long long>(ledger.queue_full.load()));
  std::printf("  jobs acknowledged                  %zu\n", ledger.jobs.size());
  std::printf("  completed correctly                %llu\n",
              static_cast<unsigned long long>(correct));
  std::printf("  cancelled (as asked)               %llu\n",
              static_cast<unsigned long long>(cancelled));
  std::printf("  failed with a reason               %llu\n",
              static_cast<unsigned long long>(failed_with_reason));
  std::printf("  lost                               %llu\n", static_cast<unsigned long long>(lost));
  std::printf("  wrong                              %llu\n",
              static_cast<unsigned long long>(wrong));
  std::printf("  server RSS: %llu KiB at start, %llu KiB before the restart, %llu KiB at the end\n",
              static_cast<unsigned long long>(rss_start),
              static_cast<unsigned long long>(rss_before_restart),
              static_cast<unsigned long long>(rss_end_of_load));
  return (lost == 0 && wrong == 0 && !failed && !ledger.jobs.empty()) ? 0 : 1;
}
