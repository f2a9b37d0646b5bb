// WordCounter: the word-count kernel, shared by words + sum's map and bench/wordcount_baseline.
//
// Each word (tokenizer.hpp) is lower-cased into a small scratch buffer, followed by 8 zero bytes
// so that hashing it and loading its first 8 bytes need no branch on its length. Every 16 words,
// all 16 are hashed (keyed_hash, so colliding words cannot be chosen) and their slots in the table
// prefetched, then looked up. Once the vocabulary outgrows the caches every lookup is a cache
// miss: a batch keeps 16 of them in flight instead of one, and hashing 16 independent words in
// one loop lets the processor overlap the hashes too.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "server/engine/key_table.hpp"

namespace mrd::engine {

class WordCounter {
 public:
  /// Word -> number of occurrences; keys are lower-cased words, hashes keyed_hash's.
  using Counts = KeyTable<std::uint64_t>;

  /// A counter that adds to `counts`, which must outlive it.
  explicit WordCounter(Counts& counts);

  /// Adds one to the count of every word of `text`. Every word is counted before it returns.
  void add(std::string_view text);

 private:
  /// Words hashed and prefetched before the first of them is looked up.
  static constexpr int kBatch = 16;
  /// The scratch buffer's size unless a longer word needs more: it stays in the L1/L2 cache.
  static constexpr std::size_t kScratchBytes = 64 * 1024;

  /// A word waiting to be counted.
  struct Pending {
    std::size_t at = 0;  ///< of the folded word in scratch_
    std::size_t size = 0;
    std::uint64_t hash = 0;
  };

  /// Counts the pending words and empties the scratch buffer.
  void drain();

  Counts& counts_;
  /// The pending words, lower-cased, each at an 8-byte boundary followed by 8 zero bytes.
  std::vector<char> scratch_;
  std::size_t used_ = 0;  ///< bytes of scratch_ taken by pending words
  std::array<Pending, kBatch> batch_{};
  int pending_ = 0;  ///< entries of batch_ in use
};

}  // namespace mrd::engine
