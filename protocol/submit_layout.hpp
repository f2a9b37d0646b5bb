// SubmitLayout: where each part of a SUBMIT body is, as offsets into the body.
//
// Decoding a big SUBMIT this way copies nothing: the server keeps the body once (in a shared
// segment a worker maps) and its jobs read their input in place through these offsets. The
// checks are the same as decode<SubmitRequest>'s, which is built on this decoder: a body that one
// accepts the other accepts, with the same values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/limits.hpp"

namespace mrd::protocol {

/// Bytes [offset, offset + size) of a body.
struct ByteRange {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::uint64_t end() const { return offset + size; }
  bool operator==(const ByteRange&) const = default;
};

/// A document's name and text.
struct DocumentLayout {
  ByteRange name;
  ByteRange text;
  bool operator==(const DocumentLayout&) const = default;
};

/// A matrix's shape and its rows * cols little-endian f64 values.
struct MatrixLayout {
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  ByteRange values;
  bool operator==(const MatrixLayout&) const = default;
};

/// Where a job's input, or one chunk of it, is: the ranges of its texts, numbers or matrices.
struct InputLayout {
  std::uint8_t kind = 0;                  ///< JobInput's variant index
  std::vector<DocumentLayout> documents;  ///< kind 0
  ByteRange numbers;                      ///< kind 1: the values, 8 bytes each
  MatrixLayout a;                         ///< kind 2
  MatrixLayout b;                         ///< kind 2

  /// Calls `f(range)` for every range of bytes the input is made of.
  template <class F>
  void for_each_range(F&& f) const {
    for (const auto& d : documents) {
      f(d.name);
      f(d.text);
    }
    f(numbers);
    f(a.values);
    f(b.values);
  }
};

struct SubmitLayout {
  std::string mapper;
  std::string reducer;
  JobOptions options;
  std::string idempotency_key;
  InputLayout input;
  /// Where the input's 8-byte values start (kinds 1 and 2; 0 for documents). Every value of the
  /// input sits at a multiple of 8 bytes from it, so a copy of the body placed with this offset on
  /// an 8-byte boundary has every value aligned.
  std::uint64_t values_offset = 0;
};

/// Bytes at the start of a SUBMIT body that always hold everything before the input's values:
/// two names, the options, the idempotency key (each at its size limit), the input kind and, for
/// numbers or matrices, their counts and shapes.
inline constexpr std::uint64_t kSubmitPrefixBytes =
    2 * (8 + kMaxNameBytes) + 20 + (8 + kMaxIdempotencyKeyBytes) + 1 + 3 * 8;

/// Where the input's values will start (SubmitLayout::values_offset), read from the first bytes
/// of a body that is still arriving: a receiver can then place the body so that its values are
/// aligned before the rest is in. Needs the first kSubmitPrefixBytes (or the whole body if it is
/// shorter); nullopt if they are not a valid start (the whole body's decode says why).
std::optional<std::uint64_t> values_offset_from_prefix(std::string_view prefix);

/// Everything before the input of a SUBMIT body still arriving (names, options, idempotency key,
/// input kind; SubmitLayout::input holds only the kind), read from its first kSubmitPrefixBytes
/// (or the whole body if it is shorter), and where the input's first field starts: for
/// documents, their count. nullopt if they are not a valid start.
struct SubmitHead {
  SubmitLayout layout;
  std::uint64_t input_offset = 0;
};
std::optional<SubmitHead> submit_head_from_prefix(std::string_view prefix);

/// The documents of a SUBMIT body that is still arriving, read as their bytes come: a document is
/// known once its name and its text's length are in, while its text may still be arriving. The
/// checks are decode_submit_layout's, against the size the body will have.
class ArrivingDocuments {
 public:
  /// For a body of `body_bytes` whose document count starts at `offset` (SubmitHead).
  ArrivingDocuments(std::uint64_t offset, std::uint64_t body_bytes)
      : position_(offset), body_bytes_(body_bytes) {}

  /// Reads on in `arrived`, the body's first bytes (more of them at each call), and appends to
  /// `out` every document now known. False once those bytes cannot start a valid body: nothing
  /// more is read (the whole body's decode says what is wrong).
  bool read(std::string_view arrived, std::vector<DocumentLayout>& out);
  /// Every document is known.
  bool complete() const { return count_ && read_ == *count_; }

 private:
  std::uint64_t position_;  ///< where the next field starts
  std::uint64_t body_bytes_;
  std::optional<std::uint64_t> count_;  ///< of documents, once read
  std::uint64_t read_ = 0;              ///< documents known
  bool invalid_ = false;
};

/// Decodes a whole SUBMIT body into offsets; the same checks and messages as decode().
Decoded<SubmitLayout> decode_submit_layout(std::string_view body);

/// The request a layout describes, with the input copied out of `body` (the body it was decoded
/// from).
SubmitRequest materialize(const SubmitLayout& layout, std::string_view body);

}  // namespace mrd::protocol
