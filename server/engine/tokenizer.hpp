// The one tokenisation rule every text job shares (docs/protocol.md, section 7), and the one loop
// that applies it.
//
// A word is a maximal run of bytes that are ASCII letters or digits or >= 0x80 (so UTF-8 letters
// stay inside words, byte for byte); ASCII letters are lower-cased and every other byte separates
// words. for_each_word_span finds the words; fold_word lower-cases one into a caller's buffer.
// Every text job (and bench/wordcount_baseline) goes through them, directly or through
// for_each_word (below) or WordCounter (word_counter.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace mrd::engine {

/// What each byte becomes inside a word, or 0 if it separates words.
inline constexpr std::array<unsigned char, 256> kWordByte = [] {
  std::array<unsigned char, 256> table{};
  for (int b = 0; b < 256; ++b) {
    if (b >= 'A' && b <= 'Z') {
      table[b] = static_cast<unsigned char>(b - 'A' + 'a');
    } else if ((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b >= 0x80) {
      table[b] = static_cast<unsigned char>(b);
    }
  }
  return table;
}();

/// True if `byte` can be part of a word.
inline bool is_word_byte(char byte) {
  return kWordByte[static_cast<unsigned char>(byte)] != 0;
}

/// Calls visit(word) for each word of `text`, in order, as a view of its bytes in `text` (not
/// lower-cased: see fold_word).
template <class Visit>
void for_each_word_span(std::string_view text, Visit&& visit) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  // Every word that starts before the text's last separator ends at or before it, so the loop
  // over a word's bytes needs no bound check; what follows the last separator is one word.
  const auto* last_word = end;
  while (last_word != p && kWordByte[last_word[-1]] != 0)
    --last_word;
  for (;;) {
    while (p != last_word && kWordByte[*p] == 0)
      ++p;
    if (p == last_word) break;
    const auto* const word = p;
    while (kWordByte[*p] != 0)
      ++p;
    visit(
        std::string_view(reinterpret_cast<const char*>(word), static_cast<std::size_t>(p - word)));
  }
  if (last_word != end) {
    visit(std::string_view(reinterpret_cast<const char*>(last_word),
                           static_cast<std::size_t>(end - last_word)));
  }
}

/// Writes `word` (a span from for_each_word_span) lower-cased to `out`, which has room for it.
inline void fold_word(std::string_view word, char* out) {
  for (const char byte : word)
    *out++ = static_cast<char>(kWordByte[static_cast<unsigned char>(byte)]);
}

/// Calls visit(word) for each word of `text`, lower-cased, in order.
///
/// The words are written one after the other into `scratch`, each followed by one space, and
/// every `word` is a view into it. So within one call two consecutive words are also one view,
/// "w1 w2", from the first byte of w1 to the last of w2: the bigram job uses that to count pairs
/// without building strings. `scratch` only ever grows, so reusing it across the documents of a
/// chunk allocates once; the views are valid until the next call with the same scratch.
template <class Visit>
void for_each_word(std::string_view text, std::string& scratch, Visit&& visit) {
  // Words and their spaces take at most one byte more than the text.
  if (scratch.size() < text.size() + 1) scratch.resize(text.size() + 1);
  char* out = scratch.data();
  for_each_word_span(text, [&](std::string_view span) {
    fold_word(span, out);
    visit(std::string_view(out, span.size()));
    out += span.size();
    *out++ = ' ';
  });
}

}  // namespace mrd::engine
