#include "server/matrix_result.hpp"

#include "server/engine/matrix_multiply.hpp"

namespace mrd::server {
namespace {

/// Padding before the body, so that C's values (after the header) start on an 8-byte boundary
/// of the file, and so of every worker's mapping: BLAS writes doubles there.
constexpr std::uint64_t kPadding = (8 - engine::kMatrixResultHeaderBytes % 8) % 8;

}  // namespace

std::uint64_t MatrixResult::body_bytes(const engine::InputView& input) {
  const auto& pair = std::get<engine::MatrixPairView>(input);
  return engine::kMatrixResultHeaderBytes + pair.a.rows * pair.b.cols * sizeof(double);
}

MatrixResult::MatrixResult(const engine::InputView& input,
                           const std::vector<engine::InputView>& chunks) {
  const auto& pair = std::get<engine::MatrixPairView>(input);
  segment = ResultSegment::create(kPadding, engine::matrix_result_header(pair.a.rows, pair.b.cols),
                                  body_bytes(input));
  const std::uint64_t row_bytes = pair.b.cols * sizeof(double);
  std::uint64_t offset = kPadding + engine::kMatrixResultHeaderBytes;
  rows.reserve(chunks.size());
  for (const auto& chunk : chunks) {
    const auto block_bytes = std::get<engine::MatrixPairView>(chunk).a.rows * row_bytes;
    rows.push_back({offset, block_bytes});
    offset += block_bytes;
  }
}

}  // namespace mrd::server
