#include "client/numbers_file.hpp"

#include "client/client_error.hpp"
#include "client/input_file.hpp"
#include "client/number_token.hpp"

namespace mrd::client {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

std::vector<double> parse_numbers(std::string_view text, std::string_view source) {
  std::vector<double> numbers;
  std::size_t line_number = 1;
  std::size_t at = 0;
  while (at < text.size()) {
    if (is_space(text[at])) {
      if (text[at] == '\n') ++line_number;
      ++at;
      continue;
    }
    const std::size_t start = at;
    while (at < text.size() && !is_space(text[at]))
      ++at;
    const auto token = text.substr(start, at - start);
    const auto value = parse_number_token(token);
    if (!value) {
      // Quote at most a short prefix: a binary file given by mistake has very long "tokens".
      constexpr std::size_t kQuoteBytes = 40;
      const std::string quoted = token.size() <= kQuoteBytes
                                     ? std::string(token)
                                     : std::string(token.substr(0, kQuoteBytes)) + "...";
      throw ClientError(ErrorKind::kInput, std::string(source) + ": line " +
                                               std::to_string(line_number) + ": '" + quoted +
                                               "' is not a number");
    }
    numbers.push_back(*value);
  }
  return numbers;
}

std::vector<double> load_numbers_file(const std::string& path) {
  return parse_numbers(read_input_file(path), path);
}

}  // namespace mrd::client
