// loadgen: many small requests from many connections against a running mrd, one thread, epoll.
//
//   loadgen roundtrip --server HOST:PORT --connections 32 [--seconds 5] [--warmup 0.5]
//   loadgen submit    --server HOST:PORT --connections 32 [--seconds 5]
//   loadgen blocking  --server HOST:PORT --connections 32 [--tls --cacert F] [--seconds 5]
//   loadgen idle      --server HOST:PORT --connections 10000 [--hold 60] [--tls --cacert F]
//   loadgen stats     --server HOST:PORT
//
// roundtrip: every connection loops SUBMIT (a one-line word count) -> read the id -> FETCH until
//   the result is in (at once again after each PENDING, or after --poll-us) -> next job. Reports
//   jobs/s and the latency from sending the SUBMIT to reading the result: p50, p99, p99.9.
//   With --background-file, another thread meanwhile runs that file's word count --background-
//   runs times through the client library, and only tiny jobs submitted while a big one was in
//   the server count (head-of-line blocking).
// submit: every connection loops SUBMIT -> read the id, one request in flight per connection
//   (like redis-benchmark -P 1). Reports accepted SUBMITs per second and their latency.
// blocking: roundtrip's loop from one thread per connection, each a client-library Connection,
//   so that it can speak TLS (--tls): the same figures over plain TCP and over TLS, for a ratio.
// idle: opens the connections (blocking, each answers a HELLO first, so the server holds it),
//   prints {"ready": N} and holds them until stdin closes or --hold seconds pass; with --tls,
//   TLS connections.
// stats: prints the server's STATS counters.
//
// Everything is bounded: --seconds of measurement after --warmup, at most --max-jobs jobs. The
// one thread is the same shape as redis-benchmark's, so the two load generators cost alike.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <CLI/CLI.hpp>
#include <atomic>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "bench/bench_common.hpp"
#include "client/connection.hpp"
#include "protocol/codec.hpp"
#include "protocol/frame.hpp"

namespace {

namespace protocol = mrd::protocol;
using mrd::bench::Clock;
using mrd::bench::seconds_between;

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1936;
  int connections = 8;
  double seconds = 5;
  double warmup = 0.5;
  std::uint64_t max_jobs = 10'000'000;
  int poll_us = 0;
  std::string text = "The quick brown fox jumps over the lazy dog, and the dog sleeps";
  std::string background_file;
  int background_runs = 3;
  double hold = 60;
  mrd::client::TlsOptions tls;  ///< blocking and idle: --tls, --cacert
};

[[noreturn]] void die(const std::string& what) {
  std::cerr << "loadgen: " << what << ": " << std::strerror(errno) << "\n";
  std::exit(1);
}

/// Lets this process hold `wanted` sockets and then some.
void raise_file_limit(rlim_t wanted) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur >= wanted) return;
  limit.rlim_cur = wanted;
  if (limit.rlim_max < wanted) limit.rlim_max = wanted;  // root may raise the hard limit too
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) die("setrlimit(RLIMIT_NOFILE)");
}

/// A blocking TCP connection to the server, with Nagle off (every request is one small write).
int connect_to(const Options& o) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(o.port);
  if (inet_pton(AF_INET, o.host.c_str(), &address.sin_addr) != 1) {
    std::cerr << "loadgen: --server needs an IPv4 literal, got " << o.host << "\n";
    std::exit(2);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) die("connect");
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::string submit_frame(const Options& o) {
  protocol::SubmitRequest request{"words", "sum", {}, protocol::Documents{{{"line", o.text}}}};
  std::string frame;
  protocol::append_message(frame, static_cast<std::uint8_t>(protocol::Opcode::kSubmit), request);
  return frame;
}

std::string fetch_frame(std::uint32_t id) {
  std::string frame;
  protocol::append_message(frame, static_cast<std::uint8_t>(protocol::Opcode::kFetch),
                           protocol::JobId{id});
  return frame;
}

/// One connection of the load: its socket, unsent bytes, received bytes, and where its job is.
struct Conn {
  int fd = -1;
  std::string out;  ///< bytes not yet accepted by the socket
  std::vector<char> in = std::vector<char>(64 << 10);
  std::size_t in_len = 0;
  enum class Phase { kSubmitSent, kFetchSent, kPollWait } phase = Phase::kSubmitSent;
  std::uint32_t job = 0;
  Clock::time_point submitted;  ///< when the current job's SUBMIT was sent
  double acked = 0;             ///< seconds from the SUBMIT to its reply (the job id)
  bool writing = false;         ///< registered for EPOLLOUT
};

/// A finished tiny job: when it was submitted, how long until its id came back and until its
/// result did, in seconds.
struct Sample {
  Clock::time_point submitted;
  double acked;
  double latency;
};

/// The event loop behind roundtrip and submit.
class Load {
 public:
  Load(const Options& o, bool roundtrip) : o_(o), roundtrip_(roundtrip), submit_(submit_frame(o)) {}

  /// Runs until `end` or until `stop` says so; returns the samples of every finished job.
  void run(Clock::time_point end, const std::atomic<bool>& stop) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) die("epoll_create1");
    conns_.resize(o_.connections);
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      c.fd = connect_to(o_);
      fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
      epoll_event ev{EPOLLIN, {.u64 = i}};
      if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) die("epoll_ctl");
    }
    for (auto& c : conns_)
      start_job(c, Clock::now());
    std::vector<epoll_event> events(1024);
    while (!stop.load(std::memory_order_relaxed)) {
      auto now = Clock::now();
      if (now >= end || finished_ >= o_.max_jobs) break;
      int timeout_ms = 50;
      if (!polls_.empty()) {
        const double wait = seconds_between(now, polls_.front().first);
        timeout_ms = wait <= 0 ? 0 : static_cast<int>(wait * 1000) + 1;
      }
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0 && errno != EINTR) die("epoll_wait");
      for (int k = 0; k < n; ++k) {
        Conn& c = conns_[events[k].data.u64];
        if (events[k].events & EPOLLOUT) flush(c);
        if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) receive(c);
      }
      now = Clock::now();
      while (!polls_.empty() && polls_.front().first <= now) {
        Conn& c = conns_[polls_.front().second];
        polls_.pop_front();
        send_fetch(c);
      }
    }
    for (auto& c : conns_)
      close(c.fd);
    close(epoll_);
  }

  const std::vector<Sample>& samples() const { return samples_; }
  const std::map<int, std::uint64_t>& errors() const { return errors_; }
  std::uint64_t fetches() const { return fetches_; }

 private:
  void start_job(Conn& c, Clock::time_point now) {
    c.phase = Conn::Phase::kSubmitSent;
    c.submitted = now;
    send(c, submit_);
  }

  void send_fetch(Conn& c) {
    c.phase = Conn::Phase::kFetchSent;
    ++fetches_;
    send(c, fetch_frame(c.job));
  }

  void send(Conn& c, std::string_view bytes) {
    if (!c.out.empty()) {
      c.out.append(bytes);
      return;
    }
    const ssize_t sent = ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno != EAGAIN) die("send");
    const std::size_t done = sent < 0 ? 0 : static_cast<std::size_t>(sent);
    if (done < bytes.size()) {
      c.out.assign(bytes.substr(done));
      want_write(c, true);
    }
  }

  void flush(Conn& c) {
    const ssize_t sent = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno != EAGAIN) die("send");
    if (sent > 0) c.out.erase(0, static_cast<std::size_t>(sent));
    if (c.out.empty()) want_write(c, false);
  }

  void want_write(Conn& c, bool on) {
    if (c.writing == on) return;
    c.writing = on;
    const std::uint32_t events = on ? EPOLLIN | EPOLLOUT : EPOLLIN;
    epoll_event ev{events, {.u64 = static_cast<std::uint64_t>(&c - conns_.data())}};
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void receive(Conn& c) {
    if (c.in.size() - c.in_len < (16 << 10)) c.in.resize(c.in.size() * 2);
    const ssize_t got = ::recv(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len, 0);
    if (got == 0) {
      std::cerr << "loadgen: the server closed a connection\n";
      std::exit(1);
    }
    if (got < 0) {
      if (errno == EAGAIN) return;
      die("recv");
    }
    c.in_len += static_cast<std::size_t>(got);
    std::size_t used = 0;
    for (;;) {
      const auto frame =
          protocol::parse_frame(std::string_view(c.in.data() + used, c.in_len - used), 1u << 30);
      if (frame.outcome != protocol::ParsedFrame::Outcome::kFrame) break;
      used += frame.frame_bytes;
      on_reply(c, static_cast<protocol::Status>(frame.code), frame.body);
    }
    std::memmove(c.in.data(), c.in.data() + used, c.in_len - used);
    c.in_len -= used;
  }

  void on_reply(Conn& c, protocol::Status status, std::string_view body) {
    const auto now = Clock::now();
    if (c.phase == Conn::Phase::kSubmitSent) {
      if (status != protocol::Status::kOk) {
        ++errors_[static_cast<int>(status)];
        start_job(c, now);  // QUEUE_FULL and the like: try again
        return;
      }
      std::memcpy(&c.job, body.data(), 4);  // u32 id, little-endian like this host
      c.acked = seconds_between(c.submitted, now);
      if (!roundtrip_) {
        finish(c, now);
        return;
      }
      send_fetch(c);
      return;
    }
    if (status == protocol::Status::kPending) {
      if (o_.poll_us == 0) {
        send_fetch(c);
      } else {
        c.phase = Conn::Phase::kPollWait;
        polls_.emplace_back(now + std::chrono::microseconds(o_.poll_us),
                            static_cast<std::size_t>(&c - conns_.data()));
      }
      return;
    }
    if (status != protocol::Status::kOk) ++errors_[static_cast<int>(status)];
    finish(c, now);
  }

  void finish(Conn& c, Clock::time_point now) {
    ++finished_;
    if (samples_.size() < 20'000'000)
      samples_.push_back({c.submitted, c.acked, seconds_between(c.submitted, now)});
    start_job(c, now);
  }

  const Options& o_;
  bool roundtrip_;
  std::string submit_;
  int epoll_ = -1;
  std::vector<Conn> conns_;
  std::deque<std::pair<Clock::time_point, std::size_t>> polls_;  ///< FETCHes due, in time order
  std::vector<Sample> samples_;
  std::map<int, std::uint64_t> errors_;  ///< reply status -> count, for unexpected replies
  std::uint64_t finished_ = 0;
  std::uint64_t fetches_ = 0;
};

/// The JSON fields of a set of latencies (seconds): count, rate over `seconds`, percentiles in ms.
std::string summary_json(std::vector<double> latencies, double seconds) {
  std::sort(latencies.begin(), latencies.end());
  double sum = 0;
  for (double l : latencies)
    sum += l;
  const double n = static_cast<double>(latencies.size());
  const double p50 = mrd::bench::percentile(latencies, 50);
  const double p99 = mrd::bench::percentile(latencies, 99);
  const double p999 = mrd::bench::percentile(latencies, 99.9);
  char text[512];
  std::snprintf(text, sizeof text,
                "\"completed\": %zu, \"measured_s\": %.3f, \"rate\": %.1f, \"mean_ms\": %.4f, "
                "\"p50_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"max_ms\": %.4f",
                latencies.size(), seconds, seconds > 0 ? n / seconds : 0, n > 0 ? sum / n * 1e3 : 0,
                p50 * 1e3, p99 * 1e3, p999 * 1e3, latencies.empty() ? 0 : latencies.back() * 1e3);
  return text;
}

std::string errors_json(const std::map<int, std::uint64_t>& errors) {
  std::string out = "{";
  for (const auto& [status, count] : errors) {
    if (out.size() > 1) out += ", ";
    out += "\"" + std::string(protocol::to_string(static_cast<protocol::Status>(status))) +
           "\": " + std::to_string(count);
  }
  return out + "}";
}

int run_load(const Options& o, bool roundtrip) {
  raise_file_limit(static_cast<rlim_t>(o.connections) + 64);
  Load load(o, roundtrip);
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  const auto measure_from =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
  auto end = measure_from +
             std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));

  // Head-of-line mode: big jobs through the client library, in a second thread.
  std::mutex windows_mutex;
  std::vector<std::pair<Clock::time_point, Clock::time_point>> windows;
  std::thread background;
  if (!o.background_file.empty()) {
    protocol::SubmitRequest big{"words", "sum", {}, protocol::Documents{}};
    std::get<protocol::Documents>(big.input).documents.push_back(
        {o.background_file, mrd::bench::read_whole_file(o.background_file)});
    end = measure_from + std::chrono::seconds(120);  // bounded, whatever the big jobs take
    background =
        std::thread([&o, &stop, &windows, &windows_mutex, measure_from, big = std::move(big)] {
          std::this_thread::sleep_until(measure_from);
          try {
            auto connection =
                mrd::client::Connection::connect({o.host, o.port}, std::chrono::seconds(120));
            for (int r = 0; r < o.background_runs && !stop; ++r) {
              const auto from = Clock::now();
              const auto id = connection.submit(big);
              while (!connection.fetch(id).finished())
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
              std::lock_guard lock(windows_mutex);
              windows.emplace_back(from, Clock::now());
            }
          } catch (const std::exception& e) {
            std::cerr << "loadgen: the big job failed: " << e.what() << "\n";
          }
          // Tiny jobs submitted during the last big job may still be in flight (the slowest,
          // likely): give them a second to finish, or they would be left out of the figures.
          std::this_thread::sleep_for(std::chrono::seconds(1));
          stop = true;
        });
  }
  load.run(end, stop);
  const auto stopped = Clock::now();
  if (background.joinable()) {
    stop = true;
    background.join();
  }

  std::vector<double> latencies, acks;
  double measured = 0;
  std::string extra;
  if (o.background_file.empty()) {
    for (const auto& s : load.samples()) {
      if (s.submitted >= measure_from) {
        latencies.push_back(s.latency);
        acks.push_back(s.acked);
      }
    }
    measured = seconds_between(measure_from, stopped);
  } else {
    std::vector<double> big_s;
    for (const auto& [from, to] : windows) {
      big_s.push_back(seconds_between(from, to));
      measured += seconds_between(from, to);
    }
    for (const auto& s : load.samples()) {
      for (const auto& [from, to] : windows) {
        if (s.submitted >= from && s.submitted <= to) {
          latencies.push_back(s.latency);
          acks.push_back(s.acked);
          break;
        }
      }
    }
    extra = ", \"background_file\": \"" + o.background_file +
            "\", \"big_job_s\": " + mrd::bench::json_list(big_s);
  }
  const double per_job = load.samples().empty() ? 0
                                                : static_cast<double>(load.fetches()) /
                                                      static_cast<double>(load.samples().size());
  std::cout << "{\"tool\": \"loadgen\", \"mode\": \"" << (roundtrip ? "roundtrip" : "submit")
            << "\", \"connections\": " << o.connections << ", \"poll_us\": " << o.poll_us << ", "
            << summary_json(std::move(latencies), measured) << ", \"fetches_per_job\": " << per_job
            << ", \"submit_p50_ms\": " << mrd::bench::percentile(acks, 50) * 1e3
            << ", \"submit_p99_ms\": " << mrd::bench::percentile(acks, 99) * 1e3
            << ", \"errors\": " << errors_json(load.errors()) << extra << "}" << std::endl;
  return 0;
}

/// When measuring starts (after the warm-up) and ends, from now.
std::pair<Clock::time_point, Clock::time_point> measured_window(const Options& o) {
  const auto from = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(o.warmup));
  return {from, from + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(o.seconds))};
}

int run_blocking(const Options& o) {
  raise_file_limit(static_cast<rlim_t>(o.connections) + 64);
  protocol::SubmitRequest request{"words", "sum", {}, protocol::Documents{{{"line", o.text}}}};
  std::vector<mrd::client::Connection> connections;
  for (int i = 0; i < o.connections; ++i) {
    connections.push_back(
        mrd::client::Connection::connect({o.host, o.port}, std::chrono::seconds(60), o.tls));
    connections.back().hello();
  }
  const auto [measure_from, end] = measured_window(o);
  std::vector<std::vector<double>> latencies(connections.size());
  std::atomic<std::uint64_t> finished{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < connections.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        while (Clock::now() < end && finished < o.max_jobs) {
          const auto submitted = Clock::now();
          const auto id = connections[i].submit(request);
          while (!connections[i].fetch(id).finished()) {
          }
          ++finished;
          if (submitted >= measure_from) {
            latencies[i].push_back(seconds_between(submitted, Clock::now()));
          }
        }
      } catch (const std::exception& e) {
        std::cerr << "loadgen: connection " << i << ": " << e.what() << "\n";
      }
    });
  }
  for (auto& t : threads)
    t.join();
  std::vector<double> all;
  for (const auto& l : latencies)
    all.insert(all.end(), l.begin(), l.end());
  std::cout << "{\"tool\": \"loadgen\", \"mode\": \"blocking\", \"tls\": "
            << (o.tls.enabled ? "true" : "false") << ", \"connections\": " << o.connections << ", "
            << summary_json(std::move(all), seconds_between(measure_from, Clock::now())) << "}"
            << std::endl;
  return 0;
}

/// idle: prints {"ready": N}, then holds until the parent closes our stdin, or --hold passes.
void report_ready_and_hold(std::size_t ready, Clock::time_point started, const Options& o) {
  std::cout << "{\"ready\": " << ready
            << ", \"connect_s\": " << seconds_between(started, Clock::now()) << "}" << std::endl;
  pollfd in{0, POLLIN, 0};
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o.hold));
  char sink[256];
  while (Clock::now() < until) {
    if (poll(&in, 1, 100) > 0 && read(0, sink, sizeof sink) <= 0) break;
  }
}

/// idle with --tls: TLS connections through the client library, each past its HELLO.
int run_idle_tls(const Options& o) {
  raise_file_limit(static_cast<rlim_t>(o.connections) + 64);
  std::vector<mrd::client::Connection> connections;
  connections.reserve(o.connections);
  const auto start = Clock::now();
  for (int i = 0; i < o.connections; ++i) {
    connections.push_back(
        mrd::client::Connection::connect({o.host, o.port}, std::chrono::seconds(60), o.tls));
    connections.back().hello();
  }
  report_ready_and_hold(connections.size(), start, o);
  return 0;
}

int run_idle(const Options& o) {
  if (o.tls.enabled) return run_idle_tls(o);
  raise_file_limit(static_cast<rlim_t>(o.connections) + 64);
  std::string hello;
  protocol::append_message(hello, static_cast<std::uint8_t>(protocol::Opcode::kHello),
                           protocol::Hello{});
  std::vector<int> fds;
  fds.reserve(o.connections);
  const auto start = Clock::now();
  for (int i = 0; i < o.connections; ++i) {
    const int fd = connect_to(o);
    if (::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size()))
      die("send");
    char reply[256];
    std::size_t got = 0;
    for (;;) {  // the whole HELLO reply (a few dozen bytes) before the next connection
      const ssize_t n = ::recv(fd, reply + got, sizeof reply - got, 0);
      if (n <= 0) die("recv of HELLO's reply (did the server refuse the connection?)");
      got += static_cast<std::size_t>(n);
      const auto frame = protocol::parse_frame(std::string_view(reply, got), sizeof reply);
      if (frame.outcome == protocol::ParsedFrame::Outcome::kFrame) {
        if (frame.code != 0) {
          std::cerr << "loadgen: connection " << i << " answered status " << int(frame.code)
                    << "\n";
          return 1;
        }
        break;
      }
    }
    fds.push_back(fd);
  }
  report_ready_and_hold(fds.size(), start, o);
  for (int fd : fds)
    close(fd);
  return 0;
}

int run_stats(const Options& o) {
  auto connection = mrd::client::Connection::connect({o.host, o.port}, std::chrono::seconds(10));
  const auto s = connection.stats();
  std::cout << "{\"tool\": \"stats\", \"connections_open\": " << s.connections_open
            << ", \"jobs_submitted\": " << s.jobs_submitted << ", \"jobs_done\": " << s.jobs_done
            << ", \"jobs_failed\": " << s.jobs_failed << ", \"jobs_expired\": " << s.jobs_expired
            << ", \"jobs_unfinished\": " << s.jobs_unfinished
            << ", \"retained_result_bytes\": " << s.retained_result_bytes << "}" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load generator for mrd: tiny jobs from many connections"};
  app.require_subcommand(1);
  app.fallthrough();  // options may follow the subcommand
  Options o;
  std::string server = "127.0.0.1:1936";
  app.add_option("--server", server, "HOST:PORT (an IPv4 literal)");
  app.add_option("--connections,-c", o.connections, "Connections")->check(CLI::Range(1, 60000));
  app.add_option("--seconds", o.seconds, "Measured seconds (after the warm-up)");
  app.add_option("--warmup", o.warmup, "Seconds of load before measuring");
  app.add_option("--max-jobs", o.max_jobs, "Stop after this many finished jobs");
  app.add_option("--poll-us", o.poll_us, "Pause before FETCHing again after PENDING (0: at once)");
  app.add_option("--text", o.text, "The one line each tiny job counts");
  app.add_option("--background-file", o.background_file,
                 "roundtrip only: run word counts of this file meanwhile; measure during them");
  app.add_option("--background-runs", o.background_runs, "How many big jobs, one after another");
  app.add_option("--hold", o.hold, "idle only: longest time to hold the connections");
  app.add_flag("--tls", o.tls.enabled, "blocking and idle: connect with TLS");
  app.add_option("--cacert", o.tls.ca_file, "With --tls: the CA of the server's certificate");
  auto* roundtrip = app.add_subcommand("roundtrip", "SUBMIT, FETCH until done, repeat");
  auto* blocking = app.add_subcommand(
      "blocking", "roundtrip from one thread per connection, through the client library (--tls)");
  auto* submit = app.add_subcommand("submit", "SUBMIT and read the id, repeat");
  auto* idle = app.add_subcommand("idle", "Open connections and hold them");
  auto* stats = app.add_subcommand("stats", "Print the server's counters");
  CLI11_PARSE(app, argc, argv);
  const auto colon = server.rfind(':');
  o.host = server.substr(0, colon);
  o.port = static_cast<std::uint16_t>(std::stoi(server.substr(colon + 1)));
  try {
    if (*roundtrip) return run_load(o, true);
    if (*blocking) return run_blocking(o);
    if (*submit) return run_load(o, false);
    if (*idle) return run_idle(o);
    if (*stats) return run_stats(o);
  } catch (const std::exception& e) {
    std::cerr << "loadgen: " << e.what() << "\n";
  }
  return 1;
}
