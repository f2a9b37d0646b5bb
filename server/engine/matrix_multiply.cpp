// matmul + rows: the matrix product C = A x B.
//
// Row r of C depends only on row r of A (and all of B), so each chunk is a block of A's rows and
// the whole of B (views into the input, not copies), each map task multiplies its block with
// BLAS, reading both in place, and the blocks of C only need to be stacked in chunk order: there
// is no reduce step. The one map piece is the block of C, encoded
// as protocol::write_matrix does (u64 rows, u64 cols, then the values as a u64 count and f64s).
// A big product skips the pieces: each task writes its rows of C where the result lives
// (multiply_into, matrix_multiply.hpp).
#include "server/engine/matrix_multiply.hpp"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "protocol/body_io.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "server/engine/builtin_jobs.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/piece_io.hpp"

namespace mrd::engine {
namespace {

using protocol::Matrix;

/// Largest product: 256 MiB of doubles (a 5792 x 5792 matrix), well inside what a reply can carry
/// and about the size of the largest SUBMIT; mrd holds a result in memory to serve it.
constexpr std::uint64_t kMaxProductValues = (256ull << 20) / sizeof(double);

std::string shape(const MatrixView& m) {
  return std::to_string(m.rows) + "x" + std::to_string(m.cols);
}

/// Throws unless `m` holds rows * cols values and its sides are within the protocol's limit
/// (which also keeps them within BLAS's int arguments).
void check_shape(const MatrixView& m, const char* name) {
  if (m.rows > protocol::kMaxMatrixSide || m.cols > protocol::kMaxMatrixSide) {
    throw JobError(std::string("matrix ") + name + " is " + shape(m) + "; no side may exceed " +
                   std::to_string(protocol::kMaxMatrixSide));
  }
  if (m.values.size() != m.rows * m.cols) {
    throw JobError(std::string("matrix ") + name + " is " + shape(m) + " but holds " +
                   std::to_string(m.values.size()) + " values");
  }
}

/// c = a x b with cblas_dgemm, reading both where they are; the shapes have been checked and
/// `c` holds a.rows * b.cols values.
void multiply(const MatrixView& a, const MatrixView& b, double* c) {
  // BLAS rejects a leading dimension of 0, and with any side 0 the product is all zeros (or
  // empty) anyway, so it is only called when there is something to multiply.
  if (a.rows == 0 || a.cols == 0 || b.cols == 0) {
    // An empty product may have no storage at all: memset of a null pointer is undefined.
    if (a.rows * b.cols != 0) std::memset(c, 0, a.rows * b.cols * sizeof(double));
    return;
  }
  const auto m = static_cast<blasint>(a.rows);
  const auto k = static_cast<blasint>(a.cols);
  const auto n = static_cast<blasint>(b.cols);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a.values.data(), k,
              b.values.data(), n, 0.0, c, n);
}

Matrix multiply(const MatrixView& a, const MatrixView& b) {
  Matrix c{a.rows, b.cols, std::vector<double>(a.rows * b.cols, 0.0)};
  multiply(a, b, c.values.data());
  return c;
}

class MatrixMultiply final : public JobKind {
 public:
  std::string_view mapper() const override { return "matmul"; }
  std::string_view reducer() const override { return "rows"; }
  std::size_t input_kind() const override { return input_kind_of<MatrixPairView>(); }
  bool has_reduce() const override { return false; }

  void validate(const InputView& input) const override {
    const auto& pair = input_as<MatrixPairView>(input, mapper());
    check_shape(pair.a, "A");
    check_shape(pair.b, "B");
    if (pair.a.cols != pair.b.rows) {
      throw JobError("cannot multiply " + shape(pair.a) + " by " + shape(pair.b) + ": A has " +
                     std::to_string(pair.a.cols) + " columns but B has " +
                     std::to_string(pair.b.rows) + " rows");
    }
    // A product can be far larger than its factors (2^20 x 0 times 0 x 2^20 is 8 TiB of zeros
    // from a 100-byte request): its size is checked before anything is allocated for it.
    const auto values = pair.a.rows * pair.b.cols;  // no overflow: both sides are <= 2^20
    if (values > kMaxProductValues) {
      throw JobError("the product of " + shape(pair.a) + " by " + shape(pair.b) + " would hold " +
                     std::to_string(values) + " values; at most " +
                     std::to_string(kMaxProductValues) + " (256 MiB) are allowed");
    }
  }

  std::vector<InputView> split(const InputView& input, std::uint64_t chunk_bytes) const override {
    validate(input);  // the row blocks are cut from A's values: they must hold rows * cols
    const auto& pair = std::get<MatrixPairView>(input);
    const MatrixView& a = pair.a;
    // A row of A is 8 * cols bytes; rows without columns cost nothing, so they all go together.
    const std::uint64_t row_bytes = sizeof(double) * a.cols;
    const std::uint64_t rows_per_chunk = row_bytes == 0
                                             ? std::max<std::uint64_t>(1, a.rows)
                                             : std::max<std::uint64_t>(1, chunk_bytes / row_bytes);

    std::vector<InputView> chunks;
    std::uint64_t first = 0;
    do {
      const std::uint64_t rows = std::min(rows_per_chunk, a.rows - first);
      const auto block = a.values.subspan(first * a.cols, rows * a.cols);
      chunks.emplace_back(MatrixPairView{MatrixView{rows, a.cols, block}, pair.b});
      first += rows;
    } while (first < a.rows);
    return chunks;
  }

  /// One piece whatever `partitions` is: the block of C.
  std::vector<std::string> map(const InputView& chunk, std::uint32_t) const override {
    validate(chunk);  // BLAS would read out of bounds on a wrong shape
    const auto& pair = std::get<MatrixPairView>(chunk);
    std::string piece;
    protocol::BodyWriter writer(piece);
    protocol::write_matrix(writer, multiply(pair.a, pair.b));
    return {std::move(piece)};
  }

  std::string reduce(const std::vector<std::string>&) const override {
    throw JobError("matmul has no reduce step; its map outputs go straight to assemble");
  }

  protocol::JobResult assemble(std::vector<std::string> blocks) const override {
    Matrix c;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const Matrix block = read_intermediate("matrix block from a map task", [&] {
        protocol::BodyReader reader(blocks[i]);
        Matrix m = protocol::read_matrix(reader);
        reader.expect_end();
        return m;
      });
      blocks[i] = {};  // free each block's bytes as soon as they are decoded
      if (i == 0) {
        c.cols = block.cols;
      } else if (block.cols != c.cols) {
        throw JobError("matrix blocks from map tasks disagree on the number of columns");
      }
      c.rows += block.rows;
      c.values.insert(c.values.end(), block.values.begin(), block.values.end());
    }
    return c;
  }
};

}  // namespace

const JobKind& matrix_multiply_job() {
  static const MatrixMultiply job;
  return job;
}

std::string matrix_result_header(std::uint64_t rows, std::uint64_t cols) {
  // As protocol's write(JobResult) starts a matrix: its variant index, then write_matrix's
  // fields up to the values. Tests hold it to protocol::encode byte for byte.
  std::string header;
  protocol::BodyWriter writer(header);
  writer.value(static_cast<std::uint8_t>(protocol::JobResult(Matrix{}).index()));
  writer.value(rows);
  writer.value(cols);
  writer.count(rows * cols);
  return header;
}

void multiply_into(const InputView& chunk, char* c, std::uint64_t bytes) {
  matrix_multiply_job().validate(chunk);  // BLAS would read out of bounds on a wrong shape
  const auto& pair = std::get<MatrixPairView>(chunk);
  if (bytes != pair.a.rows * pair.b.cols * sizeof(double)) {
    throw JobError("a block of " + shape(pair.a) + " by " + shape(pair.b) +
                   " cannot be written in " + std::to_string(bytes) + " bytes");
  }
  if (reinterpret_cast<std::uintptr_t>(c) % alignof(double) != 0) {
    throw JobError("the rows of C to write are not aligned for doubles");
  }
  multiply(pair.a, pair.b, reinterpret_cast<double*>(c));
}

}  // namespace mrd::engine
