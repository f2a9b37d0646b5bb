// The three kinds of job input, by variant index, and how messages name them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "protocol/messages.hpp"
#include "server/engine/job_kind.hpp"

namespace mrd::engine {

/// The JobInput variant index of an input type.
template <class Input>
constexpr std::size_t input_kind_of() {
  static_assert(std::is_same_v<Input, protocol::Documents> ||
                std::is_same_v<Input, protocol::Numbers> ||
                std::is_same_v<Input, protocol::MatrixPair>);
  if constexpr (std::is_same_v<Input, protocol::Documents>) {
    return 0;
  } else if constexpr (std::is_same_v<Input, protocol::Numbers>) {
    return 1;
  } else {
    return 2;
  }
}
static_assert(std::is_same_v<
              std::variant_alternative_t<input_kind_of<protocol::Documents>(), protocol::JobInput>,
              protocol::Documents>);
static_assert(std::is_same_v<
              std::variant_alternative_t<input_kind_of<protocol::Numbers>(), protocol::JobInput>,
              protocol::Numbers>);
static_assert(std::is_same_v<
              std::variant_alternative_t<input_kind_of<protocol::MatrixPair>(), protocol::JobInput>,
              protocol::MatrixPair>);

/// How messages name an input kind: "documents", "numbers", "a matrix pair".
std::string_view input_kind_name(std::size_t kind);

/// Bytes of input, as far as chunk sizes go: document texts, numbers, or the rows of A.
std::uint64_t input_bytes(const protocol::JobInput& input);

/// "mapper 'matmul' takes a matrix pair, not documents".
std::string wrong_input_message(std::string_view mapper, std::size_t expected, std::size_t actual);

/// The input as the type a mapper takes; a JobError saying what it got instead otherwise.
template <class Input>
const Input& input_as(const protocol::JobInput& input, std::string_view mapper) {
  if (const auto* typed = std::get_if<Input>(&input)) return *typed;
  throw JobError(wrong_input_message(mapper, input_kind_of<Input>(), input.index()));
}

}  // namespace mrd::engine
