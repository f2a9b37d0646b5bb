// Splitting documents into chunks for the text jobs.
//
// Small documents are packed together into one chunk until it holds about chunk_bytes; a document
// bigger than chunk_bytes is cut into several chunks, each cut between two words. Every chunk keeps
// the names of its documents, because the inverted index needs them. Chunks are views: their
// names and texts point into the input's bytes.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "server/engine/input_view.hpp"

namespace mrd::engine {

/// What a chunk cut out of the middle of a document repeats from the one before it.
enum class Overlap {
  /// Nothing: every word lands in exactly one chunk (word count, index).
  kNone,
  /// The previous chunk's last word, so that the pair spanning the cut is seen by exactly one
  /// chunk: the earlier chunk sees its last word with nothing after it, the later one sees that
  /// word followed by its successor (bigram count).
  kLastWord,
};

/// Cuts `text` into pieces of about `chunk_bytes` (> 0), each ending at a separator byte at or
/// after its target length (or at the end of the text), so no word is split. With kLastWord each
/// piece after the first starts at the first byte of the previous piece's last word. Always returns
/// at least one piece.
std::vector<std::string_view> cut_text(std::string_view text, std::uint64_t chunk_bytes,
                                       Overlap overlap);

/// Splits documents into chunks of about `chunk_bytes` (> 0); see the file comment. Each chunk is
/// a DocumentsView whose names and texts view `input`'s bytes. Always returns at least one chunk,
/// even for no documents.
std::vector<InputView> split_documents(const DocumentsView& input, std::uint64_t chunk_bytes,
                                       Overlap overlap);

}  // namespace mrd::engine
