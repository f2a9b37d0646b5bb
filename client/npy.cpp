#include "client/npy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "client/client_error.hpp"
#include "client/input_file.hpp"
#include "protocol/huge_pages.hpp"
#include "protocol/limits.hpp"

namespace mrd::client {
namespace {

static_assert(std::endian::native == std::endian::little,
              "'<' dtypes are read and written by copying bytes");

constexpr std::string_view kMagic = "\x93NUMPY";

/// numpy pads the header so the data starts on a multiple of this, for memory-mapping.
constexpr std::size_t kHeaderAlignment = 64;

/// load_npy reads this much first: numpy's headers are a few hundred bytes.
constexpr std::size_t kPrefixBytes = 64 * 1024;

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

/// What the first bytes of a .npy file say: the values' type, the matrix's shape, and where the
/// values start.
struct NpyLayout {
  const Dtype* dtype = nullptr;
  bool fortran_order = false;
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  std::size_t data_at = 0;  ///< the values' first byte
  /// Bytes of values the shape needs (both sides are <= 2^20 and an element <= 8 bytes: no
  /// overflow).
  std::uint64_t data_bytes() const { return rows * cols * dtype->bytes; }
  /// numpy.save's float64 matrix: its values are a matrix's, byte for byte.
  bool is_native() const { return dtype == &kDtypes[0] && !fortran_order; }
};

/// Reads the layout from `bytes`, which hold at least the whole header. Throws ClientError (kInput)
/// as "SOURCE: ..." for anything parse_npy does not support.
NpyLayout read_layout(std::string_view bytes, std::string_view source) {
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

  NpyLayout layout;
  for (const auto& d : kDtypes) {
    if (d.descr == header.descr) layout.dtype = &d;
  }
  if (layout.dtype == nullptr) {
    npy_error(source, "dtype '" + header.descr + "' is not supported (use <f8, <f4, <i8 or <i4)");
  }
  layout.fortran_order = header.fortran_order;
  layout.data_at = header_at + header_bytes;
  if (header.shape.size() == 1) {
    layout.rows = 1;
    layout.cols = header.shape[0];
  } else if (header.shape.size() == 2) {
    layout.rows = header.shape[0];
    layout.cols = header.shape[1];
  } else {
    npy_error(source, "a " + std::to_string(header.shape.size()) +
                          "-D array is not a matrix (need 1-D or 2-D)");
  }
  if (layout.rows > protocol::kMaxMatrixSide || layout.cols > protocol::kMaxMatrixSide) {
    npy_error(source, "a " + std::to_string(layout.rows) + "x" + std::to_string(layout.cols) +
                          " matrix; the protocol allows at most " +
                          std::to_string(protocol::kMaxMatrixSide) + " rows and columns");
  }
  if (layout.rows == 0 || layout.cols == 0) npy_error(source, "the matrix is empty");
  return layout;
}

/// A rows x cols matrix, its values in huge pages, not yet set.
protocol::Matrix matrix_of(std::uint64_t rows, std::uint64_t cols) {
  protocol::Matrix m{rows, cols, {}};
  protocol::reserve_in_huge_pages(m.values, rows * cols);
  m.values.resize(rows * cols);
  return m;
}

/// Reads up to `size` bytes at `offset` into `into`; returns how many (fewer only at the end).
std::size_t read_at(int fd, char* into, std::size_t size, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(fd, into + done, size - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

}  // namespace

protocol::Matrix parse_npy(std::string_view bytes, std::string_view source) {
  const NpyLayout layout = read_layout(bytes, source);
  const std::string_view data = bytes.substr(layout.data_at);
  const std::uint64_t data_bytes = layout.data_bytes();
  if (data.size() < data_bytes) {
    npy_error(source, "truncated: shape " + std::to_string(layout.rows) + "x" +
                          std::to_string(layout.cols) + " needs " + std::to_string(data_bytes) +
                          " bytes of data, the file has " + std::to_string(data.size()));
  }
  if (data.size() > data_bytes) npy_error(source, "has bytes after the data its shape describes");

  protocol::Matrix m = matrix_of(layout.rows, layout.cols);
  if (layout.is_native()) {
    std::memcpy(m.values.data(), data.data(), data_bytes);
    return m;
  }
  for (std::uint64_t r = 0; r < m.rows; ++r) {
    for (std::uint64_t c = 0; c < m.cols; ++c) {
      // Fortran order stores column after column: element (r, c) is the (c * rows + r)-th.
      const std::uint64_t stored = layout.fortran_order ? c * m.rows + r : r * m.cols + c;
      m.values[r * m.cols + c] = layout.dtype->read(data.data() + stored * layout.dtype->bytes);
    }
  }
  return m;
}

NpyValues::~NpyValues() {
  if (fd >= 0) ::close(fd);
}

NpyValues::NpyValues(NpyValues&& other) noexcept
    : rows(other.rows),
      cols(other.cols),
      fd(std::exchange(other.fd, -1)),
      offset(other.offset),
      bytes(other.bytes) {}

std::optional<NpyValues> open_npy_values(const std::string& path) {
  NpyValues file;
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) return std::nullopt;
  struct stat info {};
  if (::fstat(file.fd, &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
  const auto size = static_cast<std::uint64_t>(info.st_size);

  std::string prefix(std::min<std::uint64_t>(size, kPrefixBytes), '\0');
  prefix.resize(read_at(file.fd, prefix.data(), prefix.size(), 0));
  NpyLayout layout;
  try {
    layout = read_layout(prefix, path);
  } catch (const ClientError&) {
    return std::nullopt;  // a header longer than the prefix, or a file the general way words
  }
  if (!layout.is_native() || size != layout.data_at + layout.data_bytes()) return std::nullopt;
  file.rows = layout.rows;
  file.cols = layout.cols;
  file.offset = layout.data_at;
  file.bytes = layout.data_bytes();
  return file;
}

protocol::Matrix load_npy(const std::string& path) {
  // Anything but a regular file holding numpy.save's float64 matrix, whole, goes the general way,
  // which also says what is wrong with a file that is.
  const auto whole = [&path] { return parse_npy(read_input_file(path), path); };
  const auto file = open_npy_values(path);
  if (!file) return whole();
  protocol::Matrix m = matrix_of(file->rows, file->cols);
  const auto bytes = static_cast<std::size_t>(file->bytes);
  if (read_at(file->fd, reinterpret_cast<char*>(m.values.data()), bytes, file->offset) != bytes) {
    return whole();  // it shrank, or cannot be read: the general way says which
  }
  return m;
}

std::string npy_header(std::uint64_t rows, std::uint64_t cols) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  // Magic, version, u16 length, header, '\n': pad with spaces before the '\n' to the alignment.
  const std::size_t prefix = kMagic.size() + 2 + 2;
  const std::size_t unpadded = prefix + header.size() + 1;
  header.append((kHeaderAlignment - unpadded % kHeaderAlignment) % kHeaderAlignment, ' ');
  header += '\n';

  std::string out(kMagic);
  out += '\x01';  // format version 1.0
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  return out;
}

std::string encode_npy(const protocol::Matrix& m) {
  const std::string header = npy_header(m.rows, m.cols);
  const auto data_bytes = m.values.size() * sizeof(double);
  std::string out;
  protocol::reserve_in_huge_pages(out, header.size() + data_bytes);
  out += header;
  // On a little-endian host the doubles' bytes already are '<f8'.
  out.append(reinterpret_cast<const char*>(m.values.data()), data_bytes);
  return out;
}

}  // namespace mrd::client
