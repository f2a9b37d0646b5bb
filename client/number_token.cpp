#include "client/number_token.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace mrd::client {

std::optional<double> parse_number_token(std::string_view token) {
  // strtod rather than from_chars: it takes a leading '+' and every spelling of nan and inf.
  // It reads '.' as the decimal point in the C locale, which no mrd program changes.
  // It also skips leading spaces, so refuse them here to keep "a token is a number" exact.
  if (token.empty() || std::isspace(static_cast<unsigned char>(token.front()))) return std::nullopt;
  const std::string text(token);  // strtod needs the terminating NUL
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  if (errno == ERANGE && std::isinf(value)) return std::nullopt;
  return value;
}

}  // namespace mrd::client
