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

/// split_documents for documents that are still arriving: each chunk is cut as soon as the bytes
/// it ends at are in, and the chunks are the ones split_documents cuts from the whole input, in
/// the same order (split_documents is this, fed the whole input at once). A job's maps can then
/// start while its SUBMIT is still being received.
///
/// Feed it the documents in order: start_document() once its name and text length are known
/// (its text may still be arriving), then text_arrived() as more of its text is readable. A
/// document is started only once the one before it has arrived whole.
class DocumentSplitter {
 public:
  DocumentSplitter(std::uint64_t chunk_bytes, Overlap overlap)
      : chunk_bytes_(chunk_bytes), overlap_(overlap) {}

  /// Goes on with `document`, whose name is readable; its text (only its length counts yet)
  /// views the bytes it will be read from. Appends the chunks this completes to `out`.
  void start_document(const DocumentView& document, std::vector<InputView>& out);
  /// The first `bytes` of the current document's text are readable. Appends the chunks this
  /// completes to `out`.
  void text_arrived(std::uint64_t bytes, std::vector<InputView>& out);
  /// Every document has arrived whole: appends the last chunk to `out` (there is at least one
  /// chunk in all, even for no documents).
  void finish(std::vector<InputView>& out);

 private:
  void close_current(std::vector<InputView>& out);

  std::uint64_t chunk_bytes_;
  Overlap overlap_;
  DocumentView document_;            ///< the document being cut into pieces, if cutting_
  bool cutting_ = false;             ///< document_ is too big for one chunk and not all cut yet
  std::size_t start_ = 0;            ///< where its next piece starts
  DocumentsView current_;            ///< the chunk being filled
  std::uint64_t current_bytes_ = 0;  ///< names and texts in current_: what a worker receives
  std::uint64_t chunks_ = 0;         ///< chunks appended so far
};

}  // namespace mrd::engine
