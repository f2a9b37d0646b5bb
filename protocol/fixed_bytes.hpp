// FixedWriter and FixedReader: little-endian integers and raw bytes, written and read with
// memcpy. The fixed layouts (a SUBMIT body read as offsets, the scheduler's task messages, the hot
// replies) use them instead of a cereal stream: a few bytes need no stream.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "protocol/body_io.hpp"  // DecodeError, and the little-endian assertion

namespace mrd::protocol {

/// Appends to a std::string.
class FixedWriter {
 public:
  explicit FixedWriter(std::string& out) : out_(out) {}

  template <class T>
  void value(T v) {
    static_assert(std::is_arithmetic_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }

  /// A u64 length, then the bytes.
  void bytes(std::string_view s) {
    value<std::uint64_t>(s.size());
    raw(s);
  }

  /// The bytes alone.
  void raw(std::string_view s) { out_.append(s); }

 private:
  std::string& out_;
};

/// Reads bytes it does not own, front to back, never past their end: every read that would go
/// past it throws a DecodeError naming `subject` ("body", "task message").
class FixedReader {
 public:
  FixedReader(std::string_view bytes, const char* subject) : bytes_(bytes), subject_(subject) {}

  std::uint64_t position() const { return at_; }
  std::uint64_t remaining() const { return bytes_.size() - at_; }

  template <class T>
  T value() {
    static_assert(std::is_arithmetic_v<T>);
    if (remaining() < sizeof(T)) fail(" ends in the middle of a number");
    T v;
    std::memcpy(&v, bytes_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }

  /// The next `n` bytes.
  std::string_view take(std::uint64_t n) {
    if (n > remaining()) fail(" ends before its bytes do");
    const auto taken = bytes_.substr(static_cast<std::size_t>(at_), static_cast<std::size_t>(n));
    at_ += n;
    return taken;
  }

  /// Throws unless every byte has been read: trailing bytes mean the sender meant something else.
  void expect_end() const {
    if (remaining() != 0) {
      throw DecodeError(std::string("unexpected bytes after the end of the ") + subject_);
    }
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw DecodeError(subject_ + std::string(what));
  }

  std::string_view bytes_;
  const char* subject_;
  std::uint64_t at_ = 0;
};

}  // namespace mrd::protocol
