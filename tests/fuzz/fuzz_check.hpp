// What the fuzz targets share: a check that stops the run, and the round trip every body obeys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "protocol/codec.hpp"

/// Stops the run when an invariant does not hold. abort() is a crash to libFuzzer, which then
/// saves the input that caused it; assert() would vanish in a build with NDEBUG.
#define FUZZ_CHECK(condition, what)                                                          \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: failed: %s\n", __FILE__, __LINE__, what, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace mrd::fuzz {

/// libFuzzer's input as the byte view the codec takes.
inline std::string_view bytes_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Decodes `body` as a T and, if that works, encodes the value again: the bytes must be `body`
/// exactly. Every field has one encoding (fixed-width numbers, raw doubles, counted strings) and
/// decode refuses trailing bytes, so two different bodies meaning the same message would be a
/// codec bug: a reader that accepts something the writer can never produce. Returns whether the
/// body decoded.
template <class T>
bool check_round_trip(std::string_view body) {
  const auto decoded = protocol::decode<T>(body);
  if (!decoded) {
    FUZZ_CHECK(!decoded.error.empty(), "a body that does not decode comes with the reason");
    return false;
  }
  FUZZ_CHECK(protocol::encode(*decoded.value) == body, "encode(decode(body)) == body");
  return true;
}

}  // namespace mrd::fuzz
