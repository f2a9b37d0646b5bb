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
#include <cstdint>
#include <cstring>
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

/// fold_word, then 8 zero bytes after the word: `out` has room for word.size() + 8 bytes, and
/// the text `word` is a span of may be read up to `text_end`. A word of at most 8 bytes with 8
/// bytes of text from its start (most words) is lower-cased in one 8-byte step, with no loop whose
/// end the processor has to guess.
inline void fold_word_zero_padded(std::string_view word, const char* text_end, char* out) {
  const std::size_t size = word.size();
  if (size - 1 < 8 && text_end - word.data() >= 8) {
    std::uint64_t bytes;
    std::memcpy(&bytes, word.data(), 8);
    // A word holds only [A-Za-z0-9] and bytes >= 0x80: set 0x20 on the bytes in 'A'..'Z'. Adding
    // 0x3f (or 0x25) to a byte's low 7 bits sets its high bit iff they are >= 'A' (or > 'Z'),
    // with no carry into the next byte.
    constexpr std::uint64_t kHigh = 0x8080808080808080ULL, kLow7 = 0x7f7f7f7f7f7f7f7fULL;
    const std::uint64_t low7 = bytes & kLow7;
    const std::uint64_t at_least_a = low7 + 0x3f3f3f3f3f3f3f3fULL;
    const std::uint64_t past_z = low7 + 0x2525252525252525ULL;
    const std::uint64_t upper = at_least_a & ~past_z & ~bytes & kHigh;
    bytes = (bytes | upper >> 2) & (~std::uint64_t{0} >> (64 - 8 * size));  // keep the word only
    std::memcpy(out, &bytes, 8);
    std::memset(out + 8, 0, 8);
    return;
  }
  fold_word(word, out);
  std::memset(out + size, 0, 8);
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
