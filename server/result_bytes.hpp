// ResultBytes: a finished job's body as FETCH sends it, wherever those bytes live.
//
// Most results (and every failure's reason) are a string the scheduler encoded. A matrix
// product's result is the shared memory its workers wrote C into (pool/segment.hpp's
// ResultSegment): sending it from there saves copying hundreds of megabytes. Either way the job
// table and the replies being written share one ResultBytes, never a copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "server/pool/segment.hpp"

namespace mrd::server {

class ResultBytes {
 public:
  /// Bytes in a string.
  explicit ResultBytes(std::string bytes) : storage_(std::move(bytes)) {}
  /// The body of a finished result segment.
  explicit ResultBytes(std::shared_ptr<const ResultSegment> segment)
      : storage_(std::move(segment)) {}

  /// The bytes, valid for as long as this lives.
  std::string_view bytes() const {
    if (const auto* s = std::get_if<std::string>(&storage_)) return *s;
    return std::get<std::shared_ptr<const ResultSegment>>(storage_)->body();
  }

  /// Bytes of memory this holds: a string's capacity, or the segment's size.
  std::uint64_t held_bytes() const {
    if (const auto* s = std::get_if<std::string>(&storage_)) return s->capacity();
    const auto& segment = *std::get<std::shared_ptr<const ResultSegment>>(storage_);
    return segment.padding() + segment.body_size();
  }

 private:
  std::variant<std::string, std::shared_ptr<const ResultSegment>> storage_;
};

}  // namespace mrd::server
