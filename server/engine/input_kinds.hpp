// The three kinds of job input, by variant index, and how messages name them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "protocol/messages.hpp"
#include "server/engine/input_view.hpp"
#include "server/engine/job_kind.hpp"

namespace mrd::engine {

/// The InputView (and protocol::JobInput) variant index of an input view type.
template <class Input>
constexpr std::size_t input_kind_of() {
  static_assert(std::is_same_v<Input, DocumentsView> || std::is_same_v<Input, NumbersView> ||
                std::is_same_v<Input, MatrixPairView>);
  if constexpr (std::is_same_v<Input, DocumentsView>) {
    return 0;
  } else if constexpr (std::is_same_v<Input, NumbersView>) {
    return 1;
  } else {
    return 2;
  }
}
static_assert(std::is_same_v<std::variant_alternative_t<input_kind_of<DocumentsView>(), InputView>,
                             DocumentsView>);
static_assert(std::is_same_v<std::variant_alternative_t<input_kind_of<NumbersView>(), InputView>,
                             NumbersView>);
static_assert(std::is_same_v<std::variant_alternative_t<input_kind_of<MatrixPairView>(), InputView>,
                             MatrixPairView>);

/// How messages name an input kind: "documents", "numbers", "a matrix pair".
std::string_view input_kind_name(std::size_t kind);

/// Bytes of input, as far as chunk sizes go: document texts, numbers, or the values of A.
std::uint64_t input_bytes(const InputView& input);

/// input_bytes of an owning input, without building views of it (the planner sizes a SUBMIT
/// before any memory is charged for it).
std::uint64_t input_bytes(const protocol::JobInput& input);

/// One chunk made of `chunks`, consecutive chunks of one input as split() cut them, for a map
/// task that runs them together: their documents in order (the pieces of a document cut between
/// two of them joined again), or their numbers as one span. Nothing for a matrix pair, whose
/// chunks are not cut to be joined.
std::optional<InputView> join_chunks(std::span<const InputView> chunks);

/// "mapper 'matmul' takes a matrix pair, not documents".
std::string wrong_input_message(std::string_view mapper, std::size_t expected, std::size_t actual);

/// The input as the view type a mapper takes; a JobError saying what it got instead otherwise.
template <class Input>
const Input& input_as(const InputView& input, std::string_view mapper) {
  if (const auto* typed = std::get_if<Input>(&input)) return *typed;
  throw JobError(wrong_input_message(mapper, input_kind_of<Input>(), input.index()));
}

}  // namespace mrd::engine
