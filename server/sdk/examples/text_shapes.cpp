// An example mrd plugin: two small jobs over text.
//
//   char-classes + sum   how many bytes of each class the documents hold: "letter", "digit",
//                        "space", "punctuation", "control" and "non-ascii"
//   longest-word + max   for each document, the length in bytes of its longest word (a word as
//                        the built-in jobs define it: a run of [A-Za-z0-9] or bytes >= 0x80)
//
// Both give the same answer however mrd chunks the input: mrd cuts text only between words, and
// every byte lands in exactly one chunk.
//
// Build (docs/plugins.md), from the top of the source tree:
//   g++ -std=c++20 -O2 -fPIC -shared -I server/sdk -o libtext_shapes.so
//       server/sdk/examples/text_shapes.cpp
// Run:
//   mrd --plugin ./libtext_shapes.so
//   mrctl submit --mapper char-classes --reducer sum --documents README.md
#include <cctype>
#include <cstdint>
#include <string_view>

#include "mrd_plugin.h"

namespace {

std::string_view class_of(unsigned char byte) {
  if (byte >= 0x80) return "non-ascii";
  if (std::isalpha(byte)) return "letter";
  if (std::isdigit(byte)) return "digit";
  if (std::isspace(byte)) return "space";
  if (std::ispunct(byte)) return "punctuation";
  return "control";
}

bool is_word_byte(unsigned char byte) {
  return byte >= 0x80 || std::isalnum(byte);
}

int map_char_classes(const char*, size_t, const char* text, size_t text_size, mrd_emit_fn emit,
                     void* context, char*, size_t) {
  // Count locally first: six emits per document instead of one per byte.
  std::uint64_t counts[6] = {};
  static constexpr std::string_view kNames[6] = {"letter",      "digit",   "space",
                                                 "punctuation", "control", "non-ascii"};
  for (size_t i = 0; i < text_size; ++i) {
    const auto name = class_of(static_cast<unsigned char>(text[i]));
    for (int c = 0; c < 6; ++c) {
      if (kNames[c] == name) ++counts[c];
    }
  }
  for (int c = 0; c < 6; ++c) {
    if (counts[c]) emit(context, kNames[c].data(), kNames[c].size(), counts[c]);
  }
  return 0;
}

int map_longest_word(const char* name, size_t name_size, const char* text, size_t text_size,
                     mrd_emit_fn emit, void* context, char*, size_t) {
  std::uint64_t longest = 0, current = 0;
  for (size_t i = 0; i < text_size; ++i) {
    current = is_word_byte(static_cast<unsigned char>(text[i])) ? current + 1 : 0;
    if (current > longest) longest = current;
  }
  // A document cut into several chunks emits once per chunk; max keeps the longest.
  emit(context, name, name_size, longest);
  return 0;
}

uint64_t sum(uint64_t a, uint64_t b) {
  return a + b;
}
uint64_t max(uint64_t a, uint64_t b) {
  return a > b ? a : b;
}

const mrd_plugin_job kJobs[] = {
    {"char-classes", "sum", map_char_classes, sum},
    {"longest-word", "max", map_longest_word, max},
};

}  // namespace

extern "C" MRD_PLUGIN_EXPORT uint32_t mrd_plugin_sdk_version(void) {
  return MRD_PLUGIN_SDK_VERSION;
}

extern "C" MRD_PLUGIN_EXPORT const mrd_plugin_job* mrd_plugin_jobs(size_t* count) {
  *count = sizeof kJobs / sizeof kJobs[0];
  return kJobs;
}
