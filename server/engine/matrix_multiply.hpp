// The matrix product's own entry points, beside its JobKind (builtin_jobs.hpp).
//
// A big product's map tasks do not answer with their block of C: each writes its rows straight
// into the job's result, laid out as the FETCH body (protocol::encode of a JobResult holding C),
// which the server made before the tasks ran (server/matrix_result.hpp).
#pragma once

#include <cstdint>
#include <string>

#include "server/engine/input_view.hpp"

namespace mrd::engine {

/// Bytes before C's values in an encoded JobResult holding C: u8 result kind, u64 rows, u64
/// cols, u64 value count.
inline constexpr std::uint64_t kMatrixResultHeaderBytes = 25;

/// The first kMatrixResultHeaderBytes of protocol::encode(JobResult{C}) for a rows x cols C.
std::string matrix_result_header(std::uint64_t rows, std::uint64_t cols);

/// Multiplies a chunk (a block of A's rows, and B) into `c`: the block's rows of C, row after
/// row, `bytes` long (8-byte aligned). Throws JobError if the chunk is not a valid product or
/// `bytes` is not the block's size.
void multiply_into(const InputView& chunk, char* c, std::uint64_t bytes);

}  // namespace mrd::engine
