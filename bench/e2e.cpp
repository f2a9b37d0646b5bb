// e2e: one big job end to end through the client library, timed from the first byte of the
// SUBMIT to the decoded result, against a running mrd.
//
//   e2e wordcount --server 127.0.0.1:PORT --file corpus.txt [--chunk-bytes N] [--runs 3]
//   e2e matmul    --server 127.0.0.1:PORT --n 2000 [--seed 1] [--runs 3]
//
// The request is built once, before any timing, the way mrctl builds it (the corpus as one
// document; the matrices from client::random_matrix_pair, as `mrctl matmul --random N`). Each run
// SUBMITs it (encode + send + the id back), then polls FETCH every --poll-ms until the result is
// in (transfer + decode included). One untimed warm-up run comes first unless --warmup 0.
//
// Prints one JSON line: seconds of every run, split into submit (until the id came back) and
// total, and a check of the result: the word count's digest (bench_common.hpp) or the largest
// difference between the product and OpenBLAS's, computed here.
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <iostream>
#include <thread>

#include "bench/bench_common.hpp"
#include "client/client_error.hpp"
#include "client/connection.hpp"
#include "client/matrix_check.hpp"

namespace {

namespace protocol = mrd::protocol;
using mrd::bench::Clock;
using mrd::bench::seconds_between;
using mrd::client::Connection;

struct Timing {
  std::vector<double> submit_s;      ///< until SUBMIT's reply (the job id) was read
  std::vector<double> last_fetch_s;  ///< the FETCH that brought the result: transfer and decode
  std::vector<double> total_s;       ///< until the result was decoded
  std::uint32_t map_tasks = 0;       ///< of the last run, from the last PENDING seen (0 if none)
};

/// Runs `request` once; returns its result and appends the run's times to `timing`.
protocol::JobResult run_once(Connection& connection, const protocol::SubmitRequest& request,
                             std::chrono::milliseconds poll, Timing* timing) {
  const auto start = Clock::now();
  const std::uint32_t id = connection.submit(request);
  const auto submitted = Clock::now();
  for (;;) {
    const auto asked = Clock::now();
    auto outcome = connection.fetch(id);
    if (outcome.finished()) {
      const auto done = Clock::now();
      if (timing != nullptr) {
        timing->submit_s.push_back(seconds_between(start, submitted));
        timing->last_fetch_s.push_back(seconds_between(asked, done));
        timing->total_s.push_back(seconds_between(start, done));
      }
      return mrd::client::result_or_throw(std::move(outcome), id);
    }
    if (timing != nullptr) timing->map_tasks = outcome.progress->map_total;
    std::this_thread::sleep_for(poll);
  }
}

/// Runs the request `warmup` times untimed, then `runs` times timed; returns the last result.
protocol::JobResult measure(Connection& connection, const protocol::SubmitRequest& request,
                            int warmup, int runs, std::chrono::milliseconds poll, Timing& timing) {
  protocol::JobResult result;
  for (int i = 0; i < warmup; ++i)
    result = run_once(connection, request, poll, nullptr);
  for (int i = 0; i < runs; ++i)
    result = run_once(connection, request, poll, &timing);
  return result;
}

std::string timing_json(const Timing& t) {
  return "\"submit_s\": " + mrd::bench::json_list(t.submit_s) +
         ", \"last_fetch_s\": " + mrd::bench::json_list(t.last_fetch_s) +
         ", \"total_s\": " + mrd::bench::json_list(t.total_s) +
         ", \"map_tasks\": " + std::to_string(t.map_tasks);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"End-to-end timing of one big mrd job through the client library"};
  app.require_subcommand(1);
  app.fallthrough();  // options may follow the subcommand
  std::string server = "127.0.0.1:1936";
  int runs = 3, warmup = 1, poll_ms = 1;
  std::uint64_t chunk_bytes = 0;
  std::uint32_t partitions = 0;
  app.add_option("--server", server, "HOST:PORT of a running mrd");
  app.add_option("--runs", runs, "Timed runs")->check(CLI::Range(1, 100));
  app.add_option("--warmup", warmup, "Untimed runs first")->check(CLI::Range(0, 10));
  app.add_option("--poll-ms", poll_ms, "Pause between two FETCHes of an unfinished job")
      ->check(CLI::Range(0, 1000));
  app.add_option("--chunk-bytes", chunk_bytes, "SUBMIT chunk_bytes (0: the server chooses)");
  app.add_option("--partitions", partitions, "SUBMIT partitions (0: the server chooses)");
  mrd::client::TlsOptions tls;
  app.add_flag("--tls", tls.enabled, "Connect with TLS (the server's --tls-listen port)");
  app.add_option("--cacert", tls.ca_file, "With --tls: the CA of the server's certificate");

  std::string file;
  auto* wordcount = app.add_subcommand("wordcount", "words+sum over one file as one document");
  wordcount->add_option("--file", file, "Corpus")->required();

  std::uint64_t n = 1000, seed = 1;
  auto* matmul = app.add_subcommand("matmul", "matmul+rows of two random NxN matrices");
  matmul->add_option("--n", n, "Matrix side")->check(CLI::Range(1, 20000));
  matmul->add_option("--seed", seed, "Seed, as mrctl matmul --random N --seed S");
  CLI11_PARSE(app, argc, argv);

  const auto poll = std::chrono::milliseconds(poll_ms);
  try {
    auto connection = Connection::connect(mrd::client::parse_server_address(server),
                                          std::chrono::seconds(600), tls);
    connection.hello();
    Timing timing;
    if (*wordcount) {
      protocol::SubmitRequest request{"words", "sum", {chunk_bytes, partitions, 0, 0}, {}};
      protocol::Documents documents;
      documents.documents.push_back({file, mrd::bench::read_whole_file(file)});
      const std::uint64_t bytes = documents.documents[0].text.size();
      request.input = std::move(documents);
      const auto result = measure(connection, request, warmup, runs, poll, timing);
      mrd::bench::CountsDigest digest;
      for (const auto& entry : std::get<protocol::Counts>(result).entries)
        digest.add(entry.key, entry.count);
      std::cout << "{\"tool\": \"e2e\", \"job\": \"wordcount\", \"tls\": "
                << (tls.enabled ? "true" : "false") << ", \"bytes\": " << bytes
                << ", \"chunk_bytes\": " << chunk_bytes << ", " << timing_json(timing)
                << ", \"digest\": \"" << digest.line() << "\"}" << std::endl;
    } else {
      protocol::MatrixPair pair = mrd::client::random_matrix_pair(n, seed);
      protocol::Matrix expected{n, n, std::vector<double>(n * n)};
      const int side = static_cast<int>(n);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, side, side, side, 1.0,
                  pair.a.values.data(), side, pair.b.values.data(), side, 0.0,
                  expected.values.data(), side);
      protocol::SubmitRequest request{
          "matmul", "rows", {chunk_bytes, partitions, 0, 0}, std::move(pair)};
      const auto result = measure(connection, request, warmup, runs, poll, timing);
      const auto& product = std::get<protocol::Matrix>(result);
      double max_error = product.values.size() == expected.values.size() ? 0 : INFINITY;
      for (std::size_t i = 0; i < product.values.size() && std::isfinite(max_error); ++i)
        max_error = std::max(max_error, std::abs(product.values[i] - expected.values[i]));
      std::cout << "{\"tool\": \"e2e\", \"job\": \"matmul\", \"n\": " << n << ", "
                << timing_json(timing)
                << ", \"max_abs_error\": " << (std::isfinite(max_error) ? max_error : -1.0) << "}"
                << std::endl;
    }
  } catch (const std::exception& e) {
    std::cerr << "e2e: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
