// InputView: a job's input as views into bytes that someone else owns.
//
// A job's input lives once, in the shared-memory segment its SUBMIT body was copied into (see
// server/submit_segment.hpp); the scheduler cuts it into chunks and a worker maps the segment and
// reads its chunk in place. Every engine function therefore takes views, never owning copies:
// splitting cuts views, and a chunk is views into the same bytes as its input.
//
// Numbers and matrix values are views of aligned doubles: whoever lays out the bytes (the segment,
// or a protocol::JobInput through view_of) keeps each value on an 8-byte boundary.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/messages.hpp"
#include "protocol/submit_layout.hpp"

namespace mrd::engine {

/// A named text (see protocol::Document).
struct DocumentView {
  std::string_view name;
  std::string_view text;
};

/// Input kind 0: texts, for the word, bigram and index jobs.
struct DocumentsView {
  std::vector<DocumentView> documents;
};

/// Input kind 1: numbers, for the statistics job.
struct NumbersView {
  std::span<const double> values;
};

/// A dense row-major matrix: element (r, c) is values[r * cols + c]. `values` may hold any number
/// of values; validate() checks that it holds rows * cols before anything relies on it.
struct MatrixView {
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  std::span<const double> values;
};

/// Input kind 2: two matrices, for the product A x B.
struct MatrixPairView {
  MatrixView a;
  MatrixView b;
};

/// A job's input, or one chunk of it; the variant index is the input kind byte on the wire, the
/// same as protocol::JobInput's.
using InputView = std::variant<DocumentsView, NumbersView, MatrixPairView>;

/// Views into an owning input (tests, and inputs decoded from small frames). `input` must outlive
/// the view.
InputView view_of(const protocol::JobInput& input);

/// view_of for one alternative, so that viewing a protocol::Documents (or Numbers, or MatrixPair)
/// views its own bytes rather than those of a JobInput copied from it.
DocumentsView view_of(const protocol::Documents& input);
NumbersView view_of(const protocol::Numbers& input);
MatrixPairView view_of(const protocol::MatrixPair& input);

/// Views of the ranges `layout` names, in `bytes`, which hold the input's bytes from offset
/// `first` on (0: all of them). Throws protocol::DecodeError if the numbers are not whole,
/// aligned doubles there.
InputView view_in(const protocol::InputLayout& layout, const char* bytes, std::uint64_t first = 0);

/// An owning copy of a view: for tests and for results built from a chunk.
protocol::JobInput to_owned(const InputView& view);

}  // namespace mrd::engine
