#include "server/engine/input_view.hpp"

#include <cstdint>
#include <type_traits>

#include "protocol/body_io.hpp"

namespace mrd::engine {
namespace {

// Both variants name an input kind by their index: each alternative must stand where its owning
// counterpart does.
template <std::size_t Kind, class View, class Owned>
constexpr bool same_kind() {
  return std::is_same_v<std::variant_alternative_t<Kind, InputView>, View> &&
         std::is_same_v<std::variant_alternative_t<Kind, protocol::JobInput>, Owned>;
}
static_assert(std::variant_size_v<InputView> == std::variant_size_v<protocol::JobInput>);
static_assert(same_kind<0, DocumentsView, protocol::Documents>());
static_assert(same_kind<1, NumbersView, protocol::Numbers>());
static_assert(same_kind<2, MatrixPairView, protocol::MatrixPair>());

MatrixView view_of(const protocol::Matrix& matrix) {
  return MatrixView{matrix.rows, matrix.cols, matrix.values};
}

protocol::Matrix to_owned(const MatrixView& matrix) {
  return protocol::Matrix{matrix.rows, matrix.cols, {matrix.values.begin(), matrix.values.end()}};
}

/// The view of each owning alternative.
struct Viewer {
  template <class Owned>
  InputView operator()(const Owned& input) const {
    return engine::view_of(input);
  }
};

/// The owning copy of each view alternative.
struct Owner {
  protocol::JobInput operator()(const DocumentsView& view) const {
    protocol::Documents input;
    input.documents.reserve(view.documents.size());
    for (const auto& document : view.documents) {
      input.documents.push_back(
          protocol::Document{std::string(document.name), std::string(document.text)});
    }
    return input;
  }
  protocol::JobInput operator()(const NumbersView& view) const {
    return protocol::Numbers{{view.values.begin(), view.values.end()}};
  }
  protocol::JobInput operator()(const MatrixPairView& view) const {
    return protocol::MatrixPair{to_owned(view.a), to_owned(view.b)};
  }
};

}  // namespace

DocumentsView view_of(const protocol::Documents& input) {
  DocumentsView view;
  view.documents.reserve(input.documents.size());
  for (const auto& document : input.documents) {
    view.documents.push_back(DocumentView{document.name, document.text});
  }
  return view;
}

NumbersView view_of(const protocol::Numbers& input) {
  return NumbersView{input.values};
}

MatrixPairView view_of(const protocol::MatrixPair& input) {
  return MatrixPairView{view_of(input.a), view_of(input.b)};
}

InputView view_of(const protocol::JobInput& input) {
  return std::visit(Viewer{}, input);
}

protocol::JobInput to_owned(const InputView& view) {
  return std::visit(Owner{}, view);
}

InputView view_in(const protocol::InputLayout& layout, const char* bytes, std::uint64_t first) {
  const auto at = [&](protocol::ByteRange range) { return bytes + (range.offset - first); };
  const auto text = [&](protocol::ByteRange range) {
    if (range.size == 0) return std::string_view{};
    return std::string_view(at(range), static_cast<std::size_t>(range.size));
  };
  const auto doubles = [&](protocol::ByteRange range) -> std::span<const double> {
    if (range.size == 0) return {};
    const char* p = at(range);
    if (range.size % sizeof(double) != 0 ||
        reinterpret_cast<std::uintptr_t>(p) % alignof(double) != 0) {
      throw protocol::DecodeError("numbers that are not whole, aligned doubles");
    }
    return {reinterpret_cast<const double*>(p), range.size / sizeof(double)};
  };
  switch (layout.kind) {
    case 0: {
      DocumentsView docs;
      docs.documents.reserve(layout.documents.size());
      for (const auto& d : layout.documents)
        docs.documents.push_back({text(d.name), text(d.text)});
      return docs;
    }
    case 1: return NumbersView{doubles(layout.numbers)};
    default:
      return MatrixPairView{{layout.a.rows, layout.a.cols, doubles(layout.a.values)},
                            {layout.b.rows, layout.b.cols, doubles(layout.b.values)}};
  }
}

}  // namespace mrd::engine
