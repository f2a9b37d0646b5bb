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

std::optional<InputView> join_chunks(std::span<const InputView> chunks) {
  if (chunks.empty()) return std::nullopt;
  if (std::holds_alternative<DocumentsView>(chunks.front())) {
    DocumentsView joined;
    for (const auto& chunk : chunks) {
      const auto* documents = std::get_if<DocumentsView>(&chunk);
      if (!documents) return std::nullopt;
      for (const auto& document : documents->documents) {
        auto* last = joined.documents.empty() ? nullptr : &joined.documents.back();
        if (last && last->name.data() == document.name.data() &&
            last->text.data() + last->text.size() == document.text.data()) {
          last->text = {last->text.data(), last->text.size() + document.text.size()};
        } else {
          joined.documents.push_back(document);
        }
      }
    }
    return joined;
  }
  if (std::holds_alternative<NumbersView>(chunks.front())) {
    const auto* first = std::get_if<NumbersView>(&chunks.front());
    const double* begin = first->values.data();
    const double* end = begin + first->values.size();
    for (const auto& chunk : chunks.subspan(1)) {
      const auto* numbers = std::get_if<NumbersView>(&chunk);
      if (!numbers || numbers->values.data() != end) return std::nullopt;
      end += numbers->values.size();
    }
    return NumbersView{{begin, end}};
  }
  return std::nullopt;
}

}  // namespace mrd::engine
