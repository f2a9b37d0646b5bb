#include "client/matrix_check.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "protocol/huge_pages.hpp"

namespace mrd::client {
namespace {

protocol::Matrix random_matrix(std::uint64_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  protocol::Matrix m{n, n, {}};
  // Huge pages: the kernel reads these values when they are sent, and on a virtual machine its
  // first read of each 4 KiB page of a process is dear (docs/benchmarks.md, "Fresh pages").
  protocol::reserve_in_huge_pages(m.values, n * n);
  for (std::uint64_t i = 0; i < n * n; ++i)
    m.values.push_back(uniform(rng));
  return m;
}

}  // namespace

protocol::MatrixPair random_matrix_pair(std::uint64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  protocol::MatrixPair pair;
  pair.a = random_matrix(n, rng);
  pair.b = random_matrix(n, rng);
  return pair;
}

protocol::Matrix multiply(const protocol::Matrix& a, const protocol::Matrix& b) {
  protocol::Matrix c{a.rows, b.cols, std::vector<double>(a.rows * b.cols, 0.0)};
  // i-k-j: the inner loop walks a row of B and a row of C, both contiguous.
  for (std::uint64_t i = 0; i < a.rows; ++i) {
    for (std::uint64_t k = 0; k < a.cols; ++k) {
      const double aik = a.values[i * a.cols + k];
      for (std::uint64_t j = 0; j < b.cols; ++j) {
        c.values[i * c.cols + j] += aik * b.values[k * b.cols + j];
      }
    }
  }
  return c;
}

MatrixDifference compare_matrices(const protocol::Matrix& got, const protocol::Matrix& expected,
                                  double relative_tolerance) {
  MatrixDifference d;
  d.same_shape = got.rows == expected.rows && got.cols == expected.cols &&
                 got.values.size() == expected.values.size();
  if (!d.same_shape) return d;
  d.within_tolerance = true;
  double worst_excess = -INFINITY;  // how far the worst element is past its tolerance
  for (std::size_t i = 0; i < got.values.size(); ++i) {
    const double error = std::abs(got.values[i] - expected.values[i]);
    const double allowed = relative_tolerance * std::max(1.0, std::abs(expected.values[i]));
    // NaN compares false both ways: a NaN where a number was expected is out of tolerance.
    const bool ok = error <= allowed;
    if (!ok) d.within_tolerance = false;
    if (!std::isnan(error)) d.max_abs_error = std::max(d.max_abs_error, error);
    const double excess = std::isnan(error) ? INFINITY : error - allowed;
    if (excess > worst_excess) {
      worst_excess = excess;
      d.worst_row = i / got.cols;
      d.worst_col = i % got.cols;
      d.worst_got = got.values[i];
      d.worst_expected = expected.values[i];
    }
  }
  return d;
}

}  // namespace mrd::client
