// MatrixResult: a big matrix product's result, made before its map tasks run, written by them.
//
// C's bytes go once into a shared result file (pool/segment.hpp's ResultSegment): each map task's
// worker computes its rows of C in memory of its own (ResultRows) and writes them there. The file
// holds the FETCH body (protocol::encode of a JobResult holding C) after a few bytes of padding
// that put C's values on 8-byte boundaries; the server writes the body's header, the workers the
// values. Nothing is copied when the job ends: the finished file is the result the job table
// keeps and FETCH sends.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "protocol/submit_layout.hpp"
#include "server/engine/input_view.hpp"
#include "server/pool/segment.hpp"

namespace mrd::server {

struct MatrixResult {
  /// Bytes of the FETCH body of the product of `input` (a valid matrix pair).
  static std::uint64_t body_bytes(const engine::InputView& input);

  /// The result file for the product of `input`, split into `chunks` (blocks of A's rows, in
  /// order, as the matrix product's split() cuts them). Throws std::system_error if the file
  /// cannot be made.
  MatrixResult(const engine::InputView& input, const std::vector<engine::InputView>& chunks);

  std::unique_ptr<ResultSegment> segment;
  std::vector<protocol::ByteRange> rows;  ///< per chunk: the bytes of the file its task writes
};

}  // namespace mrd::server
