// matmul_baseline: the bar for mrd's matrix product, OpenBLAS's dgemm in this process.
//
//   matmul_baseline [--n 500,1000,2000] [--threads 1,2] [--runs 5] [--seed 1]
//
// Multiplies the same matrices `mrctl matmul --random N --seed S` sends (client::
// random_matrix_pair), row-major, C = A x B, with OpenBLAS limited to each thread count in turn.
// One untimed call first (OpenBLAS starts its threads lazily). Prints one JSON line per (n,
// threads): the seconds of every run, and its CPU time (OpenBLAS threads spin while they wait,
// so cpu_s / seconds says how many cores were busy, not only how many did useful work).
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "bench/bench_common.hpp"
#include "client/matrix_check.hpp"

int main(int argc, char** argv) {
  CLI::App app{"In-process OpenBLAS dgemm baseline (the bar for mrd's matmul)"};
  std::vector<std::uint64_t> sides{500, 1000, 2000};
  std::vector<int> thread_counts{1, 2};
  int runs = 5;
  std::uint64_t seed = 1;
  app.add_option("--n", sides, "Matrix sides")->delimiter(',');
  app.add_option("--threads", thread_counts, "OpenBLAS thread counts")->delimiter(',');
  app.add_option("--runs", runs, "Timed runs per point")->check(CLI::Range(1, 100));
  app.add_option("--seed", seed, "Seed, as mrctl matmul --random N --seed S");
  CLI11_PARSE(app, argc, argv);

  for (const std::uint64_t n : sides) {
    const auto pair = mrd::client::random_matrix_pair(n, seed);
    std::vector<double> c(n * n);
    const int side = static_cast<int>(n);
    auto multiply = [&] {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, side, side, side, 1.0,
                  pair.a.values.data(), side, pair.b.values.data(), side, 0.0, c.data(), side);
    };
    std::vector<std::vector<double>> seconds(thread_counts.size()), cpu(thread_counts.size());
    for (std::size_t t = 0; t < thread_counts.size(); ++t) {
      openblas_set_num_threads(thread_counts[t]);
      multiply();  // warm-up
    }
    for (int r = 0; r < runs; ++r) {
      for (std::size_t t = 0; t < thread_counts.size(); ++t) {
        openblas_set_num_threads(thread_counts[t]);
        const double cpu_start = mrd::bench::process_cpu_seconds();
        const auto start = mrd::bench::Clock::now();
        multiply();
        seconds[t].push_back(mrd::bench::seconds_between(start, mrd::bench::Clock::now()));
        cpu[t].push_back(mrd::bench::process_cpu_seconds() - cpu_start);
      }
    }
    for (std::size_t t = 0; t < thread_counts.size(); ++t) {
      std::cout << "{\"tool\": \"matmul_baseline\", \"n\": " << n
                << ", \"threads\": " << thread_counts[t]
                << ", \"seconds\": " << mrd::bench::json_list(seconds[t])
                << ", \"cpu_s\": " << mrd::bench::json_list(cpu[t]) << ", \"corner\": " << c[0]
                << "}" << std::endl;
    }
  }
  return 0;
}
