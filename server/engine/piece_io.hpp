// Helpers shared by the intermediate encodings ("pieces" from map, partitions from reduce).
//
// Pieces are cereal binary archives written with protocol::BodyWriter and read back with
// protocol::BodyReader. They come from another process, so they are read as carefully as a
// request: BodyReader checks every count against the bytes left, and a decoding failure becomes a
// JobError that fails the job instead of the server.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "protocol/body_io.hpp"
#include "server/engine/job_kind.hpp"

namespace mrd::engine {

/// For counts inside pieces: the only bound is the piece's own size, which BodyReader checks.
inline constexpr std::uint64_t kNoCountLimit = std::numeric_limits<std::uint64_t>::max();

/// Runs `read` (which decodes intermediate bytes), turning a decoding failure into a JobError
/// that names `what` was being read.
template <class Read>
decltype(auto) read_intermediate(std::string_view what, Read&& read) {
  try {
    return read();
  } catch (const protocol::DecodeError& e) {
    throw JobError("corrupt " + std::string(what) + ": " + e.what());
  } catch (const cereal::Exception& e) {
    throw JobError("corrupt " + std::string(what) + ": " + e.what());
  }
}

/// Throws JobError unless there is at least one partition.
inline void check_partitions(std::uint32_t partitions) {
  if (partitions == 0) throw JobError("a job needs at least one partition");
}

}  // namespace mrd::engine
