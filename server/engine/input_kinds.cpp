#include "server/engine/input_kinds.hpp"

namespace mrd::engine {
namespace {

/// input_bytes of either variant: their alternatives have the same members.
template <class Input>
std::uint64_t bytes_of(const Input& input) {
  switch (input.index()) {
    case input_kind_of<DocumentsView>(): {
      std::uint64_t total = 0;
      for (const auto& d : std::get<input_kind_of<DocumentsView>()>(input).documents)
        total += d.text.size();
      return total;
    }
    case input_kind_of<NumbersView>():
      return std::get<input_kind_of<NumbersView>()>(input).values.size() * sizeof(double);
    default:
      return std::get<input_kind_of<MatrixPairView>()>(input).a.values.size() * sizeof(double);
  }
}

}  // namespace

std::string_view input_kind_name(std::size_t kind) {
  switch (kind) {
    case input_kind_of<DocumentsView>(): return "documents";
    case input_kind_of<NumbersView>(): return "numbers";
    case input_kind_of<MatrixPairView>(): return "a matrix pair";
    default: return "an unknown input";
  }
}

std::string wrong_input_message(std::string_view mapper, std::size_t expected, std::size_t actual) {
  return "mapper '" + std::string(mapper) + "' takes " + std::string(input_kind_name(expected)) +
         ", not " + std::string(input_kind_name(actual));
}

std::uint64_t input_bytes(const InputView& input) {
  return bytes_of(input);
}

std::uint64_t input_bytes(const protocol::JobInput& input) {
  return bytes_of(input);
}

}  // namespace mrd::engine
