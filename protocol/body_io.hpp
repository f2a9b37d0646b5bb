// BodyWriter and BodyReader: cereal binary archives over in-memory bytes, with bounds.
//
// cereal's binary archive writes numbers as their raw little-endian bytes and a string or vector
// as a u64 element count followed by the elements. Its own loaders trust that count: a 20-byte
// body could declare a 2^60-element vector and cereal would try to allocate it. BodyReader reads
// every count itself and checks it against the bytes actually left before anything is sized.
#pragma once

#include <cereal/archives/binary.hpp>

#include <bit>
#include <cstdint>
#include <istream>
#include <ostream>
#include <span>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "protocol/codec.hpp"  // GatheredPayload
#include "protocol/huge_pages.hpp"

namespace mrd::protocol {

static_assert(std::endian::native == std::endian::little,
              "the wire format is little-endian and cereal writes host order");

/// A body that cannot be decoded: truncated, trailing bytes, a count that lies, a bad enum.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Appends cereal-encoded values to a std::string.
class BodyWriter {
 public:
  explicit BodyWriter(std::string& out) : buffer_(out), stream_(&buffer_), archive_(stream_) {}
  /// The same, except that string and double payloads of `gather_from` bytes or more are not
  /// appended: their place and bytes go to `gathered` instead (their count is appended).
  /// `outside`: the sizes of payloads the request does not hold, by slot (gather_message).
  BodyWriter(std::string& out, std::vector<GatheredPayload>& gathered, std::size_t gather_from,
             std::span<const std::uint64_t> outside = {})
      : BodyWriter(out) {
    gathered_ = &gathered;
    gather_from_ = gather_from;
    outside_ = outside;
  }

  /// Any arithmetic value or enum, as its raw bytes.
  template <class T>
  void value(T v) {
    static_assert(std::is_arithmetic_v<T> || std::is_enum_v<T>);
    if constexpr (std::is_enum_v<T>) {
      archive_(static_cast<std::underlying_type_t<T>>(v));
    } else {
      archive_(v);
    }
  }

  /// A u64 count, then the bytes (cereal's std::string layout).
  void bytes(std::string_view s) {
    archive_(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
    payload(s);
  }

  /// A u64 count, then the raw doubles (cereal's std::vector<double> layout).
  void doubles(const std::vector<double>& v) {
    archive_(cereal::make_size_tag(static_cast<cereal::size_type>(v.size())));
    payload({reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double)});
  }

  /// The text in payload slot `slot`: as bytes(), or, if the writer was told that slot is outside
  /// the request, its size alone, its bytes left for the sender (GatheredPayload::outside_slot).
  void bytes_in_slot(std::size_t slot, std::string_view text) {
    if (const auto outside = outside_bytes(slot)) {
      archive_(cereal::make_size_tag(static_cast<cereal::size_type>(outside)));
      gathered_->push_back({buffer_.size(), {}, slot, outside});
      return;
    }
    bytes(text);
  }

  /// The doubles in payload slot `slot`: as doubles(), or their count alone if that slot is
  /// outside the request.
  void doubles_in_slot(std::size_t slot, const std::vector<double>& v) {
    if (const auto outside = outside_bytes(slot)) {
      if (outside % sizeof(double) != 0) {
        throw std::invalid_argument("an outside payload of doubles must be a multiple of 8 bytes");
      }
      archive_(cereal::make_size_tag(static_cast<cereal::size_type>(outside / sizeof(double))));
      gathered_->push_back({buffer_.size(), {}, slot, outside});
      return;
    }
    doubles(v);
  }

  /// A u64 element count; the caller writes the elements.
  void count(std::uint64_t n) {
    archive_(cereal::make_size_tag(static_cast<cereal::size_type>(n)));
  }

 private:
  /// The size of slot `slot` if it is outside the request, else 0.
  std::uint64_t outside_bytes(std::size_t slot) const {
    return slot < outside_.size() ? outside_[slot] : 0;
  }

  /// Raw bytes: appended, or gathered if they are big enough.
  void payload(std::string_view s) {
    if (gathered_ && s.size() >= gather_from_) {
      gathered_->push_back({buffer_.size(), s, std::nullopt, 0});
    } else {
      archive_(cereal::binary_data(s.data(), s.size()));
    }
  }

  /// A streambuf that appends everything written to a string.
  class AppendBuffer : public std::streambuf {
   public:
    explicit AppendBuffer(std::string& out) : out_(out) {}

   protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override {
      out_.append(s, static_cast<std::size_t>(n));
      return n;
    }
    int_type overflow(int_type ch) override {
      if (!traits_type::eq_int_type(ch, traits_type::eof())) out_.push_back(static_cast<char>(ch));
      return traits_type::not_eof(ch);
    }

   public:
    /// Bytes appended so far (AppendBuffer keeps no buffer of its own: they are all in `out`).
    std::size_t size() const { return out_.size(); }

   private:
    std::string& out_;
  };

  AppendBuffer buffer_;
  std::ostream stream_;
  cereal::BinaryOutputArchive archive_;
  std::vector<GatheredPayload>* gathered_ = nullptr;
  std::size_t gather_from_ = 0;
  std::span<const std::uint64_t> outside_;
};

/// Reads cereal-encoded values from a byte range it does not own, refusing to read past its end.
class BodyReader {
 public:
  explicit BodyReader(std::string_view body)
      : buffer_(body), stream_(&buffer_), archive_(stream_) {}

  /// Bytes not read yet.
  std::size_t remaining() const { return buffer_.remaining(); }

  template <class T>
  T value() {
    static_assert(std::is_arithmetic_v<T>);
    T v{};
    if (remaining() < sizeof(T)) throw DecodeError("body ends in the middle of a number");
    archive_(v);
    return v;
  }

  /// A u64 count of elements each at least `min_element_bytes` long on the wire, checked against
  /// the bytes left and against `max_count`.
  std::uint64_t count(std::size_t min_element_bytes, std::uint64_t max_count, const char* what) {
    const auto n = value<std::uint64_t>();
    if (n > max_count) throw DecodeError(std::string(what) + ": count exceeds its limit");
    if (min_element_bytes > 0 && n > remaining() / min_element_bytes) {
      throw DecodeError(std::string(what) + ": count larger than the body holds");
    }
    return n;
  }

  /// A string of at most `max_bytes`.
  std::string bytes(std::uint64_t max_bytes, const char* what) {
    const auto n = count(1, max_bytes, what);
    std::string s(static_cast<std::size_t>(n), '\0');
    archive_(cereal::binary_data(s.data(), s.size()));
    return s;
  }

  /// A vector of doubles.
  std::vector<double> doubles(std::uint64_t max_count, const char* what) {
    const auto n = count(sizeof(double), max_count, what);
    std::vector<double> v;
    reserve_in_huge_pages(v, static_cast<std::size_t>(n));
    v.resize(static_cast<std::size_t>(n));
    archive_(cereal::binary_data(v.data(), v.size() * sizeof(double)));
    return v;
  }

  /// The bytes of `n` doubles, left where they are (not aligned for reading as doubles in place).
  std::string_view doubles_in_place(std::uint64_t max_count, const char* what) {
    const auto n = count(sizeof(double), max_count, what);
    return buffer_.take(static_cast<std::size_t>(n) * sizeof(double));
  }

  /// Throws unless every byte has been read: trailing bytes mean the sender meant something else.
  void expect_end() const {
    if (remaining() != 0) throw DecodeError("unexpected bytes after the end of the body");
  }

 private:
  /// A read-only streambuf over memory owned by someone else.
  class ViewBuffer : public std::streambuf {
   public:
    explicit ViewBuffer(std::string_view bytes) {
      char* begin = const_cast<char*>(bytes.data());  // never written: get area only
      setg(begin, begin, begin + bytes.size());
    }
    std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }
    /// The next `n` bytes (at most remaining()), passed over.
    std::string_view take(std::size_t n) {
      const std::string_view taken(gptr(), n);
      setg(eback(), gptr() + n, egptr());
      return taken;
    }
  };

  ViewBuffer buffer_;
  std::istream stream_;
  cereal::BinaryInputArchive archive_;
};

}  // namespace mrd::protocol
