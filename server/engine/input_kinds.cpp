#include "server/engine/input_kinds.hpp"

namespace mrd::engine {

std::string_view input_kind_name(std::size_t kind) {
  switch (kind) {
    case input_kind_of<protocol::Documents>(): return "documents";
    case input_kind_of<protocol::Numbers>(): return "numbers";
    case input_kind_of<protocol::MatrixPair>(): return "a matrix pair";
    default: return "an unknown input";
  }
}

std::string wrong_input_message(std::string_view mapper, std::size_t expected, std::size_t actual) {
  return "mapper '" + std::string(mapper) + "' takes " + std::string(input_kind_name(expected)) +
         ", not " + std::string(input_kind_name(actual));
}

std::uint64_t input_bytes(const protocol::JobInput& input) {
  if (const auto* docs = std::get_if<protocol::Documents>(&input)) {
    std::uint64_t total = 0;
    for (const auto& d : docs->documents)
      total += d.text.size();
    return total;
  }
  if (const auto* numbers = std::get_if<protocol::Numbers>(&input)) {
    return numbers->values.size() * sizeof(double);
  }
  return std::get<protocol::MatrixPair>(input).a.values.size() * sizeof(double);
}

}  // namespace mrd::engine
