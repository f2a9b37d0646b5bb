// The job engine, run end to end the way the scheduler runs it, against plain reference
// implementations written here without any of the engine's code.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/codec.hpp"
#include "server/engine/blas_threads.hpp"
#include "server/engine/hash_key.hpp"
#include "server/engine/input_view.hpp"
#include "server/engine/job_kind.hpp"
#include "server/engine/key_table.hpp"
#include "server/engine/keyed_hash.hpp"
#include "server/engine/siphash.hpp"
#include "server/engine/text_split.hpp"
#include "server/engine/tokenizer.hpp"
#include "server/engine/word_counter.hpp"

// Readable failure messages for the result types.
namespace mrd::protocol {
void PrintTo(const Matrix& m, std::ostream* os) {
  *os << m.rows << "x" << m.cols << " {";
  for (const double v : m.values) {
    *os << " " << v;
  }
  *os << " }";
}
void PrintTo(const Counts& counts, std::ostream* os) {
  for (const auto& e : counts.entries) {
    *os << "\n  '" << e.key << "' " << e.count;
  }
}
void PrintTo(const Postings& postings, std::ostream* os) {
  for (const auto& e : postings.entries) {
    *os << "\n  '" << e.word << "':";
    for (const auto& name : e.documents) {
      *os << " '" << name << "'";
    }
  }
}
}  // namespace mrd::protocol

namespace mrd::engine {
namespace {

using protocol::Counts;
using protocol::Document;
using protocol::Documents;
using protocol::JobInput;
using protocol::JobResult;
using protocol::KeyCount;
using protocol::Matrix;
using protocol::MatrixPair;
using protocol::Numbers;
using protocol::Postings;
using protocol::Statistics;

constexpr std::uint64_t kHugeChunk = std::numeric_limits<std::uint64_t>::max();
const std::vector<std::uint64_t> kChunkSizes = {1, 7, 64, 4096, kHugeChunk};
const std::vector<std::uint32_t> kPartitionCounts = {1, 2, 5};

// --- the driver: exactly what the scheduler does ---

/// Validates, splits, maps every chunk, groups piece p of every map output into partition p,
/// reduces every partition and assembles.
JobResult run_job(const JobKind& kind, const JobInput& owned, std::uint64_t chunk_bytes,
                  std::uint32_t partitions) {
  const InputView input = view_of(owned);
  kind.validate(input);
  const auto chunks = kind.split(input, chunk_bytes);
  EXPECT_GE(chunks.size(), 1u);
  std::vector<std::vector<std::string>> grouped(partitions);
  std::vector<std::string> blocks;  // jobs without reduce: partition 0 of each map output
  for (const auto& chunk : chunks) {
    auto pieces = kind.map(chunk, partitions);
    if (!kind.has_reduce()) {
      EXPECT_EQ(pieces.size(), 1u);
      blocks.push_back(std::move(pieces.at(0)));
      continue;
    }
    EXPECT_EQ(pieces.size(), partitions);
    for (std::uint32_t p = 0; p < partitions; ++p) {
      grouped[p].push_back(std::move(pieces.at(p)));
    }
  }
  if (!kind.has_reduce()) return kind.assemble(std::move(blocks));
  std::vector<std::string> reduced;
  for (const auto& pieces : grouped) {
    reduced.push_back(kind.reduce(pieces));
  }
  return kind.assemble(std::move(reduced));
}

const JobKind& job(std::string_view mapper, std::string_view reducer) {
  const JobKind* kind = find_job_kind(mapper, reducer);
  if (kind == nullptr) throw std::logic_error("no such job in the catalog");
  return *kind;
}

/// Runs the job with every chunk size and partition count and expects `expected` each time.
template <class Result>
void expect_every_way(const JobKind& kind, const JobInput& input, const Result& expected) {
  for (const auto chunk_bytes : kChunkSizes) {
    for (const auto partitions : kPartitionCounts) {
      SCOPED_TRACE("chunk_bytes " + std::to_string(chunk_bytes) + ", partitions " +
                   std::to_string(partitions));
      const JobResult result = run_job(kind, input, chunk_bytes, partitions);
      ASSERT_TRUE(std::holds_alternative<Result>(result));
      EXPECT_EQ(std::get<Result>(result), expected);
    }
  }
}

// --- reference implementations, deliberately plain ---

bool reference_is_word_byte(unsigned char b) {
  return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b >= 0x80;
}

std::vector<std::string> reference_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (reference_is_word_byte(b)) {
      word += (b >= 'A' && b <= 'Z') ? static_cast<char>(b - 'A' + 'a') : c;
    } else if (!word.empty()) {
      words.push_back(word);
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(word);
  return words;
}

/// std::map orders keys by bytes; a stable sort by count keeps that order among ties.
Counts to_counts(const std::map<std::string, std::uint64_t>& counted) {
  Counts counts;
  for (const auto& [key, count] : counted) {
    counts.entries.push_back({key, count});
  }
  std::stable_sort(counts.entries.begin(), counts.entries.end(),
                   [](const KeyCount& a, const KeyCount& b) { return a.count > b.count; });
  return counts;
}

Counts reference_word_counts(const Documents& docs) {
  std::map<std::string, std::uint64_t> counted;
  for (const auto& d : docs.documents) {
    for (const auto& w : reference_words(d.text)) {
      ++counted[w];
    }
  }
  return to_counts(counted);
}

Counts reference_bigram_counts(const Documents& docs) {
  std::map<std::string, std::uint64_t> counted;
  for (const auto& d : docs.documents) {
    const auto words = reference_words(d.text);
    for (std::size_t i = 1; i < words.size(); ++i) {
      ++counted[words[i - 1] + " " + words[i]];
    }
  }
  return to_counts(counted);
}

Postings reference_index(const Documents& docs) {
  std::map<std::string, std::set<std::string>> where;
  for (const auto& d : docs.documents) {
    for (const auto& w : reference_words(d.text)) {
      where[w].insert(d.name);
    }
  }
  Postings postings;
  for (const auto& [word, names] : where) {
    postings.entries.push_back({word, std::vector<std::string>(names.begin(), names.end())});
  }
  return postings;
}

Statistics reference_statistics(std::vector<double> values) {
  Statistics s;
  s.count = values.size();
  if (values.empty()) {
    s.mean = s.median = s.mode = s.min = s.max = std::numeric_limits<double>::quiet_NaN();
    return s;
  }
  std::sort(values.begin(), values.end());
  long double sum = 0;
  for (const double v : values) {
    sum += v;
  }
  s.mean = static_cast<double>(sum / values.size());
  const std::size_t n = values.size();
  s.median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] / 2 + values[n / 2] / 2);
  std::size_t best_run = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && values[j] == values[i]) {
      ++j;
    }
    if (j - i > best_run) {
      best_run = j - i;
      s.mode = values[i];
    }
    i = j;
  }
  s.min = values.front();
  s.max = values.back();
  return s;
}

Matrix reference_multiply(const Matrix& a, const Matrix& b) {
  Matrix c{a.rows, b.cols, std::vector<double>(a.rows * b.cols, 0.0)};
  for (std::uint64_t i = 0; i < a.rows; ++i) {
    for (std::uint64_t j = 0; j < b.cols; ++j) {
      double sum = 0;
      for (std::uint64_t k = 0; k < a.cols; ++k) {
        sum += a.values[i * a.cols + k] * b.values[k * b.cols + j];
      }
      c.values[i * b.cols + j] = sum;
    }
  }
  return c;
}

// --- inputs ---

Documents docs(std::initializer_list<std::pair<const char*, std::string>> named_texts) {
  Documents d;
  for (const auto& [name, text] : named_texts) {
    d.documents.push_back(Document{name, text});
  }
  return d;
}

/// Random text over a small vocabulary (so words repeat) with every kind of separator, upper case,
/// digits and UTF-8.
std::string random_text(std::mt19937& rng, std::size_t words) {
  static const std::vector<std::string> vocabulary = [] {
    std::istringstream in(
        "the The THE cat sat on mat 42 x1y2 caf\xc3\xa9 \xc3\x89T\xc3\x89 na\xc3\xafve a I zebra "
        "Zebra 0 verylongwordthatkeepsgoingandgoing");
    std::vector<std::string> words;
    for (std::string word; in >> word;) {
      words.push_back(word);
    }
    return words;
  }();
  static const std::vector<std::string> separators = {
      " ", "  ", "\n", "\t", ", ", ". ", "--", "'", "\"", std::string(1, '\0'), "\x7f", " (", ") "};
  std::uniform_int_distribution<std::size_t> word(0, vocabulary.size() - 1);
  std::uniform_int_distribution<std::size_t> separator(0, separators.size() - 1);
  std::string text = separator(rng) % 3 == 0 ? separators[separator(rng)] : "";
  for (std::size_t i = 0; i < words; ++i) {
    text += vocabulary[word(rng)] + separators[separator(rng)];
  }
  return text;
}

// --- tokenizer and splitting ---

/// The words for_each_word finds, as strings.
std::vector<std::string> engine_words(std::string_view text) {
  std::string scratch;
  std::vector<std::string> words;
  for_each_word(text, scratch, [&](std::string_view w) { words.emplace_back(w); });
  return words;
}

using Words = std::vector<std::string>;

TEST(Tokenizer, LowerCasesAsciiKeepsHighBytesAndSeparatesOnTheRest) {
  EXPECT_EQ(engine_words("Hello, World!"), (Words{"hello", "world"}));
  EXPECT_EQ(engine_words(""), Words{});
  EXPECT_EQ(engine_words(" .,;!? \t\n"), Words{});
  EXPECT_EQ(engine_words("A1b2_C3"), (Words{"a1b2", "c3"}));
  EXPECT_EQ(engine_words("\xc3\x89T\xc3\x89 caf\xc3\xa9"),
            (Words{"\xc3\x89t\xc3\x89", "caf\xc3\xa9"}));
  EXPECT_EQ(engine_words(std::string("a\0b", 3)), (Words{"a", "b"}));
  EXPECT_EQ(engine_words("@[`{ Z"), Words{"z"});  // the bytes either side of A-Z and a-z separate
}

TEST(Tokenizer, ConsecutiveWordsAreOneViewWithOneSpace) {
  std::string scratch;
  std::string_view previous;
  std::vector<std::string> pairs;
  for_each_word("One,  two!!three", scratch, [&](std::string_view word) {
    if (!previous.empty()) {
      pairs.emplace_back(previous.data(),
                         static_cast<std::size_t>(word.data() + word.size() - previous.data()));
    }
    previous = word;
  });
  EXPECT_EQ(pairs, (Words{"one two", "two three"}));
}

TEST(Tokenizer, AgreesWithReferenceOnRandomText) {
  std::mt19937 rng(1);
  for (int round = 0; round < 20; ++round) {
    const std::string text = random_text(rng, 200);
    EXPECT_EQ(engine_words(text), reference_words(text));
  }
}

/// How often each word of `texts` occurs, counted by the word-count kernel (one counter for all).
std::map<std::string, std::uint64_t> kernel_counts(const std::vector<std::string>& texts) {
  WordCounter::Counts counts;
  WordCounter counter(counts);
  for (const auto& text : texts) {
    counter.add(text);
  }
  std::map<std::string, std::uint64_t> counted;
  counts.for_each([&](const WordCounter::Counts::Entry& entry) {
    EXPECT_EQ(entry.hash, keyed_hash(entry.key()));
    counted.emplace(entry.key(), entry.value);
  });
  EXPECT_EQ(counted.size(), counts.size());
  return counted;
}

std::map<std::string, std::uint64_t> reference_counts(const std::vector<std::string>& texts) {
  std::map<std::string, std::uint64_t> counted;
  for (const auto& text : texts) {
    for (const auto& word : reference_words(text)) {
      ++counted[word];
    }
  }
  return counted;
}

TEST(Tokenizer, WordCounterAgreesWithReference) {
  std::mt19937 rng(3);
  std::vector<std::string> texts;
  for (int round = 0; round < 20; ++round) {
    texts.push_back(random_text(rng, 2000));  // many batches, and the scratch buffer refilled
  }
  EXPECT_EQ(kernel_counts(texts), reference_counts(texts));
  // Edge cases: nothing, no separator at all, a word at the very end, words longer than the
  // scratch buffer, keys that differ only past their 8th byte.
  const std::string huge(200000, 'Q');
  const std::vector<std::vector<std::string>> cases = {
      {},
      {""},
      {"Word"},
      {"a b", "B A", "..."},
      {huge, "x " + huge + " y", huge + "q"},
      {"abcdefgh abcdefghi abcdefghj ABCDEFGH abcdefg"},
  };
  for (const auto& texts : cases) {
    EXPECT_EQ(kernel_counts(texts), reference_counts(texts));
  }
}

TEST(Tokenizer, ZeroPaddedFoldingMatchesTheByteRule) {
  // Every word byte at every position of words of 1 to 9 bytes, with text after them (the
  // 8-byte step) and at the very end of the text (the byte loop).
  for (int b = 0; b < 256; ++b) {
    if (!is_word_byte(static_cast<char>(b))) continue;
    for (std::size_t size = 1; size <= 9; ++size) {
      for (std::size_t at = 0; at < size; ++at) {
        std::string word(size, 'Q');
        word[at] = static_cast<char>(b);
        std::string expected = word;
        for (auto& byte : expected) {
          byte = static_cast<char>(kWordByte[static_cast<unsigned char>(byte)]);
        }
        expected += std::string(8, '\0');
        for (const std::string& text : {word + " TAIL TEXT", word}) {
          std::string out(size + 8, '\x55');
          fold_word_zero_padded(std::string_view(text).substr(0, size), text.data() + text.size(),
                                out.data());
          EXPECT_EQ(out, expected) << b << " " << size << " " << at;
        }
      }
    }
  }
}

TEST(Tokenizer, WordSpansAreTheUnfoldedWords) {
  std::vector<std::string> spans;
  for_each_word_span(
      "Ab, cD\x80"
      "e!9",
      [&](std::string_view s) { spans.emplace_back(s); });
  EXPECT_EQ(spans, (Words{"Ab",
                          "cD\x80"
                          "e",
                          "9"}));
}

TEST(TextSplit, CutsOnlyAtSeparatorsAndLosesNothing) {
  std::mt19937 rng(2);
  const std::string text = random_text(rng, 500);
  for (const auto chunk_bytes : {1ull, 2ull, 7ull, 64ull, 1000ull, 1ull << 40}) {
    const auto pieces = cut_text(text, chunk_bytes, Overlap::kNone);
    std::string joined;
    for (const auto piece : pieces) {
      ASSERT_FALSE(piece.empty());
      joined += piece;
      if (joined.size() < text.size()) {
        // The next piece starts with a separator, so the word before the cut is whole.
        EXPECT_FALSE(is_word_byte(text[joined.size()])) << "cut inside a word at " << joined.size();
      }
    }
    EXPECT_EQ(joined, text);
  }
}

TEST(TextSplit, LastWordOverlapRepeatsExactlyThePreviousLastWord) {
  const std::string text = "alpha beta, gamma delta epsilon";
  for (std::uint64_t chunk_bytes = 1; chunk_bytes <= text.size() + 1; ++chunk_bytes) {
    const auto pieces = cut_text(text, chunk_bytes, Overlap::kLastWord);
    ASSERT_GE(pieces.size(), 1u);
    EXPECT_EQ(pieces.front().data(), text.data());
    EXPECT_EQ(pieces.back().data() + pieces.back().size(), text.data() + text.size());
    for (std::size_t i = 1; i < pieces.size(); ++i) {
      const auto before = reference_words(std::string(pieces[i - 1]));
      const auto after = reference_words(std::string(pieces[i]));
      ASSERT_GE(before.size(), 2u) << "a piece must hold two words to make progress";
      EXPECT_EQ(before.back(), after.front());
    }
  }
}

TEST(TextSplit, PacksSmallDocumentsAndAlwaysMakesAChunk) {
  EXPECT_EQ(split_documents(view_of(Documents{}), 10, Overlap::kNone).size(), 1u);
  EXPECT_EQ(split_documents(view_of(docs({{"", ""}})), 1, Overlap::kNone).size(), 1u);

  Documents many;
  for (int i = 0; i < 10; ++i) {
    many.documents.push_back({"d" + std::to_string(i), "1234567"});
  }
  // Each document is 9 bytes (name and text), so three fit in 32 bytes.
  const auto chunks = split_documents(view_of(many), 32, Overlap::kNone);
  EXPECT_EQ(chunks.size(), 4u);
  std::vector<Document> all;
  for (const auto& chunk : chunks) {
    const auto d = std::get<Documents>(to_owned(chunk)).documents;
    EXPECT_LE(d.size(), 3u);
    all.insert(all.end(), d.begin(), d.end());
  }
  EXPECT_EQ(all, many.documents);
}

TEST(TextSplit, BigDocumentGetsSeveralChunksThatKeepItsName) {
  const Documents input =
      docs({{"small", "a b"}, {"big", "one two three four five"}, {"tail", "z"}});
  const auto chunks = split_documents(view_of(input), 8, Overlap::kNone);
  std::string big;
  for (const auto& chunk : chunks) {
    for (const auto& d : std::get<DocumentsView>(chunk).documents) {
      if (d.name == "big") big += d.text;
    }
  }
  EXPECT_EQ(big, "one two three four five");
  EXPECT_GE(chunks.size(), 3u);
}

TEST(TextSplit, CuttingAsTheBytesArriveGivesTheChunksOfTheWholeInput) {
  // Small and big documents, texts arriving a few bytes at a time: the chunks are those of the
  // whole input, in order, and each is cut only once every byte it holds has arrived.
  std::mt19937 rng(5);
  for (int round = 0; round < 40; ++round) {
    Documents input;
    for (int d = 0, n = 1 + static_cast<int>(rng() % 6); d < n; ++d) {
      const auto words = rng() % 3 == 0 ? rng() % 400 : rng() % 20;
      input.documents.push_back({"d" + std::to_string(d), random_text(rng, words)});
    }
    const auto whole = view_of(input);
    for (const auto overlap : {Overlap::kNone, Overlap::kLastWord}) {
      for (const std::uint64_t chunk_bytes : {1ull, 9ull, 64ull, 300ull, 1ull << 20}) {
        const auto expected = split_documents(whole, chunk_bytes, overlap);
        std::vector<InputView> cut;
        DocumentSplitter splitter(chunk_bytes, overlap);
        for (const auto& document : whole.documents) {
          splitter.start_document(document, cut);
          for (std::uint64_t in = 0;;) {
            const auto before = cut.size();
            splitter.text_arrived(in, cut);
            for (auto i = before; i < cut.size(); ++i) {
              for (const auto& piece : std::get<DocumentsView>(cut[i]).documents) {
                if (piece.text.data() >= document.text.data() &&
                    piece.text.data() <= document.text.data() + document.text.size()) {
                  EXPECT_LE(piece.text.data() + piece.text.size(), document.text.data() + in)
                      << "a chunk was cut before its bytes arrived";
                }
              }
            }
            if (in == document.text.size()) break;
            in = std::min<std::uint64_t>(document.text.size(), in + 1 + rng() % 40);
          }
        }
        splitter.finish(cut);
        ASSERT_EQ(cut.size(), expected.size()) << "chunk_bytes " << chunk_bytes;
        for (std::size_t i = 0; i < cut.size(); ++i) {
          const auto& got = std::get<DocumentsView>(cut[i]).documents;
          const auto& want = std::get<DocumentsView>(expected[i]).documents;
          ASSERT_EQ(got.size(), want.size()) << "chunk " << i;
          for (std::size_t d = 0; d < got.size(); ++d) {
            EXPECT_EQ(got[d].name.data(), want[d].name.data());
            EXPECT_EQ(got[d].text.data(), want[d].text.data());
            EXPECT_EQ(got[d].text.size(), want[d].text.size());
          }
        }
      }
    }
  }
}

// --- words + sum ---

TEST(WordCount, OrdersByCountThenKeyBytes) {
  // Among equal counts keys compare as unsigned bytes: "a" (0x61) before "\xc3\xa9" (e acute).
  const Counts expected{{{"c", 3}, {"b", 2}, {"x", 2}, {"a", 1}, {"\xc3\xa9", 1}}};
  expect_every_way(job("words", "sum"), docs({{"d", "B \xc3\xa9 C c, X! c x b a"}}), expected);
}

TEST(WordCount, EmptyInputs) {
  const Counts nothing;
  expect_every_way(job("words", "sum"), Documents{}, nothing);
  expect_every_way(job("words", "sum"), docs({{"empty", ""}, {"also", ""}}), nothing);
  expect_every_way(job("words", "sum"), docs({{"punctuation", " ,.;:!?-- \n\t()[]{}<>"}}), nothing);
}

TEST(WordCount, CaseDigitsHighBytesAndPunctuation) {
  // "\xe2\x82\xac" is the euro sign; the 5 after it is a separate literal so that it is not read
  // as one more hex digit.
  const std::string euro5 = std::string("\xe2\x82\xac") + "5";
  const Documents input =
      docs({{"a", "Hello HELLO hello, h3llo 2024 caf\xc3\xa9 CAF\xc3\xa9 " + euro5},
            {"b", "don't stop--believing; e-mail me@example.com"}});
  const Counts expected = reference_word_counts(input);
  EXPECT_EQ(expected.entries.front(), (KeyCount{"hello", 3}));
  expect_every_way(job("words", "sum"), input, expected);
}

TEST(WordCount, SingleHugeDocumentSplitManyTimes) {
  std::mt19937 rng(3);
  const Documents input = docs({{"huge", random_text(rng, 3000)}});
  expect_every_way(job("words", "sum"), input, reference_word_counts(input));
}

TEST(WordCount, ManyDocumentsOfAllSizes) {
  std::mt19937 rng(4);
  Documents input;
  for (int i = 0; i < 40; ++i) {
    input.documents.push_back(
        {"doc" + std::to_string(i), random_text(rng, static_cast<std::size_t>(i * i % 97))});
  }
  expect_every_way(job("words", "sum"), input, reference_word_counts(input));
}

TEST(WordCount, WordSpanningEveryPossibleCut) {
  // One long word among short ones: whatever the chunk size, it must be counted whole, once.
  const Documents input = docs({{"d", "a supercalifragilistic b supercalifragilistic c"}});
  for (std::uint64_t chunk_bytes = 1; chunk_bytes < 50; ++chunk_bytes) {
    const auto result = std::get<Counts>(run_job(job("words", "sum"), input, chunk_bytes, 2));
    EXPECT_EQ(result, reference_word_counts(input)) << "chunk_bytes " << chunk_bytes;
  }
}

TEST(WordCount, KeysSpreadOverPartitions) {
  Documents input;
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text.append("w").append(std::to_string(i)).append(" ");
  }
  input.documents.push_back({"d", text});
  const auto pieces = job("words", "sum").map(view_of(input), 5);
  ASSERT_EQ(pieces.size(), 5u);
  for (const auto& piece : pieces) {
    EXPECT_GT(piece.size(), 8u) << "an empty partition";
  }
}

// --- bigrams + sum ---

TEST(BigramCount, CountsConsecutivePairsWithinDocumentsOnly) {
  const Documents input =
      docs({{"one", "The cat, the CAT; the cat"}, {"two", "sat on"}, {"three", "mat"}});
  const Counts expected{{{"the cat", 3}, {"cat the", 2}, {"sat on", 1}}};
  EXPECT_EQ(reference_bigram_counts(input), expected);
  expect_every_way(job("bigrams", "sum"), input, expected);
}

TEST(BigramCount, PairAcrossEveryChunkCutCountedOnce) {
  const Documents input = docs({{"d", "alpha beta, gamma delta epsilon zeta"}});
  const Counts expected{{{"alpha beta", 1},
                         {"beta gamma", 1},
                         {"delta epsilon", 1},
                         {"epsilon zeta", 1},
                         {"gamma delta", 1}}};
  for (std::uint64_t chunk_bytes = 1; chunk_bytes < 45; ++chunk_bytes) {
    for (const auto partitions : kPartitionCounts) {
      const auto result =
          std::get<Counts>(run_job(job("bigrams", "sum"), input, chunk_bytes, partitions));
      EXPECT_EQ(result, expected) << "chunk_bytes " << chunk_bytes;
    }
  }
}

TEST(BigramCount, NeverAcrossDocumentsEvenWhenPacked) {
  const Documents input = docs({{"a", "x y"}, {"b", "z"}, {"c", "w x"}, {"d", ""}, {"e", "y"}});
  expect_every_way(job("bigrams", "sum"), input, Counts{{{"w x", 1}, {"x y", 1}}});
}

TEST(BigramCount, EmptyAndOneWordInputs) {
  expect_every_way(job("bigrams", "sum"), Documents{}, Counts{});
  expect_every_way(job("bigrams", "sum"), docs({{"a", "lonely"}, {"b", "!!"}, {"c", ""}}),
                   Counts{});
}

TEST(BigramCount, RandomDocumentsAgreeWithReference) {
  std::mt19937 rng(5);
  Documents input;
  input.documents.push_back({"huge", random_text(rng, 2000)});
  for (int i = 0; i < 20; ++i) {
    input.documents.push_back({"small" + std::to_string(i), random_text(rng, 5)});
  }
  expect_every_way(job("bigrams", "sum"), input, reference_bigram_counts(input));
}

// --- index + postings ---

TEST(InvertedIndex, WordsInSeveralDocumentsAndRepeatedInOne) {
  const Documents input = docs({{"zeta", "apple Banana apple APPLE"},
                                {"alpha", "banana cherry"},
                                {"mid", "apple, apple!"},
                                {"empty", ""}});
  const Postings expected{
      {{"apple", {"mid", "zeta"}}, {"banana", {"alpha", "zeta"}}, {"cherry", {"alpha"}}}};
  EXPECT_EQ(reference_index(input), expected);
  expect_every_way(job("index", "postings"), input, expected);
}

TEST(InvertedIndex, SameNameTwiceAndBigDocumentsAreListedOnce) {
  std::mt19937 rng(6);
  Documents input;
  input.documents.push_back({"big", random_text(rng, 1500)});
  input.documents.push_back({"dup", "cat \xc3\xa9t\xc3\xa9"});
  input.documents.push_back({"dup", "cat zebra"});
  input.documents.push_back({"other", random_text(rng, 100)});
  expect_every_way(job("index", "postings"), input, reference_index(input));
}

TEST(InvertedIndex, EmptyInputs) {
  expect_every_way(job("index", "postings"), Documents{}, Postings{});
  expect_every_way(job("index", "postings"), docs({{"a", ""}, {"b", "..."}}), Postings{});
}

// --- numbers + stats ---

/// Statistics are equal if every field is, NaN matching NaN; the mean may differ in its last bit.
void expect_statistics(const Statistics& actual, const Statistics& expected) {
  EXPECT_EQ(actual.count, expected.count);
  const auto same = [](double a, double e, const char* what) {
    if (std::isnan(e)) {
      EXPECT_TRUE(std::isnan(a)) << what << " is " << a;
    } else {
      EXPECT_EQ(a, e) << what;
    }
  };
  if (std::isfinite(expected.mean)) {
    EXPECT_NEAR(actual.mean, expected.mean, 1e-12 * std::max(1.0, std::abs(expected.mean)));
  } else {
    same(actual.mean, expected.mean, "mean");
  }
  same(actual.median, expected.median, "median");
  same(actual.mode, expected.mode, "mode");
  same(actual.min, expected.min, "min");
  same(actual.max, expected.max, "max");
}

void expect_statistics_every_way(const std::vector<double>& values, const Statistics& expected) {
  for (const auto chunk_bytes : kChunkSizes) {
    for (const auto partitions : kPartitionCounts) {
      SCOPED_TRACE("chunk_bytes " + std::to_string(chunk_bytes) + ", partitions " +
                   std::to_string(partitions));
      const auto result =
          run_job(job("numbers", "stats"), Numbers{values}, chunk_bytes, partitions);
      expect_statistics(std::get<Statistics>(result), expected);
    }
  }
}

TEST(Statistics, OddCount) {
  const std::vector<double> values = {5, 1, 3, 3, 9};
  expect_statistics_every_way(values, Statistics{5, 4.2, 3, 3, 1, 9});
}

TEST(Statistics, EvenCountAveragesTheMiddleTwo) {
  const std::vector<double> values = {4, 1, 2, 10};
  expect_statistics_every_way(values, Statistics{4, 4.25, 3, 1, 1, 10});
}

TEST(Statistics, ModeTieGoesToTheSmallestValue) {
  const std::vector<double> values = {7, 2, 7, 2, -1, 9, 9};
  const Statistics expected{7, 35.0 / 7, 7, 2, -1, 9};
  expect_statistics_every_way(values, expected);
  EXPECT_EQ(reference_statistics(values).mode, 2);
}

TEST(Statistics, NegativeZeroIsZero) {
  const std::vector<double> values = {-0.0, 0.0, -0.0, 1.0, 1.0};
  expect_statistics_every_way(values, Statistics{5, 0.4, 0.0, 0.0, 0.0, 1.0});
  const auto result =
      std::get<Statistics>(run_job(job("numbers", "stats"), Numbers{{-0.0}}, 64, 2));
  EXPECT_FALSE(std::signbit(result.min));
  EXPECT_FALSE(std::signbit(result.mode));
}

TEST(Statistics, InfinitiesAreValues) {
  const double inf = std::numeric_limits<double>::infinity();
  expect_statistics_every_way({1, inf, 2, inf}, Statistics{4, inf, inf, inf, 1, inf});
  expect_statistics_every_way({-inf, 0, 3}, Statistics{3, -inf, 0, -inf, -inf, 3});
  // +inf and -inf have no mean, and no midpoint.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_statistics_every_way({-inf, inf}, Statistics{2, nan, nan, -inf, -inf, inf});
}

TEST(Statistics, EmptyInputIsAllNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_statistics_every_way({}, Statistics{0, nan, nan, nan, nan, nan});
}

TEST(Statistics, MeanDoesNotLoseSmallValuesNextToLargeOnes) {
  // Summed in double, 1e16 + 1 rounds back to 1e16 and the mean comes out 0.
  expect_statistics_every_way({1e16, 1, -1e16, 1}, Statistics{4, 0.5, 1, 1, -1e16, 1e16});
  // Summed in double, 1e308 + 1e308 overflows to infinity.
  expect_statistics_every_way({1e308, 1e308}, Statistics{2, 1e308, 1e308, 1e308, 1e308, 1e308});
}

TEST(Statistics, RandomValuesAgreeWithReference) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-20, 20);
  std::normal_distribution<double> wide(0, 1e6);
  std::vector<double> values;
  for (int i = 0; i < 3000; ++i) {
    values.push_back(i % 3 == 0 ? wide(rng) : small(rng) * 0.5);
  }
  expect_statistics_every_way(values, reference_statistics(values));
  values.pop_back();  // and with the other parity
  expect_statistics_every_way(values, reference_statistics(values));
}

TEST(Statistics, NaNIsRejectedWithItsPosition) {
  const auto& kind = job("numbers", "stats");
  try {
    kind.validate(view_of(Numbers{{1, 2, std::nan(""), 4}}));
    FAIL() << "NaN accepted";
  } catch (const JobError& e) {
    EXPECT_STREQ(e.what(), "input contains NaN at position 2");
  }
  EXPECT_THROW(kind.map(view_of(Numbers{{std::nan("")}}), 1), JobError);
  EXPECT_NO_THROW(kind.validate(view_of(Numbers{{std::numeric_limits<double>::infinity()}})));
}

TEST(Statistics, SplitGivesChunkBytesOverEightNumbersPerChunk) {
  const auto& kind = job("numbers", "stats");
  EXPECT_EQ(kind.split(view_of(Numbers{}), 64).size(), 1u);
  EXPECT_EQ(kind.split(view_of(Numbers{{1, 2, 3}}), 1).size(), 3u);
  EXPECT_EQ(kind.split(view_of(Numbers{std::vector<double>(100, 1.0)}), 80).size(), 10u);
  EXPECT_EQ(kind.split(view_of(Numbers{std::vector<double>(101, 1.0)}), 80).size(), 11u);
}

// --- matmul + rows ---

Matrix matrix(std::uint64_t rows, std::uint64_t cols, std::vector<double> values) {
  return Matrix{rows, cols, std::move(values)};
}

/// A matrix of small integers, so that any order of summation gives the exact same product.
Matrix random_matrix(std::mt19937& rng, std::uint64_t rows, std::uint64_t cols) {
  std::uniform_int_distribution<int> small(-9, 9);
  Matrix m{rows, cols, {}};
  for (std::uint64_t i = 0; i < rows * cols; ++i) {
    m.values.push_back(small(rng));
  }
  return m;
}

TEST(MatrixMultiply, OneByOne) {
  expect_every_way(job("matmul", "rows"), MatrixPair{matrix(1, 1, {3}), matrix(1, 1, {-2.5})},
                   matrix(1, 1, {-7.5}));
}

TEST(MatrixMultiply, ThreeByFourTimesFourByTwo) {
  const Matrix a = matrix(3, 4, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  const Matrix b = matrix(4, 2, {1, 0, 0, 1, 1, 1, 2, -1});
  const Matrix expected = matrix(3, 2, {12, 1, 28, 5, 44, 9});
  EXPECT_EQ(reference_multiply(a, b), expected);
  expect_every_way(job("matmul", "rows"), MatrixPair{a, b}, expected);
}

TEST(MatrixMultiply, RandomShapesAgreeWithReference) {
  std::mt19937 rng(8);
  for (const auto [m, k, n] :
       {std::array<std::uint64_t, 3>{37, 23, 11}, {1, 50, 1}, {50, 1, 50}, {7, 7, 7}}) {
    const Matrix a = random_matrix(rng, m, k);
    const Matrix b = random_matrix(rng, k, n);
    expect_every_way(job("matmul", "rows"), MatrixPair{a, b}, reference_multiply(a, b));
  }
}

TEST(MatrixMultiply, LargerProductWithOneOrTwoBlasThreads) {
  std::mt19937 rng(10);
  const Matrix a = random_matrix(rng, 200, 150);
  const Matrix b = random_matrix(rng, 150, 120);
  const Matrix expected = reference_multiply(a, b);
  for (const int threads : {1, 2}) {
    set_blas_threads(threads);
    for (const auto chunk_bytes : {std::uint64_t{4096}, kHugeChunk}) {
      EXPECT_EQ(std::get<Matrix>(run_job(job("matmul", "rows"), MatrixPair{a, b}, chunk_bytes, 1)),
                expected);
    }
  }
  set_blas_threads(1);
}

TEST(MatrixMultiply, EmptyShapes) {
  const auto& kind = job("matmul", "rows");
  expect_every_way(kind, MatrixPair{matrix(0, 3, {}), matrix(3, 2, {1, 2, 3, 4, 5, 6})},
                   matrix(0, 2, {}));
  expect_every_way(kind, MatrixPair{matrix(3, 0, {}), matrix(0, 2, {})},
                   matrix(3, 2, {0, 0, 0, 0, 0, 0}));
  expect_every_way(kind, MatrixPair{matrix(2, 3, {1, 2, 3, 4, 5, 6}), matrix(3, 0, {})},
                   matrix(2, 0, {}));
  expect_every_way(kind, MatrixPair{}, matrix(0, 0, {}));
}

TEST(MatrixMultiply, SplitsRowsByChunkBytes) {
  const auto& kind = job("matmul", "rows");
  std::mt19937 rng(9);
  const MatrixPair pair{random_matrix(rng, 10, 4), random_matrix(rng, 4, 3)};
  EXPECT_EQ(kind.split(view_of(pair), 1).size(), 10u);  // at least one row per chunk
  EXPECT_EQ(kind.split(view_of(pair), 64).size(), 5u);  // two 32-byte rows per chunk
  EXPECT_EQ(kind.split(view_of(pair), 1000).size(), 1u);
  for (const auto& chunk :
       kind.split(view_of(pair), 96)) {  // three rows per chunk, B whole in each
    EXPECT_LE(std::get<MatrixPairView>(chunk).a.rows, 3u);
    EXPECT_EQ(std::get<MatrixPair>(to_owned(chunk)).b, pair.b);
  }
  EXPECT_EQ(kind.split(view_of(MatrixPair{matrix(5, 0, {}), matrix(0, 1, {})}), 1).size(), 1u);
}

TEST(MatrixMultiply, MismatchedShapesAreRejected) {
  const auto& kind = job("matmul", "rows");
  try {
    kind.validate(view_of(
        MatrixPair{matrix(3, 4, std::vector<double>(12)), matrix(5, 2, std::vector<double>(10))}));
    FAIL() << "mismatch accepted";
  } catch (const JobError& e) {
    EXPECT_STREQ(e.what(), "cannot multiply 3x4 by 5x2: A has 4 columns but B has 5 rows");
  }
  EXPECT_THROW(kind.validate(view_of(MatrixPair{matrix(2, 2, {1, 2, 3}), matrix(2, 1, {1, 2})})),
               JobError);
  EXPECT_THROW(kind.map(view_of(MatrixPair{matrix(1, 2, {1, 2}), matrix(3, 1, {1, 2, 3})}), 1),
               JobError);
  EXPECT_FALSE(kind.has_reduce());
}

// --- inputs and chunks are views ---

/// True if `part` lies inside `whole`'s bytes (so it views them rather than a copy).
template <class T>
bool lies_within(std::span<const T> part, std::span<const T> whole) {
  const std::less_equal<const T*> at_or_before;
  return at_or_before(whole.data(), part.data()) &&
         at_or_before(part.data() + part.size(), whole.data() + whole.size());
}
bool lies_within(std::string_view part, std::string_view whole) {
  return lies_within(std::span<const char>(part), std::span<const char>(whole));
}

TEST(InputView, ViewsPointAtTheOwnersBytesAndCopyBackEqual) {
  const Documents documents = docs({{"a", "one two"}, {"b", ""}, {"a long name, past SSO", "x"}});
  const DocumentsView text = view_of(documents);
  ASSERT_EQ(text.documents.size(), documents.documents.size());
  for (std::size_t d = 0; d < documents.documents.size(); ++d) {
    EXPECT_EQ(text.documents[d].name.data(), documents.documents[d].name.data());
    EXPECT_EQ(text.documents[d].text.data(), documents.documents[d].text.data());
    EXPECT_EQ(text.documents[d].text.size(), documents.documents[d].text.size());
  }
  const Numbers numbers{{1, 2, 3}};
  EXPECT_EQ(view_of(numbers).values.data(), numbers.values.data());
  EXPECT_EQ(view_of(numbers).values.size(), 3u);
  const MatrixPair pair{matrix(2, 1, {1, 2}), matrix(1, 3, {3, 4, 5})};
  const MatrixPairView matrices = view_of(pair);
  EXPECT_EQ(matrices.a.values.data(), pair.a.values.data());
  EXPECT_EQ(matrices.b.values.data(), pair.b.values.data());
  EXPECT_EQ(matrices.b.rows, 1u);
  EXPECT_EQ(matrices.b.cols, 3u);

  for (const JobInput& owned : {JobInput{documents}, JobInput{numbers}, JobInput{pair}}) {
    const InputView view = view_of(owned);
    EXPECT_EQ(view.index(), owned.index());
    EXPECT_EQ(to_owned(view), owned);
  }
}

TEST(InputView, TextChunksViewTheInputAndCoverItAsBefore) {
  std::mt19937 rng(11);
  Documents input;
  for (int i = 0; i < 12; ++i) {
    input.documents.push_back({"document " + std::to_string(i) + " of the collection",
                               random_text(rng, static_cast<std::size_t>(i * i % 50))});
  }
  input.documents.push_back({"big", random_text(rng, 400)});
  input.documents.push_back({"empty", ""});
  input.documents.push_back({"tail", "a b"});
  const InputView view = view_of(input);

  for (const auto* kind :
       {&job("words", "sum"), &job("bigrams", "sum"), &job("index", "postings")}) {
    const bool overlapping = kind->mapper() == "bigrams";
    for (const auto chunk_bytes : kChunkSizes) {
      SCOPED_TRACE(std::string(kind->mapper()) + ", chunk_bytes " + std::to_string(chunk_bytes));
      const auto chunks = kind->split(view, chunk_bytes);
      ASSERT_GE(chunks.size(), 1u);
      if (chunk_bytes == kHugeChunk) {
        EXPECT_EQ(chunks.size(), 1u);
      }

      // Each document's pieces in chunk order; documents come in input order.
      std::vector<std::vector<std::string_view>> pieces(input.documents.size());
      std::size_t at = 0;  // the document the last view belonged to
      for (const auto& chunk : chunks) {
        for (const DocumentView& d : std::get<DocumentsView>(chunk).documents) {
          while (at < input.documents.size() && d.name.data() != input.documents[at].name.data()) {
            ++at;
          }
          ASSERT_LT(at, input.documents.size()) << "a name that is not the input's own bytes";
          EXPECT_EQ(d.name.size(), input.documents[at].name.size());
          ASSERT_TRUE(lies_within(d.text, input.documents[at].text)) << "a copied text";
          pieces[at].push_back(d.text);
        }
      }
      for (std::size_t d = 0; d < input.documents.size(); ++d) {
        const std::string_view text = input.documents[d].text;
        ASSERT_FALSE(pieces[d].empty()) << "document " << d << " is in no chunk";
        EXPECT_EQ(pieces[d].front().data(), text.data());
        EXPECT_EQ(pieces[d].back().data() + pieces[d].back().size(), text.data() + text.size());
        for (std::size_t p = 1; p < pieces[d].size(); ++p) {
          const auto previous = pieces[d][p - 1];
          const auto* previous_end = previous.data() + previous.size();
          if (overlapping) {  // starts inside the previous piece, at its last word
            EXPECT_GT(pieces[d][p].data(), previous.data());
            EXPECT_LT(pieces[d][p].data(), previous_end);
          } else {  // starts where the previous piece ends
            EXPECT_EQ(pieces[d][p].data(), previous_end);
          }
        }
      }
    }
  }
}

TEST(InputView, NumberChunksAreConsecutiveSpansOfTheInput) {
  const auto& kind = job("numbers", "stats");
  std::vector<double> values(101);
  std::iota(values.begin(), values.end(), 0.0);
  const Numbers input{values};
  const std::span<const double> whole = input.values;
  for (const std::uint64_t chunk_bytes : {std::uint64_t{1}, std::uint64_t{8}, std::uint64_t{80},
                                          std::uint64_t{81}, std::uint64_t{4096}, kHugeChunk}) {
    SCOPED_TRACE("chunk_bytes " + std::to_string(chunk_bytes));
    const auto per_chunk = std::max<std::uint64_t>(1, chunk_bytes / sizeof(double));
    const double* next = whole.data();
    for (const auto& chunk : kind.split(view_of(input), chunk_bytes)) {
      const auto part = std::get<NumbersView>(chunk).values;
      EXPECT_TRUE(lies_within(part, whole)) << "a copied chunk";
      EXPECT_EQ(part.data(), next);
      EXPECT_GE(part.size(), 1u);
      EXPECT_LE(part.size(), per_chunk);
      next = part.data() + part.size();
    }
    EXPECT_EQ(next, whole.data() + whole.size());
  }
  const Numbers none;
  const auto chunks = kind.split(view_of(none), 64);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_TRUE(std::get<NumbersView>(chunks[0]).values.empty());
}

TEST(InputView, MatrixChunksAreRowBlocksOfAAndTheWholeOfB) {
  const auto& kind = job("matmul", "rows");
  std::mt19937 rng(12);
  const MatrixPair pair{random_matrix(rng, 10, 4), random_matrix(rng, 4, 3)};
  for (const std::uint64_t chunk_bytes :
       {std::uint64_t{1}, std::uint64_t{32}, std::uint64_t{64}, std::uint64_t{96}, kHugeChunk}) {
    SCOPED_TRACE("chunk_bytes " + std::to_string(chunk_bytes));
    std::uint64_t rows = 0;  // rows of A in the chunks so far
    for (const auto& chunk : kind.split(view_of(pair), chunk_bytes)) {
      const auto& [a, b] = std::get<MatrixPairView>(chunk);
      EXPECT_EQ(a.cols, 4u);
      EXPECT_GE(a.rows, 1u);
      EXPECT_EQ(a.values.size(), a.rows * a.cols);
      EXPECT_EQ(a.values.data(), pair.a.values.data() + rows * 4) << "a copied block of A";
      EXPECT_EQ(b.values.data(), pair.b.values.data()) << "a copy of B";
      EXPECT_EQ(b.values.size(), pair.b.values.size());
      EXPECT_EQ(b.rows, 4u);
      EXPECT_EQ(b.cols, 3u);
      rows += a.rows;
    }
    EXPECT_EQ(rows, 10u);
  }
}

TEST(InputView, AMatrixHoldingTooFewValuesIsRejectedBeforeItIsCut) {
  // A view's span says nothing of rows and cols: validate (and split, which calls it) checks them.
  const std::vector<double> values{1, 2, 3};
  const InputView short_a = MatrixPairView{MatrixView{2, 2, values}, MatrixView{2, 1, values}};
  EXPECT_THROW(job("matmul", "rows").validate(short_a), JobError);
  EXPECT_THROW(job("matmul", "rows").split(short_a, 8), JobError);
  EXPECT_THROW(job("matmul", "rows").map(short_a, 1), JobError);
}

// --- the catalog ---

protocol::SubmitRequest submit(std::string mapper, std::string reducer, JobInput input) {
  return protocol::SubmitRequest{std::move(mapper), std::move(reducer), {}, std::move(input)};
}

TEST(Catalog, FindsEveryBuiltInPair) {
  ASSERT_EQ(all_job_kinds().size(), 5u);
  for (const JobKind* kind : all_job_kinds()) {
    EXPECT_EQ(find_job_kind(kind->mapper(), kind->reducer()), kind);
  }
  EXPECT_EQ(job("words", "sum").input_kind(), 0u);
  EXPECT_EQ(job("bigrams", "sum").input_kind(), 0u);
  EXPECT_EQ(job("index", "postings").input_kind(), 0u);
  EXPECT_EQ(job("numbers", "stats").input_kind(), 1u);
  EXPECT_EQ(job("matmul", "rows").input_kind(), 2u);
  EXPECT_EQ(find_job_kind("words", "postings"), nullptr);
  EXPECT_EQ(find_job_kind("Words", "sum"), nullptr);
}

TEST(Catalog, CheckSubmitExplainsEveryMistake) {
  EXPECT_EQ(check_submit(submit("words", "sum", Documents{})), "");
  EXPECT_EQ(check_submit(submit("matmul", "rows", MatrixPair{})), "");
  EXPECT_EQ(check_submit(submit("numbers", "stats", Numbers{})), "");
  EXPECT_EQ(check_submit(submit("grep", "sum", Documents{})),
            "unknown mapper 'grep'; known mappers: 'words', 'bigrams', 'index', 'numbers', "
            "'matmul'");
  EXPECT_EQ(check_submit(submit("words", "count", Documents{})),
            "unknown reducer 'count'; known reducers: 'sum', 'postings', 'stats', 'rows'");
  EXPECT_EQ(check_submit(submit("words", "stats", Documents{})),
            "mapper 'words' does not go with reducer 'stats'; use 'sum'");
  EXPECT_EQ(check_submit(submit("index", "sum", Documents{})),
            "mapper 'index' does not go with reducer 'sum'; use 'postings'");
  EXPECT_EQ(check_submit(submit("matmul", "rows", Documents{})),
            "mapper 'matmul' takes a matrix pair, not documents");
  EXPECT_EQ(check_submit(submit("words", "sum", Numbers{})),
            "mapper 'words' takes documents, not numbers");
  EXPECT_EQ(check_submit(submit("numbers", "stats", MatrixPair{})),
            "mapper 'numbers' takes numbers, not a matrix pair");
  // The same checks from the names and the input kind alone (an input not decoded yet).
  EXPECT_EQ(check_submit("words", "sum", 0), "");
  EXPECT_EQ(check_submit("words", "sum", 1), "mapper 'words' takes documents, not numbers");
  EXPECT_EQ(check_submit("grep", "sum", 0).substr(0, 21), "unknown mapper 'grep'");
}

TEST(Catalog, WrongInputKindIsAJobErrorEverywhere) {
  for (const JobKind* kind : all_job_kinds()) {
    const JobInput owned = kind->input_kind() == 0 ? JobInput{Numbers{}} : JobInput{Documents{}};
    const InputView wrong = view_of(owned);
    EXPECT_THROW(kind->validate(wrong), JobError) << kind->mapper();
    EXPECT_THROW(kind->split(wrong, 64), JobError) << kind->mapper();
    EXPECT_THROW(kind->map(wrong, 1), JobError) << kind->mapper();
  }
}

// --- untrusted intermediate data ---

TEST(Intermediate, CorruptPiecesFailTheJobNotTheProcess) {
  const std::string lying_count("\xff\xff\xff\xff\xff\xff\xff\x7f", 8);  // 2^63 entries
  for (const JobKind* kind : all_job_kinds()) {
    SCOPED_TRACE(std::string(kind->mapper()));
    if (kind->has_reduce()) {
      EXPECT_THROW(kind->reduce({"abc"}), JobError);
      EXPECT_THROW(kind->reduce({lying_count}), JobError);
    }
    EXPECT_THROW(kind->assemble({"abc"}), JobError);
    EXPECT_THROW(kind->assemble({lying_count}), JobError);
  }
}

TEST(Intermediate, TruncatedOrExtendedPiecesAreRejected) {
  const Documents input = docs({{"d", "some words to count and index"}});
  for (const auto* kind :
       {&job("words", "sum"), &job("bigrams", "sum"), &job("index", "postings")}) {
    SCOPED_TRACE(std::string(kind->mapper()));
    const std::string piece = kind->map(view_of(input), 1).at(0);
    EXPECT_NO_THROW(kind->reduce({piece}));
    EXPECT_THROW(kind->reduce({piece.substr(0, piece.size() - 1)}), JobError);
    EXPECT_THROW(kind->reduce({piece + "x"}), JobError);
  }
  const auto& stats = job("numbers", "stats");
  const std::string piece = stats.map(view_of(Numbers{{3, 1, 2}}), 1).at(0);
  EXPECT_NO_THROW(stats.reduce({piece}));
  EXPECT_THROW(stats.reduce({piece.substr(0, piece.size() - 1)}), JobError);
  // Values out of order: swap the first two (value, count) pairs after the u64 count.
  std::string swapped = piece;
  std::swap_ranges(swapped.begin() + 8, swapped.begin() + 24, swapped.begin() + 24);
  EXPECT_THROW(stats.reduce({swapped}), JobError);
}

// --- the keyed hash ---

/// Makes `key` the process's hash key for one scope, then restores the previous one.
class WithHashKey {
 public:
  explicit WithHashKey(const HashKey& key) : saved_(hash_key()) { set_hash_key(key); }
  ~WithHashKey() { set_hash_key(saved_); }
  WithHashKey(const WithHashKey&) = delete;
  WithHashKey& operator=(const WithHashKey&) = delete;

 private:
  HashKey saved_;
};

/// The test vectors' key, bytes 00 to 0f, and their messages: n bytes 00, 01, ..., n - 1.
constexpr std::uint64_t kVectorK0 = 0x0706050403020100ULL;
constexpr std::uint64_t kVectorK1 = 0x0f0e0d0c0b0a0908ULL;
std::string vector_message(std::size_t length) {
  std::string message;
  for (std::size_t i = 0; i < length; ++i) {
    message.push_back(static_cast<char>(i));
  }
  return message;
}

/// `bytes` copied to each of the 8 alignments in turn, so loads at any address are checked.
template <class Hash>
void expect_same_at_every_alignment(const std::string& bytes, std::uint64_t expected, Hash hash) {
  for (std::size_t offset = 0; offset < 8; ++offset) {
    const std::string shifted = std::string(offset, 'x') + bytes;
    EXPECT_EQ(hash(std::string_view(shifted).substr(offset)), expected)
        << "length " << bytes.size() << ", offset " << offset;
  }
}

TEST(SipHash, TwoFourMatchesThePaperAndTheReferenceVectors) {
  // The paper's appendix: key 00..0f, message 00..0e.
  EXPECT_EQ((siphash<2, 4>(kVectorK0, kVectorK1, vector_message(15))), 0xa129ca6149be45e5ULL);
  // vectors_sip64 of the reference implementation (github.com/veorq/SipHash, vectors.h), the
  // 8 bytes of each read little-endian: message lengths 0 to 63.
  constexpr std::uint64_t kExpected[64] = {
      0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a, 0x85676696d7fb7e2d,
      0xcf2794e0277187b7, 0x18765564cd99a68d, 0xcbc9466e58fee3ce, 0xab0200f58b01d137,
      0x93f5f5799a932462, 0x9e0082df0ba9e4b0, 0x7a5dbbc594ddb9f3, 0xf4b32f46226bada7,
      0x751e8fbc860ee5fb, 0x14ea5627c0843d90, 0xf723ca908e7af2ee, 0xa129ca6149be45e5,
      0x3f2acc7f57c29bdb, 0x699ae9f52cbe4794, 0x4bc1b3f0968dd39c, 0xbb6dc91da77961bd,
      0xbed65cf21aa2ee98, 0xd0f2cbb02e3b67c7, 0x93536795e3a33e88, 0xa80c038ccd5ccec8,
      0xb8ad50c6f649af94, 0xbce192de8a85b8ea, 0x17d835b85bbb15f3, 0x2f2e6163076bcfad,
      0xde4daaaca71dc9a5, 0xa6a2506687956571, 0xad87a3535c49ef28, 0x32d892fad841c342,
      0x7127512f72f27cce, 0xa7f32346f95978e3, 0x12e0b01abb051238, 0x15e034d40fa197ae,
      0x314dffbe0815a3b4, 0x027990f029623981, 0xcadcd4e59ef40c4d, 0x9abfd8766a33735c,
      0x0e3ea96b5304a7d0, 0xad0c42d6fc585992, 0x187306c89bc215a9, 0xd4a60abcf3792b95,
      0xf935451de4f21df2, 0xa9538f0419755787, 0xdb9acddff56ca510, 0xd06c98cd5c0975eb,
      0xe612a3cb9ecba951, 0xc766e62cfcadaf96, 0xee64435a9752fe72, 0xa192d576b245165a,
      0x0a8787bf8ecb74b2, 0x81b3e73d20b49b6f, 0x7fa8220ba3b2ecea, 0x245731c13ca42499,
      0xb78dbfaf3a8d83bd, 0xea1ad565322a1a0b, 0x60e61c23a3795013, 0x6606d7e446282b93,
      0x6ca4ecb15c5f91e1, 0x9f626da15c9625f3, 0xe51b38608ef25f57, 0x958a324ceb064572,
  };
  for (std::size_t length = 0; length < 64; ++length) {
    expect_same_at_every_alignment(vector_message(length), kExpected[length], [](auto bytes) {
      return siphash<2, 4>(kVectorK0, kVectorK1, bytes);
    });
  }
}

TEST(SipHash, OneThreeMatchesTheReferenceImplementationAndCPython) {
  // The reference implementation's siphash.c built with cROUNDS=1 and dROUNDS=3, on the same
  // key and messages as the SipHash-2-4 vectors: lengths 0 to 15.
  constexpr std::uint64_t kExpected[16] = {
      0xabac0158050fc4dc, 0xc9f49bf37d57ca93, 0x82cb9b024dc7d44d, 0x8bf80ab8e7ddf7fb,
      0xcf75576088d38328, 0xdef9d52f49533b67, 0xc50d2b50c59f22a7, 0xd3927d989bb11140,
      0x369095118d299a8e, 0x25a48eb36c063de4, 0x79de85ee92ff097f, 0x70c118c1f94dc352,
      0x78a384b157b4d9a2, 0x306f760c1229ffa7, 0x605aa111c0f95d34, 0xd320d86d2a519956,
  };
  for (std::size_t length = 0; length < 16; ++length) {
    expect_same_at_every_alignment(vector_message(length), kExpected[length], [](auto bytes) {
      return siphash<1, 3>(kVectorK0, kVectorK1, bytes);
    });
  }
  // CPython 3.11 hashes bytes with SipHash-1-3, under an all-zero key when PYTHONHASHSEED=0:
  // `PYTHONHASHSEED=0 python3 -c "print(hex(hash(b'abc') % 2**64))"` prints these, and the
  // reference implementation above agrees.
  EXPECT_EQ((siphash<1, 3>(0, 0, "abc")), 0xc03bc3a0042630f2ULL);
  EXPECT_EQ((siphash<1, 3>(0, 0, "hello world")), 0xb1b1f2e707e4ac8aULL);
  EXPECT_EQ((siphash<1, 3>(0, 0, "0123456789abcdef0")), 0xf738bb4f30801228ULL);
}

TEST(KeyedHash, IsSipHashOneThreeUnderTheProcessKey) {
  EXPECT_EQ(hash_key(), kDefaultHashKey);  // no test leaves another key behind
  const std::string word = "keyed";
  EXPECT_EQ(keyed_hash(word), (siphash<1, 3>(kDefaultHashKey.k0, kDefaultHashKey.k1, word)));
  const HashKey other{kVectorK0, kVectorK1};
  {
    WithHashKey key(other);
    EXPECT_EQ(hash_key(), other);
    EXPECT_EQ(keyed_hash(vector_message(15)), 0xd320d86d2a519956ULL);
    EXPECT_NE(keyed_hash(word), (siphash<1, 3>(kDefaultHashKey.k0, kDefaultHashKey.k1, word)));
    EXPECT_EQ(keyed_hash_of_bits(0x0706050403020100ULL), keyed_hash(vector_message(8)));
  }
  EXPECT_EQ(hash_key(), kDefaultHashKey);
}

TEST(HashKey, HexRoundTripsAndRejectsAnythingElse) {
  const HashKey key{kVectorK0, kVectorK1};
  EXPECT_EQ(format_hash_key(key), "000102030405060708090a0b0c0d0e0f");
  EXPECT_EQ(parse_hash_key("000102030405060708090a0b0c0d0e0f"), key);
  EXPECT_EQ(parse_hash_key("000102030405060708090A0B0C0D0E0F"), key);
  const HashKey random = random_hash_key();
  EXPECT_EQ(parse_hash_key(format_hash_key(random)), random);
  EXPECT_EQ(parse_hash_key(""), std::nullopt);
  EXPECT_EQ(parse_hash_key("000102030405060708090a0b0c0d0e0"), std::nullopt);    // 31 digits
  EXPECT_EQ(parse_hash_key("000102030405060708090a0b0c0d0e0f0"), std::nullopt);  // 33 digits
  EXPECT_EQ(parse_hash_key("000102030405060708090a0b0c0d0e0g"), std::nullopt);
  EXPECT_EQ(parse_hash_key(" 00102030405060708090a0b0c0d0e0f"), std::nullopt);
  EXPECT_EQ(parse_hash_key("+00102030405060708090a0b0c0d0e0f"), std::nullopt);
}

TEST(HashKey, RandomKeysDiffer) {
  // Two equal draws of 128 random bits would mean the source is broken, not bad luck.
  const HashKey a = random_hash_key();
  const HashKey b = random_hash_key();
  EXPECT_NE(a, b);
  EXPECT_NE(a, kDefaultHashKey);
}

TEST(HashKey, TravelsThroughTheEnvironment) {
  const HashKey key{kVectorK0, kVectorK1};
  WithHashKey installed(key);
  const std::string entry = hash_key_to_environment();
  EXPECT_EQ(entry, "MRD_HASH_KEY=000102030405060708090a0b0c0d0e0f");

  const std::string name(kHashKeyVariable);
  ASSERT_EQ(::unsetenv(name.c_str()), 0);
  EXPECT_EQ(hash_key_from_environment(), std::nullopt);
  ASSERT_EQ(::setenv(name.c_str(), entry.substr(name.size() + 1).c_str(), 1), 0);
  EXPECT_EQ(hash_key_from_environment(), key);
  ASSERT_EQ(::setenv(name.c_str(), "not a key", 1), 0);
  EXPECT_THROW(hash_key_from_environment(), std::invalid_argument);
  ASSERT_EQ(::setenv(name.c_str(), "", 1), 0);
  EXPECT_THROW(hash_key_from_environment(), std::invalid_argument);
  ::unsetenv(name.c_str());
}

/// The unkeyed hash mrd used before keyed_hash, verbatim but for `seed`, which it did not have
/// (0 is the old hash): kept to build inputs that collided under it.
std::uint64_t old_unkeyed_hash(std::string_view bytes, std::uint64_t seed = 0) {
  constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  const auto mix64 = [](std::uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
  };
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  std::uint64_t h = (bytes.size() * kGolden) ^ seed;
  while (left >= 8) {
    std::uint64_t block;
    std::memcpy(&block, p, 8);
    h = std::rotl((h ^ block) * kGolden, 31);
    p += 8;
    left -= 8;
  }
  std::uint64_t tail = 0;
  if (left >= 4) {
    std::uint32_t first, last;
    std::memcpy(&first, p, 4);
    std::memcpy(&last, p + left - 4, 4);
    tail = (std::uint64_t{last} << 32) | first;
  } else if (left > 0) {
    const auto byte = [&](std::size_t i) {
      return std::uint64_t{static_cast<unsigned char>(p[i])};
    };
    tail = (byte(0) << 16) | (byte(left / 2) << 8) | byte(left - 1);
  }
  return mix64((h ^ tail) * kGolden);
}

/// 2^flips words of 8 * (flips + 1) bytes that all had one old_unkeyed_hash, whatever its seed.
/// Word j flips, for each bit i set in j, the top bit of 8-byte block i and bit 30 of block
/// i + 1: multiplying by an odd constant keeps a top-bit difference in the top bit, the rotation
/// by 31 moves it to bit 30, and the next block's flip cancels it. Every byte stays a word byte
/// ('a' <-> 0xe1, '0' <-> 'p'), so these are words a client could send.
std::vector<std::string> old_hash_collisions(int flips) {
  std::string base;
  for (int block = 0; block <= flips; ++block) {
    base += "aaa0aaaa";
  }
  std::vector<std::string> words;
  for (std::uint32_t j = 0; j < (1u << flips); ++j) {
    std::string word = base;
    for (int i = 0; i < flips; ++i) {
      if ((j >> i & 1) == 0) continue;
      word[8 * i + 7] = static_cast<char>(word[8 * i + 7] ^ 0x80);
      word[8 * (i + 1) + 3] = static_cast<char>(word[8 * (i + 1) + 3] ^ 0x40);
    }
    words.push_back(std::move(word));
  }
  return words;
}

TEST(KeyedHash, ZeroPaddedIsTheSameHash) {
  std::mt19937 rng(5);
  for (const HashKey& key : {kDefaultHashKey, HashKey{kVectorK0, kVectorK1}}) {
    WithHashKey installed(key);
    for (std::size_t size = 0; size <= 40; ++size) {
      std::string padded(size + 8, '\0');
      for (std::size_t i = 0; i < size; ++i) {
        padded[i] = static_cast<char>(rng());
      }
      const std::string_view bytes(padded.data(), size);
      EXPECT_EQ(keyed_hash_zero_padded(bytes), keyed_hash(bytes)) << size;
    }
  }
}

TEST(KeyedHash, TheOldSeedIndependentCollisionNoLongerCollides) {
  const auto pair = old_hash_collisions(1);
  ASSERT_EQ(pair.size(), 2u);
  ASSERT_NE(pair[0], pair[1]);
  ASSERT_EQ(engine_words(pair[0] + " " + pair[1]), pair);  // two words the tokenizer keeps
  // They collided under the old hash, and would have under any seed given to it.
  for (const std::uint64_t seed : {0ULL, 1ULL, 0x0123456789abcdefULL, ~0ULL}) {
    EXPECT_EQ(old_unkeyed_hash(pair[0], seed), old_unkeyed_hash(pair[1], seed)) << seed;
  }
  for (const HashKey& key : {kDefaultHashKey, HashKey{kVectorK0, kVectorK1}, random_hash_key()}) {
    WithHashKey installed(key);
    EXPECT_NE(keyed_hash(pair[0]), keyed_hash(pair[1])) << format_hash_key(key);
  }
}

TEST(KeyTable, WordsThatAllCollidedUnderTheOldHashSpreadOut) {
  const auto words = old_hash_collisions(12);  // 4096 words of 104 bytes
  for (const auto& word : words) {
    ASSERT_EQ(old_unkeyed_hash(word), old_unkeyed_hash(words[0]));
  }
  // Under the old hash, one probe chain held them all: the n-th word visited n slots.
  KeyTable<int> old_table;
  for (const auto& word : words) {
    ++old_table.find_or_insert(word, old_unkeyed_hash(word));
  }
  EXPECT_EQ(old_table.longest_probe(), words.size());

  // Keyed, at most 1/2 full after growing, the longest probe stays short: a few dozen slots
  // would already be far out in the tail for 4096 random hashes.
  for (const HashKey& key : {kDefaultHashKey, HashKey{kVectorK0, kVectorK1}, random_hash_key()}) {
    WithHashKey installed(key);
    KeyTable<int> table;
    for (const auto& word : words) {
      ++table[word];
    }
    EXPECT_EQ(table.size(), words.size());
    EXPECT_LE(table.longest_probe(), 48u) << format_hash_key(key);
  }
}

TEST(KeyTable, KeysOfEveryLengthStayDistinctAsTheTableGrows) {
  // Short keys live in their slot, zero-padded: "a", "a\0" and "a\0\0" must still differ.
  std::vector<std::string> keys = {"",
                                   std::string(1, '\0'),
                                   "a",
                                   std::string("a\0", 2),
                                   std::string("a\0\0", 3),
                                   "abcdefgh",
                                   "abcdefghi",
                                   std::string("abcdefgh\0", 9)};
  std::mt19937 rng(4);
  for (int i = 0; i < 3000; ++i) {
    std::string key(rng() % 24, '\0');
    for (auto& byte : key) {
      byte = static_cast<char>("ab\0\xff"[rng() % 4]);
    }
    keys.push_back(key);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());

  KeyTable<std::uint64_t> table;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    table[keys[i]] += i + 1;
  }
  ASSERT_EQ(table.size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    std::string padded = keys[i] + std::string(8, '\0');
    const std::string_view key(padded.data(), keys[i].size());
    EXPECT_EQ(table.find_or_insert_zero_padded(key, keyed_hash(key)), i + 1) << i;
    EXPECT_EQ(table[keys[i]], i + 1) << i;
  }
  ASSERT_EQ(table.size(), keys.size());
  std::vector<std::string> seen;
  table.for_each([&](const KeyTable<std::uint64_t>::Entry& entry) {
    seen.emplace_back(entry.key());
    EXPECT_EQ(entry.hash, keyed_hash(entry.key()));
  });
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, keys);
}

/// One input for every built-in job, by input kind: many distinct keys and repeated ones.
JobInput key_independence_input(const JobKind& kind) {
  std::mt19937 rng(11);
  switch (kind.input_kind()) {
    case 0: {
      Documents input;
      for (int d = 0; d < 12; ++d) {
        std::string text = random_text(rng, 150);
        for (int i = 0; i < 150; ++i) {
          text += " k" + std::to_string(rng() % 400);
        }
        input.documents.push_back({"doc" + std::to_string(d % 9), text});
      }
      return input;
    }
    case 1: {
      Numbers input;
      std::uniform_int_distribution<int> small(-300, 300);
      for (int i = 0; i < 2000; ++i) {
        input.values.push_back(small(rng) * 0.25);
      }
      return input;
    }
    default: return MatrixPair{random_matrix(rng, 9, 7), random_matrix(rng, 7, 5)};
  }
}

TEST(KeyedHash, ResultsDoNotDependOnTheKeyOrThePartitions) {
  const HashKey keys[] = {kDefaultHashKey, HashKey{kVectorK0, kVectorK1}, random_hash_key()};
  for (const JobKind* kind : all_job_kinds()) {
    SCOPED_TRACE(std::string(kind->mapper()) + " + " + std::string(kind->reducer()));
    const JobInput input = key_independence_input(*kind);
    const std::string expected = protocol::encode(run_job(*kind, input, kHugeChunk, 1));
    for (const HashKey& key : keys) {
      WithHashKey installed(key);
      for (const std::uint64_t chunk_bytes : {std::uint64_t{256}, std::uint64_t{4096}}) {
        for (const std::uint32_t partitions : {1u, 2u, 3u, 7u}) {
          SCOPED_TRACE(format_hash_key(key) + ", chunk_bytes " + std::to_string(chunk_bytes) +
                       ", partitions " + std::to_string(partitions));
          const std::string encoded =
              protocol::encode(run_job(*kind, input, chunk_bytes, partitions));
          EXPECT_TRUE(encoded == expected) << "the encoded result differs";
        }
      }
    }
  }
}

TEST(KeyedHash, AnotherKeySendsKeysToOtherPartitions) {
  // Without this, the test above could pass only because the key changed nothing.
  const auto& words = job("words", "sum");
  const auto& stats = job("numbers", "stats");
  const JobInput text = key_independence_input(words);
  const JobInput numbers = key_independence_input(stats);
  const auto pieces = [&](const HashKey& key, const JobKind& kind, const JobInput& input) {
    WithHashKey installed(key);
    return kind.map(view_of(input), 3);
  };
  const HashKey other{kVectorK0, kVectorK1};
  EXPECT_NE(pieces(kDefaultHashKey, words, text), pieces(other, words, text));
  EXPECT_NE(pieces(kDefaultHashKey, stats, numbers), pieces(other, stats, numbers));
}

}  // namespace
}  // namespace mrd::engine
