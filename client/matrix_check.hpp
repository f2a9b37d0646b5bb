// Checking a matrix product locally: random inputs, a plain multiplication, and a comparison.
//
// For `mrctl matmul --random N --verify`, which tests the server end to end without input files.
#pragma once

#include <cstdint>

#include "protocol/messages.hpp"

namespace mrd::client {

/// Two `n`x`n` matrices A then B of values uniform in [-1, 1), from std::mt19937_64 seeded with
/// `seed`: the same seed gives the same matrices with the same standard library.
protocol::MatrixPair random_matrix_pair(std::uint64_t n, std::uint64_t seed);

/// A x B by the textbook i-k-j loop. The caller checks a.cols == b.rows.
protocol::Matrix multiply(const protocol::Matrix& a, const protocol::Matrix& b);

/// How far `got` is from `expected`.
struct MatrixDifference {
  bool same_shape = false;
  double max_abs_error = 0;  ///< largest |got - expected| over all elements
  bool within_tolerance = false;
  std::uint64_t worst_row = 0, worst_col = 0;  ///< where the element furthest outside tolerance is
  double worst_got = 0, worst_expected = 0;
};

/// Compares element-wise; an element is within tolerance when
/// |got - expected| <= relative_tolerance * max(1, |expected|).
MatrixDifference compare_matrices(const protocol::Matrix& got, const protocol::Matrix& expected,
                                  double relative_tolerance);

}  // namespace mrd::client
