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

void DocumentSplitter::close_current(std::vector<InputView>& out) {
  out.emplace_back(std::move(current_));
  current_ = {};
  current_bytes_ = 0;
  ++chunks_;
}

void DocumentSplitter::start_document(const DocumentView& document, std::vector<InputView>& out) {
  if (document.text.size() > chunk_bytes_) {
    // Too big for one chunk: text_arrived() cuts it into pieces, each in a chunk of its own.
    document_ = document;
    cutting_ = true;
    start_ = 0;
    return;
  }
  cutting_ = false;
  // A small document joins the chunk being filled, or starts the next one. Everything before it
  // has arrived, so the chunk it closes is complete.
  const std::uint64_t bytes = document.name.size() + document.text.size();
  if (!current_.documents.empty() && current_bytes_ + bytes > chunk_bytes_) close_current(out);
  current_.documents.push_back(document);
  current_bytes_ += bytes;
}

void DocumentSplitter::text_arrived(std::uint64_t bytes, std::vector<InputView>& out) {
  if (!cutting_) return;
  const std::string_view text = document_.text;
  const std::string_view readable = text.substr(0, bytes);
  const bool whole = readable.size() == text.size();
  // cut_text's loop, which stops where it would read past the readable bytes: a position found
  // at their end may move once more bytes are in.
  const auto unsettled = [&](std::size_t at) { return at == readable.size() && !whole; };
  while (text.size() - start_ > chunk_bytes_) {
    std::size_t target = start_ + chunk_bytes_;
    if (overlap_ == Overlap::kLastWord) {
      const auto second = second_word_start(readable, start_);
      if (unsettled(second)) return;
      target = std::max(target, second + 1);
    }
    const std::size_t cut = next_separator(readable, target);
    if (unsettled(cut)) return;
    // Each piece starts a chunk of its own, closing the one before.
    if (!current_.documents.empty()) close_current(out);
    current_.documents.push_back(DocumentView{document_.name, text.substr(start_, cut - start_)});
    current_bytes_ = document_.name.size() + cut - start_;
    if (cut == text.size()) {
      cutting_ = false;
      return;
    }
    start_ = overlap_ == Overlap::kLastWord ? last_word_start(readable, start_, cut) : cut;
  }
  // The last piece stays open for the small documents that follow.
  if (!current_.documents.empty()) close_current(out);
  current_.documents.push_back(DocumentView{document_.name, text.substr(start_)});
  current_bytes_ = document_.name.size() + text.size() - start_;
  cutting_ = false;
}

void DocumentSplitter::finish(std::vector<InputView>& out) {
  if (!current_.documents.empty() || chunks_ == 0) close_current(out);
}

std::vector<InputView> split_documents(const DocumentsView& input, std::uint64_t chunk_bytes,
                                       Overlap overlap) {
  std::vector<InputView> chunks;
  DocumentSplitter splitter(chunk_bytes, overlap);
  for (const auto& document : input.documents) {
    splitter.start_document(document, chunks);
    splitter.text_arrived(document.text.size(), chunks);
  }
  splitter.finish(chunks);
  return chunks;
}

}  // namespace mrd::engine
