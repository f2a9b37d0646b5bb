// wordcount_baseline: the bar mrd's word count has to clear.
//
// The same job as mrd's `words`+`sum` (docs/protocol.md, section 7: a word is a maximal run of
// bytes in [A-Za-z0-9] or >= 0x80, ASCII letters lower-cased), done in this process on a corpus
// already in memory, with the very kernel mrd's map tasks run: the engine's WordCounter
// (server/engine/word_counter.hpp: its tokenizer, its KeyTable with short keys in the slot, 16
// words hashed and prefetched ahead), one table per thread over a slice of the text cut between
// words, merged, then sorted into the protocol's result order (most frequent first, ties by key
// in byte order), which is what a FETCH returns. What mrd adds to this is its own cost: the
// protocol, copies, scheduling, partitioning, reducing.
//
// The hash is the server's keyed SipHash-1-3, under the fixed key of a process that never sets
// one (hash_key.hpp's kDefaultHashKey): the same work per word as the server, whose key is random.
//
//   wordcount_baseline --file corpus.txt [--threads 1,2] [--runs 5]
//
// Prints one JSON line per thread count: the seconds of every run counting (count_s) and counting
// plus the sorted result (total_s), the CPU time of each (cpu_s: cpu_s / total_s is how many
// cores the run actually got), and the digest of the result (bench_common.hpp) for the suite to
// compare with mrd's.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <string_view>
#include <thread>

#include "bench/bench_common.hpp"
#include "server/engine/tokenizer.hpp"
#include "server/engine/word_counter.hpp"

namespace {

using mrd::bench::Clock;
using mrd::bench::seconds_between;
using mrd::engine::WordCounter;
using WordTable = WordCounter::Counts;

/// Adds every count of `other` to `table`, reusing the hashes the entries keep.
void merge(WordTable& table, const WordTable& other) {
  other.for_each([&](const WordTable::Entry& entry) {
    table.find_or_insert(entry.key(), entry.hash) += entry.value;
  });
}

/// Every (word, count) of `table`, most frequent first, ties by word in byte order.
std::vector<std::pair<std::string_view, std::uint64_t>> sorted(const WordTable& table) {
  std::vector<std::pair<std::string_view, std::uint64_t>> out;
  out.reserve(table.size());
  table.for_each(
      [&](const WordTable::Entry& entry) { out.emplace_back(entry.key(), entry.value); });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  return out;
}

/// Counts `text` with `threads` threads, each over a slice cut at a separator, then merges.
WordTable count_parallel(const std::string& text, int threads) {
  std::vector<std::size_t> cuts{0};
  for (int k = 1; k < threads; ++k) {
    std::size_t cut = std::max(cuts.back(), text.size() * k / threads);
    while (cut < text.size() && mrd::engine::is_word_byte(text[cut]))
      ++cut;
    cuts.push_back(cut);
  }
  cuts.push_back(text.size());
  const std::string_view all(text);
  std::vector<WordTable> tables(threads);
  const auto count_slice = [&](int k) {
    WordCounter(tables[k]).add(all.substr(cuts[k], cuts[k + 1] - cuts[k]));
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) {
    pool.emplace_back(count_slice, k);
  }
  count_slice(0);
  for (auto& t : pool)
    t.join();
  for (int k = 1; k < threads; ++k)
    merge(tables[0], tables[k]);
  return std::move(tables[0]);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"In-process word count baseline (the bar for mrd's words+sum)"};
  std::string file;
  std::vector<int> thread_counts{1, 2};
  int runs = 5;
  app.add_option("--file", file, "Corpus, counted as one document")->required();
  app.add_option("--threads", thread_counts, "Thread counts to measure")->delimiter(',');
  app.add_option("--runs", runs, "Timed runs per thread count")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  const std::string text = mrd::bench::read_whole_file(file);
  std::vector<std::vector<double>> count_s(thread_counts.size()), total_s(thread_counts.size()),
      cpu_s(thread_counts.size());
  std::vector<std::string> digests(thread_counts.size());
  // Thread counts interleaved run by run, so a noisy neighbour hits them alike.
  for (int r = 0; r < runs; ++r) {
    for (std::size_t t = 0; t < thread_counts.size(); ++t) {
      const double cpu_start = mrd::bench::process_cpu_seconds();
      const auto start = Clock::now();
      WordTable table = count_parallel(text, thread_counts[t]);
      const auto counted = Clock::now();
      const auto result = sorted(table);
      const auto done = Clock::now();
      cpu_s[t].push_back(mrd::bench::process_cpu_seconds() - cpu_start);
      count_s[t].push_back(seconds_between(start, counted));
      total_s[t].push_back(seconds_between(start, done));
      if (r == 0) {
        mrd::bench::CountsDigest digest;
        for (const auto& [word, count] : result)
          digest.add(word, count);
        digests[t] = digest.line();
      }
    }
  }
  for (std::size_t t = 0; t < thread_counts.size(); ++t) {
    std::cout << "{\"tool\": \"wordcount_baseline\", \"bytes\": " << text.size()
              << ", \"threads\": " << thread_counts[t]
              << ", \"count_s\": " << mrd::bench::json_list(count_s[t])
              << ", \"total_s\": " << mrd::bench::json_list(total_s[t])
              << ", \"cpu_s\": " << mrd::bench::json_list(cpu_s[t]) << ", \"digest\": \""
              << digests[t] << "\"}" << std::endl;
  }
  return 0;
}
