// gearman_bench: the tiny-job round trip of loadgen, done with gearmand instead of mrd.
//
//   gearman_bench worker --server 127.0.0.1:PORT
//   gearman_bench client --server 127.0.0.1:PORT --connections 32 [--seconds 5] [--warmup 0.5]
//
// worker: registers the function "wordcount" (the same one-line word count as mrd's words+sum,
//   same tokenisation, result listed most frequent first) and serves jobs until it is killed.
//   The suite starts two of them, as mrd runs two worker processes.
// client: one thread per connection, each its own gearman_client_st, looping foreground jobs
//   (gearman_client_do: submit and wait for the result). Prints the same JSON fields as
//   `loadgen roundtrip`: jobs/s and the latency from submit to result.
#include <libgearman/gearman.h>

#include <CLI/CLI.hpp>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include "bench/bench_common.hpp"

namespace {

using mrd::bench::Clock;
using mrd::bench::seconds_between;

/// The word rule of docs/protocol.md, section 7.
constexpr std::array<unsigned char, 256> kFold = [] {
  std::array<unsigned char, 256> table{};
  for (int b = 0; b < 256; ++b) {
    if (b >= 'A' && b <= 'Z') {
      table[b] = static_cast<unsigned char>(b - 'A' + 'a');
    } else if ((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b >= 0x80) {
      table[b] = static_cast<unsigned char>(b);
    }
  }
  return table;
}();

/// Gearman calls this per job: count the words of the workload, answer "word\tcount\n" lines.
void* word_count(gearman_job_st* job, void*, std::size_t* result_size, gearman_return_t* ret) {
  const auto* text = static_cast<const unsigned char*>(gearman_job_workload(job));
  const std::size_t size = gearman_job_workload_size(job);
  std::map<std::string, std::uint64_t> counts;
  std::string word;
  for (std::size_t i = 0; i <= size; ++i) {
    const unsigned char folded = i < size ? kFold[text[i]] : 0;
    if (folded != 0) {
      word += static_cast<char>(folded);
    } else if (!word.empty()) {
      ++counts[word];
      word.clear();
    }
  }
  std::vector<std::pair<std::string, std::uint64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  for (const auto& [w, c] : sorted)
    out += w + "\t" + std::to_string(c) + "\n";
  auto* result = static_cast<char*>(std::malloc(out.size() + 1));  // gearman frees it
  std::memcpy(result, out.data(), out.size());
  *result_size = out.size();
  *ret = GEARMAN_SUCCESS;
  return result;
}

int run_worker(const std::string& host, std::uint16_t port) {
  gearman_worker_st* worker = gearman_worker_create(nullptr);
  if (worker == nullptr ||
      gearman_worker_add_server(worker, host.c_str(), port) != GEARMAN_SUCCESS ||
      gearman_worker_add_function(worker, "wordcount", 0, word_count, nullptr) != GEARMAN_SUCCESS) {
    std::cerr << "gearman_bench: cannot set up the worker\n";
    return 1;
  }
  for (;;) {
    const gearman_return_t ret = gearman_worker_work(worker);
    if (ret != GEARMAN_SUCCESS) {
      std::cerr << "gearman_bench worker: " << gearman_worker_error(worker) << "\n";
      gearman_worker_free(worker);
      return 1;
    }
  }
}

int run_client(const std::string& host, std::uint16_t port, int connections, double seconds,
               double warmup, const std::string& text) {
  const auto start = Clock::now();
  const auto measure_from =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds));
  std::vector<std::vector<double>> latencies(connections);
  std::atomic<std::uint64_t> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&, t] {
      gearman_client_st* client = gearman_client_create(nullptr);
      gearman_client_add_server(client, host.c_str(), port);
      while (Clock::now() < end) {
        const auto sent = Clock::now();
        std::size_t size = 0;
        gearman_return_t ret;
        void* result =
            gearman_client_do(client, "wordcount", nullptr, text.data(), text.size(), &size, &ret);
        const auto got = Clock::now();
        std::free(result);
        if (ret != GEARMAN_SUCCESS) {
          ++failures;
          continue;
        }
        if (sent >= measure_from && got <= end) latencies[t].push_back(seconds_between(sent, got));
      }
      gearman_client_free(client);
    });
  }
  for (auto& t : threads)
    t.join();
  std::vector<double> all;
  for (auto& l : latencies)
    all.insert(all.end(), l.begin(), l.end());
  const double measured = seconds_between(measure_from, end);
  const double n = static_cast<double>(all.size());
  double sum = 0;
  for (double l : all)
    sum += l;
  char line[512];
  std::snprintf(line, sizeof line,
                "{\"tool\": \"gearman\", \"mode\": \"roundtrip\", \"connections\": %d, "
                "\"completed\": %zu, \"measured_s\": %.3f, \"rate\": %.1f, \"mean_ms\": %.4f, "
                "\"p50_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"failures\": %llu}",
                connections, all.size(), measured, n / measured, n > 0 ? sum / n * 1e3 : 0,
                mrd::bench::percentile(all, 50) * 1e3, mrd::bench::percentile(all, 99) * 1e3,
                mrd::bench::percentile(all, 99.9) * 1e3,
                static_cast<unsigned long long>(failures.load()));
  std::cout << line << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gearmand reference for mrd's tiny jobs"};
  app.require_subcommand(1);
  app.fallthrough();  // options may follow the subcommand
  std::string server = "127.0.0.1:4730";
  int connections = 8;
  double seconds = 5, warmup = 0.5;
  std::string text = "The quick brown fox jumps over the lazy dog, and the dog sleeps";
  app.add_option("--server", server, "HOST:PORT of gearmand");
  app.add_option("--connections,-c", connections, "Client connections (threads)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--seconds", seconds, "Measured seconds (after the warm-up)");
  app.add_option("--warmup", warmup, "Seconds of load before measuring");
  app.add_option("--text", text, "The one line each job counts");
  auto* worker = app.add_subcommand("worker", "Serve wordcount jobs until killed");
  auto* client = app.add_subcommand("client", "Run foreground jobs and time them");
  CLI11_PARSE(app, argc, argv);
  const auto colon = server.rfind(':');
  const std::string host = server.substr(0, colon);
  const auto port = static_cast<std::uint16_t>(std::stoi(server.substr(colon + 1)));
  if (*worker) return run_worker(host, port);
  if (*client) return run_client(host, port, connections, seconds, warmup, text);
  return 2;
}
