// bigrams + sum: how often each pair of consecutive words occurs, as the key "w1 w2".
//
// Pairs never span two documents. A document cut into several chunks overlaps by one word (see
// Overlap::kLastWord), so the pair spanning each cut is counted exactly once.
#include "server/engine/builtin_jobs.hpp"
#include "server/engine/counts_job.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/text_split.hpp"
#include "server/engine/tokenizer.hpp"

namespace mrd::engine {
namespace {

class BigramCount final : public CountsJob {
 public:
  std::string_view mapper() const override { return "bigrams"; }

  std::optional<Overlap> text_overlap() const override { return Overlap::kLastWord; }

 protected:
  void count_keys(const DocumentsView& chunk, CountTable& counts) const override {
    std::string scratch;
    for (const auto& document : chunk.documents) {
      std::string_view previous;  // empty before the document's first word
      for_each_word(document.text, scratch, [&](std::string_view word) {
        if (!previous.empty()) {
          // for_each_word leaves exactly one space between consecutive words in scratch, so the
          // key "w1 w2" is already there: the bytes from the start of w1 to the end of w2.
          const auto pair_bytes =
              static_cast<std::size_t>(word.data() + word.size() - previous.data());
          ++counts[std::string_view(previous.data(), pair_bytes)];
        }
        previous = word;
      });
    }
  }
};

}  // namespace

const JobKind& bigram_count_job() {
  static const BigramCount job;
  return job;
}

}  // namespace mrd::engine
