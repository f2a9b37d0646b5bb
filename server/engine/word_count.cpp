// words + sum: how often each word occurs across all documents.
#include "server/engine/builtin_jobs.hpp"
#include "server/engine/counts_job.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/word_counter.hpp"

namespace mrd::engine {
namespace {

class WordCount final : public CountsJob {
 public:
  std::string_view mapper() const override { return "words"; }

 protected:
  void count_keys(const DocumentsView& chunk, CountTable& counts) const override {
    WordCounter counter(counts);
    for (const auto& document : chunk.documents) {
      counter.add(document.text);
    }
  }
};

}  // namespace

const JobKind& word_count_job() {
  static const WordCount job;
  return job;
}

}  // namespace mrd::engine
