#include "client/npy.hpp"

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "client/client_error.hpp"
#include "protocol/huge_pages.hpp"
#include "protocol/limits.hpp"

namespace mrd::client {
namespace {

static_assert(std::endian::native == std::endian::little,
              "'<' dtypes are read and written by copying bytes");

constexpr std::string_view kMagic = "\x93NUMPY";

/// numpy pads the header so the data starts on a multiple of this, for memory-mapping.
constexpr std::size_t kHeaderAlignment = 64;

/// The three fields of the header dictionary.
struct NpyHeader {
  std::string descr;                 ///< dtype string, e.g. "<f8"
  bool fortran_order = false;        ///< true: column-major data
  std::vector<std::uint64_t> shape;  ///< one entry per dimension
};

/// Reads the header, a Python dict literal such as
///   {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }
/// It accepts exactly the subset numpy writes: string keys, a string, a bool and a tuple of ints.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  NpyHeader parse() {
    NpyHeader header;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    expect('{');
    while (!accept('}')) {
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        skip_space();
        if (peek() != '\'' && peek() != '"') fail("structured dtypes are not supported");
        header.descr = string_literal();
        seen_descr = true;
      } else if (key == "fortran_order") {
        header.fortran_order = bool_literal();
        seen_order = true;
      } else if (key == "shape") {
        header.shape = int_tuple();
        seen_shape = true;
      } else {
        fail("unexpected key '" + key + "' in the header");
      }
      if (!accept(',')) {
        expect('}');
        break;
      }
    }
    if (!seen_descr || !seen_order || !seen_shape) {
      fail("the header lacks one of 'descr', 'fortran_order', 'shape'");
    }
    return header;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw ClientError(ErrorKind::kInput, std::string(source_) + ": bad .npy header: " + why);
  }

  void skip_space() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\n' || text_[at_] == '\t')) {
      ++at_;
    }
  }

  char peek() const { return at_ < text_.size() ? text_[at_] : '\0'; }

  bool accept(char c) {
    skip_space();
    if (peek() != c) return false;
    ++at_;
    return true;
  }

  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }

  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string");
    const auto end = text_.find(quote, at_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string s(text_.substr(at_ + 1, end - at_ - 1));
    at_ = end + 1;
    return s;
  }

  bool bool_literal() {
    skip_space();
    for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      if (text_.substr(at_).starts_with(word)) {
        at_ += std::strlen(word);
        return value;
      }
    }
    fail("expected True or False");
  }

  std::vector<std::uint64_t> int_tuple() {
    std::vector<std::uint64_t> values;
    expect('(');
    while (!accept(')')) {
      skip_space();
      std::uint64_t v = 0;
      const std::size_t start = at_;
      while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
        if (v > (UINT64_MAX - 9) / 10) fail("a dimension is too large");
        v = v * 10 + static_cast<std::uint64_t>(text_[at_++] - '0');
      }
      if (at_ == start) fail("expected a dimension");
      if (peek() == 'L') ++at_;  // files written by Python 2 say "3L"
      values.push_back(v);
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return values;
  }

  std::string_view text_;
  std::string_view source_;
  std::size_t at_ = 0;
};

[[noreturn]] void npy_error(std::string_view source, const std::string& why) {
  throw ClientError(ErrorKind::kInput, std::string(source) + ": " + why);
}

std::uint64_t read_le(std::string_view bytes, std::size_t at, std::size_t width) {
  std::uint64_t v = 0;
  for (std::size_t i = width; i-- > 0;)
    v = (v << 8) | static_cast<std::uint8_t>(bytes[at + i]);
  return v;
}

/// One element of a supported dtype, at `p`, as a double. The data need not be aligned.
using ElementReader = double (*)(const char* p);

template <class T>
double read_element(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return static_cast<double>(v);
}

struct Dtype {
  std::string_view descr;
  std::size_t bytes;
  ElementReader read;
};

constexpr Dtype kDtypes[] = {
    {"<f8", 8, &read_element<double>},
    {"<f4", 4, &read_element<float>},
    {"<i8", 8, &read_element<std::int64_t>},
    {"<i4", 4, &read_element<std::int32_t>},
};

}  // namespace

protocol::Matrix parse_npy(std::string_view bytes, std::string_view source) {
  if (!bytes.starts_with(kMagic))
    npy_error(source, "not a .npy file (it does not start with \\x93NUMPY)");
  if (bytes.size() < kMagic.size() + 2) npy_error(source, "truncated .npy file");
  const int major = static_cast<std::uint8_t>(bytes[6]);
  const int minor = static_cast<std::uint8_t>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0) {
    npy_error(source, ".npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                          " is not supported (1.0, 2.0 and 3.0 are)");
  }
  // Version 1.0 has a u16 header length; 2.0 widened it to u32; 3.0 made the header UTF-8.
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  const std::size_t header_at = 8 + length_bytes;
  if (bytes.size() < header_at) npy_error(source, "truncated .npy file");
  const std::uint64_t header_bytes = read_le(bytes, 8, length_bytes);
  if (header_bytes > bytes.size() - header_at) npy_error(source, "truncated .npy header");
  const NpyHeader header = HeaderParser(bytes.substr(header_at, header_bytes), source).parse();

  const Dtype* dtype = nullptr;
  for (const auto& d : kDtypes) {
    if (d.descr == header.descr) dtype = &d;
  }
  if (dtype == nullptr) {
    npy_error(source, "dtype '" + header.descr + "' is not supported (use <f8, <f4, <i8 or <i4)");
  }

  protocol::Matrix m;
  if (header.shape.size() == 1) {
    m.rows = 1;
    m.cols = header.shape[0];
  } else if (header.shape.size() == 2) {
    m.rows = header.shape[0];
    m.cols = header.shape[1];
  } else {
    npy_error(source, "a " + std::to_string(header.shape.size()) +
                          "-D array is not a matrix (need 1-D or 2-D)");
  }
  if (m.rows > protocol::kMaxMatrixSide || m.cols > protocol::kMaxMatrixSide) {
    npy_error(source, "a " + std::to_string(m.rows) + "x" + std::to_string(m.cols) +
                          " matrix; the protocol allows at most " +
                          std::to_string(protocol::kMaxMatrixSide) + " rows and columns");
  }
  if (m.rows == 0 || m.cols == 0) npy_error(source, "the matrix is empty");

  // Both sides are <= 2^20 and an element <= 8 bytes: no overflow.
  const std::uint64_t count = m.rows * m.cols;
  const std::uint64_t data_bytes = count * dtype->bytes;
  const std::string_view data = bytes.substr(header_at + header_bytes);
  if (data.size() < data_bytes) {
    npy_error(source, "truncated: shape " + std::to_string(m.rows) + "x" + std::to_string(m.cols) +
                          " needs " + std::to_string(data_bytes) + " bytes of data, the file has " +
                          std::to_string(data.size()));
  }
  if (data.size() > data_bytes) npy_error(source, "has bytes after the data its shape describes");

  protocol::reserve_in_huge_pages(m.values, count);
  m.values.resize(count);
  for (std::uint64_t r = 0; r < m.rows; ++r) {
    for (std::uint64_t c = 0; c < m.cols; ++c) {
      // Fortran order stores column after column: element (r, c) is the (c * rows + r)-th.
      const std::uint64_t stored = header.fortran_order ? c * m.rows + r : r * m.cols + c;
      m.values[r * m.cols + c] = dtype->read(data.data() + stored * dtype->bytes);
    }
  }
  return m;
}

std::string encode_npy(const protocol::Matrix& m) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" +
                       std::to_string(m.rows) + ", " + std::to_string(m.cols) + "), }";
  // Magic, version, u16 length, header, '\n': pad with spaces before the '\n' to the alignment.
  const std::size_t prefix = kMagic.size() + 2 + 2;
  const std::size_t unpadded = prefix + header.size() + 1;
  header.append((kHeaderAlignment - unpadded % kHeaderAlignment) % kHeaderAlignment, ' ');
  header += '\n';

  const auto data_bytes = m.values.size() * sizeof(double);
  std::string out;
  protocol::reserve_in_huge_pages(out, kMagic.size() + 4 + header.size() + data_bytes);
  out += kMagic;
  out += '\x01';  // format version 1.0
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  // On a little-endian host the doubles' bytes already are '<f8'.
  out.append(reinterpret_cast<const char*>(m.values.data()), data_bytes);
  return out;
}

}  // namespace mrd::client
