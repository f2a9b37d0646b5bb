// wordcount_baseline: the bar mrd's word count has to clear.
//
// The same job as mrd's `words`+`sum` (docs/protocol.md, section 7: a word is a maximal run of
// bytes in [A-Za-z0-9] or >= 0x80, ASCII letters lower-cased), done in this process on a corpus
// already in memory: an open-addressing hash table keyed by the folded word, one per thread over
// a slice of the text cut between words, merged, then sorted into the protocol's result order
// (most frequent first, ties by key in byte order), which is what a FETCH returns.
//
//   wordcount_baseline --file corpus.txt [--threads 1,2] [--runs 5]
//
// Prints one JSON line per thread count: the seconds of every run counting (count_s) and counting
// plus the sorted result (total_s), the CPU time of each (cpu_s: cpu_s / total_s is how many
// cores the run actually got), and the digest of the result (bench_common.hpp) for the suite to
// compare with mrd's.
#include <CLI/CLI.hpp>
#include <array>
#include <cstring>
#include <iostream>
#include <string_view>
#include <thread>

#include "bench/bench_common.hpp"

namespace {

using mrd::bench::Clock;
using mrd::bench::seconds_between;

/// What each byte becomes inside a word, or 0 if it separates words (the server's rule).
constexpr std::array<unsigned char, 256> kFold = [] {
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

/// Words hashed and prefetched before any of them is looked up: the table outgrows the caches on
/// a large vocabulary, and a batch keeps that many misses in flight instead of one.
constexpr int kBatch = 16;

/// Hash of `n` bytes at `p`, which are followed by at least 8 zero bytes (so whole 8-byte loads
/// never read garbage and need no tail loop).
inline std::uint64_t hash_padded(const unsigned char* p, std::size_t n) {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

/// The first 8 bytes of a zero-padded key, as one integer.
inline std::uint64_t head_of(const unsigned char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

/// Word -> count, open addressing with linear probing at most half full. A slot holds the hash,
/// the count and the key's first 8 bytes, so most words (8 bytes or fewer) are found without
/// touching the arena where every key is kept whole.
class WordTable {
 public:
  WordTable() : slots_(1u << 16), mask_((1u << 16) - 1) { arena_.reserve(1 << 20); }

  void prefetch(std::uint64_t h) const { __builtin_prefetch(&slots_[h & mask_]); }

  /// Adds `n` to the count of the `len` bytes at `key` (followed by 8 zero bytes), hash `h`.
  void add(const unsigned char* key, std::uint32_t len, std::uint64_t h, std::uint64_t n) {
    const std::uint64_t head = len >= 8 ? head_of(key) : head_of(key) & ((1ull << (8 * len)) - 1);
    std::size_t i = h & mask_;
    for (;;) {
      Slot& s = slots_[i];
      if (s.count == 0) {
        if (arena_.size() + len + 8 > UINT32_MAX) throw std::length_error("key arena over 4 GiB");
        s = Slot{h, n, head, static_cast<std::uint32_t>(arena_.size()), len};
        arena_.insert(arena_.end(), key, key + len);
        if (++size_ * 2 > slots_.size()) grow();
        return;
      }
      if (s.hash == h && s.len == len && s.head == head &&
          (len <= 8 || std::memcmp(arena_.data() + s.offset + 8, key + 8, len - 8) == 0)) {
        s.count += n;
        return;
      }
      i = (i + 1) & mask_;
    }
  }

  /// Adds every count of `other` to this table.
  void merge(const WordTable& other) {
    std::vector<unsigned char> key;
    for (const Slot& s : other.slots_) {
      if (s.count == 0) continue;
      key.assign(other.arena_.data() + s.offset, other.arena_.data() + s.offset + s.len);
      key.resize(s.len + 8, 0);
      add(key.data(), s.len, s.hash, s.count);
    }
  }

  /// Every (word, count), most frequent first, ties by word in byte order.
  std::vector<std::pair<std::string_view, std::uint64_t>> sorted() const {
    std::vector<std::pair<std::string_view, std::uint64_t>> out;
    out.reserve(size_);
    for (const Slot& s : slots_) {
      if (s.count != 0) {
        out.emplace_back(
            std::string_view(reinterpret_cast<const char*>(arena_.data()) + s.offset, s.len),
            s.count);
      }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    return out;
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint64_t count = 0;   ///< 0: the slot is empty
    std::uint64_t head = 0;    ///< the key's first 8 bytes, zero-padded
    std::uint32_t offset = 0;  ///< of the whole key in arena_
    std::uint32_t len = 0;
  };

  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.count == 0) continue;
      std::size_t i = s.hash & mask_;
      while (slots_[i].count != 0)
        i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::size_t mask_;
  std::size_t size_ = 0;
  std::vector<unsigned char> arena_;
};

/// Counts the words of [p, end). The byte at `end` must exist and separate words (a text's
/// terminating NUL, or the separator a slice was cut at), so the inner loop needs no bound.
void count_words(const unsigned char* p, const unsigned char* end, WordTable& table) {
  struct Pending {
    std::size_t at;  ///< of the folded word in scratch
    std::uint32_t len;
    std::uint64_t hash;
  };
  std::vector<unsigned char> scratch(1 << 16);
  Pending batch[kBatch];
  int pending = 0;
  std::size_t used = 0;
  auto drain = [&] {
    for (int k = 0; k < pending; ++k)
      table.add(scratch.data() + batch[k].at, batch[k].len, batch[k].hash, 1);
    pending = 0;
    used = 0;
  };
  for (;;) {
    while (p < end && kFold[*p] == 0)
      ++p;
    if (p >= end) break;
    const unsigned char* start = p;
    while (kFold[*p] != 0)
      ++p;
    const std::size_t n = static_cast<std::size_t>(p - start);
    if (used + n + 16 > scratch.size()) {
      drain();
      if (n + 16 > scratch.size()) scratch.resize(n + 16);
    }
    unsigned char* word = scratch.data() + used;
    for (std::size_t i = 0; i < n; ++i)
      word[i] = kFold[start[i]];
    std::memset(word + n, 0, 8);
    const std::uint64_t h = hash_padded(word, n);
    table.prefetch(h);
    batch[pending++] = {used, static_cast<std::uint32_t>(n), h};
    used += (n + 8 + 7) & ~std::size_t{7};
    if (pending == kBatch) drain();
  }
  drain();
}

/// Counts `text` with `threads` threads, each over a slice cut at a separator, then merges.
WordTable count_parallel(const std::string& text, int threads) {
  const auto* base = reinterpret_cast<const unsigned char*>(text.c_str());
  std::vector<std::size_t> cuts{0};
  for (int k = 1; k < threads; ++k) {
    std::size_t cut = std::max(cuts.back(), text.size() * k / threads);
    while (cut < text.size() && kFold[base[cut]] != 0)
      ++cut;
    cuts.push_back(cut);
  }
  cuts.push_back(text.size());
  std::vector<WordTable> tables(threads);
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) {
    pool.emplace_back([&, k] { count_words(base + cuts[k], base + cuts[k + 1], tables[k]); });
  }
  count_words(base + cuts[0], base + cuts[1], tables[0]);
  for (auto& t : pool)
    t.join();
  for (int k = 1; k < threads; ++k)
    tables[0].merge(tables[k]);
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
      const auto result = table.sorted();
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
