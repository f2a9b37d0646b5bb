#include "protocol/submit_layout.hpp"

#include <cstring>

#include "protocol/fixed_bytes.hpp"
#include "protocol/limits.hpp"

namespace mrd::protocol {
namespace {

/// Reads a SUBMIT body front to back, remembering where each value was; every count is checked
/// against the bytes left before it is used, as BodyReader does.
class Cursor : public FixedReader {
 public:
  explicit Cursor(std::string_view body) : FixedReader(body, "body") {}

  std::uint64_t count(std::uint64_t min_element_bytes, std::uint64_t max_count, const char* what) {
    const auto n = value<std::uint64_t>();
    if (n > max_count) throw DecodeError(std::string(what) + ": count exceeds its limit");
    if (n > remaining() / min_element_bytes) {
      throw DecodeError(std::string(what) + ": count larger than the body holds");
    }
    return n;
  }

  /// A length-prefixed byte string, as a range of the body.
  ByteRange bytes(std::uint64_t max_bytes, const char* what) {
    return range_of(count(1, max_bytes, what));
  }

  /// A length-prefixed string, copied (names and keys: a few bytes).
  std::string string(std::uint64_t max_bytes, const char* what) {
    return std::string(take(count(1, max_bytes, what)));
  }

  /// A count of doubles and the doubles, as a range of the body.
  ByteRange doubles(std::uint64_t max_count, const char* what) {
    return range_of(count(sizeof(double), max_count, what) * sizeof(double));
  }

 private:
  ByteRange range_of(std::uint64_t n) {
    const ByteRange range{position(), n};
    take(n);
    return range;
  }
};

MatrixLayout read_matrix_layout(Cursor& c) {
  MatrixLayout m;
  m.rows = c.value<std::uint64_t>();
  m.cols = c.value<std::uint64_t>();
  if (m.rows > kMaxMatrixSide || m.cols > kMaxMatrixSide) {
    throw DecodeError("matrix side exceeds " + std::to_string(kMaxMatrixSide));
  }
  m.values = c.doubles(m.rows * m.cols, "matrix values");  // both sides <= 2^20: no overflow
  if (m.values.size != m.rows * m.cols * sizeof(double)) {
    throw DecodeError("matrix holds a different number of values than its shape");
  }
  return m;
}

void read_input_layout(Cursor& c, SubmitLayout& m) {
  auto& input = m.input;
  input.kind = c.value<std::uint8_t>();
  switch (input.kind) {
    case 0: {
      // Each document is at least two u64 length prefixes.
      const auto n = c.count(16, kNoCountLimit, "document count");
      input.documents.reserve(static_cast<std::size_t>(n));
      for (std::uint64_t i = 0; i < n; ++i) {
        DocumentLayout d;
        d.name = c.bytes(kMaxDocumentNameBytes, "document name");
        d.text = c.bytes(kNoCountLimit, "document text");
        input.documents.push_back(d);
      }
      return;
    }
    case 1:
      input.numbers = c.doubles(kNoCountLimit, "number count");
      m.values_offset = input.numbers.offset;
      return;
    case 2:
      input.a = read_matrix_layout(c);
      input.b = read_matrix_layout(c);
      m.values_offset = input.a.values.offset;
      return;
    default: throw DecodeError("input kind " + std::to_string(input.kind) + " is not defined");
  }
}

std::vector<double> copy_doubles(std::string_view body, ByteRange range) {
  std::vector<double> values(static_cast<std::size_t>(range.size / sizeof(double)));
  if (range.size) std::memcpy(values.data(), body.data() + range.offset, range.size);
  return values;
}

/// Everything before the input: the pair, the options and the idempotency key.
void read_request_head(Cursor& c, SubmitLayout& m) {
  m.mapper = c.string(kMaxNameBytes, "mapper name");
  m.reducer = c.string(kMaxNameBytes, "reducer name");
  m.options.chunk_bytes = c.value<std::uint64_t>();
  m.options.partitions = c.value<std::uint32_t>();
  m.options.task_timeout_ms = c.value<std::uint32_t>();
  m.options.memory_limit_mib = c.value<std::uint32_t>();
  m.idempotency_key = c.string(kMaxIdempotencyKeyBytes, "idempotency key");
}

}  // namespace

std::optional<SubmitHead> submit_head_from_prefix(std::string_view prefix) {
  try {
    Cursor c(prefix.substr(0, kSubmitPrefixBytes));
    SubmitHead head;
    read_request_head(c, head.layout);
    head.layout.input.kind = c.value<std::uint8_t>();
    if (head.layout.input.kind > 2) return std::nullopt;
    head.input_offset = c.position();
    return head;
  } catch (const DecodeError&) {
    return std::nullopt;
  }
}

std::optional<std::uint64_t> values_offset_from_prefix(std::string_view prefix) {
  const auto head = submit_head_from_prefix(prefix);
  if (!head) return std::nullopt;
  switch (head->layout.input.kind) {
    case 0: return 0;                                                // text: nothing to align
    case 1: return head->input_offset + sizeof(std::uint64_t);       // after the count
    default: return head->input_offset + 3 * sizeof(std::uint64_t);  // after rows, cols, count
  }
}

bool ArrivingDocuments::read(std::string_view arrived, std::vector<DocumentLayout>& out) {
  constexpr std::uint64_t kLength = sizeof(std::uint64_t);
  const auto u64_at = [&](std::uint64_t at) {
    std::uint64_t value = 0;
    std::memcpy(&value, arrived.data() + at, sizeof value);  // little-endian, as body_io.hpp checks
    return value;
  };
  // The same checks as Cursor::count, against the bytes the whole body leaves after each field.
  while (!invalid_ && !complete()) {
    const auto left = body_bytes_ - std::min(body_bytes_, position_ + kLength);
    if (position_ + kLength > body_bytes_) {
      invalid_ = true;  // the body ends inside the field
      break;
    }
    if (!count_) {
      if (position_ + kLength > arrived.size()) break;
      const auto n = u64_at(position_);
      if (n > left / (2 * kLength)) {
        invalid_ = true;  // more documents than the body can hold
        break;
      }
      count_ = n;
      position_ += kLength;
      continue;
    }
    // A document: its name's length and name, then its text's length.
    if (position_ + kLength > arrived.size()) break;
    const auto name_bytes = u64_at(position_);
    if (name_bytes > kMaxDocumentNameBytes || name_bytes > left) {
      invalid_ = true;
      break;
    }
    const auto text_length_at = position_ + kLength + name_bytes;
    if (text_length_at + kLength > body_bytes_) {
      invalid_ = true;
      break;
    }
    if (text_length_at + kLength > arrived.size()) break;
    const auto text_bytes = u64_at(text_length_at);
    if (text_bytes > body_bytes_ - (text_length_at + kLength)) {
      invalid_ = true;
      break;
    }
    out.push_back(
        DocumentLayout{{position_ + kLength, name_bytes}, {text_length_at + kLength, text_bytes}});
    position_ = text_length_at + kLength + text_bytes;
    ++read_;
  }
  return !invalid_;
}

Decoded<SubmitLayout> decode_submit_layout(std::string_view body) {
  Decoded<SubmitLayout> out;
  try {
    Cursor c(body);
    SubmitLayout m;
    read_request_head(c, m);
    read_input_layout(c, m);
    c.expect_end();
    out.value = std::move(m);
  } catch (const DecodeError& e) {
    out.error = e.what();
  }
  return out;
}

SubmitRequest materialize(const SubmitLayout& layout, std::string_view body) {
  SubmitRequest request{layout.mapper, layout.reducer, layout.options, {}, layout.idempotency_key};
  const auto text = [&](ByteRange r) { return std::string(body.substr(r.offset, r.size)); };
  const auto& input = layout.input;
  switch (input.kind) {
    case 0: {
      Documents docs;
      docs.documents.reserve(input.documents.size());
      for (const auto& d : input.documents)
        docs.documents.push_back(Document{text(d.name), text(d.text)});
      request.input = std::move(docs);
      break;
    }
    case 1: request.input = Numbers{copy_doubles(body, input.numbers)}; break;
    default:
      request.input =
          MatrixPair{Matrix{input.a.rows, input.a.cols, copy_doubles(body, input.a.values)},
                     Matrix{input.b.rows, input.b.cols, copy_doubles(body, input.b.values)}};
  }
  return request;
}

}  // namespace mrd::protocol
