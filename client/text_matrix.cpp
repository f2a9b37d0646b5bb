#include "client/text_matrix.hpp"

#include <charconv>
#include <vector>

#include "client/client_error.hpp"
#include "client/number_token.hpp"
#include "protocol/limits.hpp"

namespace mrd::client {
namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back()))
    s.remove_suffix(1);
  return s;
}

/// The fields of one line (comment already removed): comma-separated if it has a comma, else
/// whitespace-separated. An empty field between commas is kept, so it is reported, not skipped.
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  if (line.find(',') != std::string_view::npos) {
    for (;;) {
      const auto comma = line.find(',');
      fields.push_back(trim(line.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      line.remove_prefix(comma + 1);
    }
    return fields;
  }
  std::size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && is_blank(line[at]))
      ++at;
    const std::size_t start = at;
    while (at < line.size() && !is_blank(line[at]))
      ++at;
    if (at > start) fields.push_back(line.substr(start, at - start));
  }
  return fields;
}

std::string count_values(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " value" : " values");
}

}  // namespace

protocol::Matrix parse_text_matrix(std::string_view text, std::string_view source) {
  const auto fail = [&](std::size_t line_number, const std::string& why) {
    std::string where(source);
    if (line_number > 0) where += ": line " + std::to_string(line_number);
    throw ClientError(ErrorKind::kInput, where + ": " + why);
  };

  protocol::Matrix m;
  std::size_t first_row_line = 0;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;

    line = line.substr(0, line.find('#'));
    if (trim(line).empty()) continue;

    const auto fields = split_fields(line);
    if (m.rows == 0) {
      m.cols = fields.size();
      first_row_line = line_number;
    } else if (fields.size() != m.cols) {
      fail(line_number, "this row has " + count_values(fields.size()) + ", the first (line " +
                            std::to_string(first_row_line) + ") has " + std::to_string(m.cols));
    }
    for (const auto field : fields) {
      if (field.empty()) fail(line_number, "an empty value between commas");
      const auto value = parse_number_token(field);
      if (!value) fail(line_number, "'" + std::string(field) + "' is not a number");
      m.values.push_back(*value);
    }
    ++m.rows;
  }
  if (m.rows == 0) fail(0, "no numbers in this matrix file");
  if (m.rows > protocol::kMaxMatrixSide || m.cols > protocol::kMaxMatrixSide) {
    fail(0, "a " + std::to_string(m.rows) + "x" + std::to_string(m.cols) +
                " matrix; the protocol allows at most " + std::to_string(protocol::kMaxMatrixSide) +
                " rows and columns");
  }
  return m;
}

std::string format_text_matrix(const protocol::Matrix& m) {
  std::string out;
  out.reserve(m.values.size() * 26);  // "-1.234567890123456789e+00 "
  char buffer[64];
  for (std::uint64_t r = 0; r < m.rows; ++r) {
    for (std::uint64_t c = 0; c < m.cols; ++c) {
      if (c > 0) out += ' ';
      // to_chars with precision 18 writes what printf("%.18e") writes, without the locale.
      const auto result = std::to_chars(buffer, buffer + sizeof buffer, m.values[r * m.cols + c],
                                        std::chars_format::scientific, 18);
      out.append(buffer, result.ptr);
    }
    out += '\n';
  }
  return out;
}

}  // namespace mrd::client
