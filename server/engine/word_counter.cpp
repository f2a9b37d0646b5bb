#include "server/engine/word_counter.hpp"

#include <cstring>

#include "server/engine/keyed_hash.hpp"
#include "server/engine/tokenizer.hpp"

namespace mrd::engine {

WordCounter::WordCounter(Counts& counts) : counts_(counts), scratch_(kScratchBytes) {}

void WordCounter::add(std::string_view text) {
  for_each_word_span(text, [&](std::string_view word) {
    const std::size_t size = word.size();
    if (used_ + size + 8 > scratch_.size()) {
      drain();
      if (size + 8 > scratch_.size()) scratch_.resize(size + 8);
    }
    char* const folded = scratch_.data() + used_;
    fold_word_zero_padded(word, text.data() + text.size(), folded);
    batch_[pending_++] = Pending{used_, size, 0};
    used_ += (size + 8 + 7) & ~std::size_t{7};
    if (pending_ == kBatch) drain();
  });
  drain();
}

void WordCounter::drain() {
  // Hashing the batch in one loop lets the processor overlap the hashes of independent words;
  // by the time the lookups start, their slots are on their way into the cache.
  for (int i = 0; i < pending_; ++i) {
    Pending& word = batch_[i];
    word.hash = keyed_hash_zero_padded(std::string_view(scratch_.data() + word.at, word.size));
    counts_.prefetch(word.hash);
  }
  for (int i = 0; i < pending_; ++i) {
    const Pending& word = batch_[i];
    ++counts_.find_or_insert_zero_padded(std::string_view(scratch_.data() + word.at, word.size),
                                         word.hash);
  }
  pending_ = 0;
  used_ = 0;
}

}  // namespace mrd::engine
