#include "server/engine/text_split.hpp"

#include <algorithm>
#include <utility>

#include "server/engine/tokenizer.hpp"

namespace mrd::engine {
namespace {

/// The first separator at or after `from`, or the end of the text.
std::size_t next_separator(std::string_view text, std::size_t from) {
  while (from < text.size() && is_word_byte(text[from])) {
    ++from;
  }
  return std::min(from, text.size());
}

/// Where the second word starting at or after `from` begins, or the end of the text.
std::size_t second_word_start(std::string_view text, std::size_t from) {
  std::size_t at = from;
  const auto skip = [&](bool word_bytes) {
    while (at < text.size() && is_word_byte(text[at]) == word_bytes) {
      ++at;
    }
  };
  skip(false);  // to the first word
  skip(true);   // past it
  skip(false);  // to the second
  return at;
}

/// Where the last word before `end` (and at or after `from`) begins, or `end` if there is none.
std::size_t last_word_start(std::string_view text, std::size_t from, std::size_t end) {
  std::size_t at = end;
  const auto skip_back = [&](bool word_bytes) {
    while (at > from && is_word_byte(text[at - 1]) == word_bytes) {
      --at;
    }
  };
  skip_back(false);  // over trailing separators
  if (at == from) return end;
  skip_back(true);  // to the word's first byte
  return at;
}

}  // namespace

std::vector<std::string_view> cut_text(std::string_view text, std::uint64_t chunk_bytes,
                                       Overlap overlap) {
  std::vector<std::string_view> pieces;
  std::size_t start = 0;
  while (text.size() - start > chunk_bytes) {
    std::size_t target = start + chunk_bytes;
    if (overlap == Overlap::kLastWord) {
      // The next piece starts at this one's last word, so this one must hold at least two words
      // or the cutting would never move on.
      target = std::max(target, second_word_start(text, start) + 1);
    }
    const std::size_t cut = next_separator(text, target);
    pieces.push_back(text.substr(start, cut - start));
    if (cut == text.size()) return pieces;
    start = overlap == Overlap::kLastWord ? last_word_start(text, start, cut) : cut;
  }
  pieces.push_back(text.substr(start));
  return pieces;
}

std::vector<InputView> split_documents(const DocumentsView& input, std::uint64_t chunk_bytes,
                                       Overlap overlap) {
  std::vector<InputView> chunks;
  DocumentsView current;
  std::uint64_t current_bytes = 0;  // names and texts in `current`: what a worker receives
  const auto close_current = [&] {
    chunks.emplace_back(std::move(current));
    current = {};
    current_bytes = 0;
  };

  for (const auto& document : input.documents) {
    if (document.text.size() <= chunk_bytes) {
      const std::uint64_t bytes = document.name.size() + document.text.size();
      if (!current.documents.empty() && current_bytes + bytes > chunk_bytes) close_current();
      current.documents.push_back(document);
      current_bytes += bytes;
      continue;
    }
    // Too big for one chunk: each piece gets a chunk of its own, and the last one stays open for
    // the small documents that follow.
    for (const std::string_view piece : cut_text(document.text, chunk_bytes, overlap)) {
      if (!current.documents.empty()) close_current();
      current.documents.push_back(DocumentView{document.name, piece});
      current_bytes = document.name.size() + piece.size();
    }
  }
  if (!current.documents.empty() || chunks.empty()) close_current();
  return chunks;
}

}  // namespace mrd::engine
