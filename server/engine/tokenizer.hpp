// The one tokenisation rule every text job shares.
//
// A word is a maximal run of bytes that are ASCII letters or digits or >= 0x80 (so UTF-8 letters
// stay inside words, byte for byte); ASCII letters are lower-cased and every other byte separates
// words.
#pragma once

#include <array>
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
  const char* word = out;  // where the current word starts in scratch
  for (const char byte : text) {
    const unsigned char folded = kWordByte[static_cast<unsigned char>(byte)];
    if (folded != 0) {
      *out++ = static_cast<char>(folded);
    } else if (out != word) {
      visit(std::string_view(word, static_cast<std::size_t>(out - word)));
      *out++ = ' ';
      word = out;
    }
  }
  if (out != word) visit(std::string_view(word, static_cast<std::size_t>(out - word)));
}

}  // namespace mrd::engine
