// zipf_corpus: a deterministic synthetic text whose word frequencies follow Zipf's law.
//
//   zipf_corpus --mib 256 --out zipf.txt [--seed 42] [--vocabulary 1000000] [--exponent 1.0]
//
// A vocabulary of pseudo-words (mostly lower-case letters, some with a digit or a UTF-8 letter)
// is drawn from std::mt19937_64 with the seed; words are then sampled by rank with probability
// proportional to 1 / rank^exponent (Vose's alias method), capitalised at the start of a sentence,
// separated by spaces, commas, full stops and line breaks. The same seed gives the same bytes with
// the same standard library. Writes at least `mib` MiB, cut after the first line end past it.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {

/// Samples indexes 0..n-1 with the given weights in O(1) each (Vose's alias method).
class AliasTable {
 public:
  explicit AliasTable(const std::vector<double>& weights)
      : probability_(weights.size()), alias_(weights.size()) {
    const std::size_t n = weights.size();
    double sum = 0;
    for (double w : weights)
      sum += w;
    std::vector<double> scaled(n);
    std::vector<std::uint32_t> small, large;
    for (std::size_t i = 0; i < n; ++i) {
      scaled[i] = weights[i] * static_cast<double>(n) / sum;
      (scaled[i] < 1.0 ? small : large).push_back(static_cast<std::uint32_t>(i));
    }
    while (!small.empty() && !large.empty()) {
      const auto s = small.back(), l = large.back();
      small.pop_back();
      probability_[s] = scaled[s];
      alias_[s] = l;
      scaled[l] = scaled[l] + scaled[s] - 1.0;
      if (scaled[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    for (auto i : large)
      probability_[i] = 1.0;
    for (auto i : small)
      probability_[i] = 1.0;
  }

  template <class Rng>
  std::uint32_t sample(Rng& rng) const {
    const std::uint64_t bits = rng();
    const auto column = static_cast<std::uint32_t>((bits >> 32) * probability_.size() >> 32);
    const double coin = static_cast<double>(bits & 0xffffffffu) / 4294967296.0;
    return coin < probability_[column] ? column : alias_[column];
  }

 private:
  std::vector<double> probability_;
  std::vector<std::uint32_t> alias_;
};

/// One pseudo-word: English-like lengths, letters, sometimes a digit or "é".
std::string make_word(std::mt19937_64& rng) {
  // Share (in percent) of each length 1..12, roughly that of English running text.
  static constexpr int kLengthShare[] = {3, 17, 20, 16, 11, 9, 8, 6, 4, 3, 2, 1};
  int pick = static_cast<int>(rng() % 100), length = 1;
  for (int share : kLengthShare) {
    if (pick < share) break;
    pick -= share;
    ++length;
  }
  std::string word;
  for (int i = 0; i < length; ++i)
    word += static_cast<char>('a' + rng() % 26);
  const auto flavour = rng() % 100;
  if (flavour < 4) word += static_cast<char>('0' + rng() % 10);
  if (flavour >= 97) word += "\xc3\xa9";  // é, two bytes >= 0x80: part of the word
  return word;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Deterministic Zipf-distributed text corpus"};
  std::uint64_t mib = 256, seed = 42;
  std::uint32_t vocabulary = 1000000;
  double exponent = 1.0;
  std::string out_path;
  app.add_option("--mib", mib, "Size to reach, in MiB")->check(CLI::Range(1, 4000));
  app.add_option("--out", out_path, "Output file")->required();
  app.add_option("--seed", seed, "Random seed");
  app.add_option("--vocabulary", vocabulary, "Distinct pseudo-words to draw from")
      ->check(CLI::Range(1u, 50000000u));
  app.add_option("--exponent", exponent, "Zipf exponent s (weight of rank r is 1/r^s)");
  CLI11_PARSE(app, argc, argv);

  std::mt19937_64 rng(seed);
  std::vector<std::string> words(vocabulary);
  for (auto& w : words)
    w = make_word(rng);
  std::vector<double> weights(vocabulary);
  for (std::uint32_t r = 0; r < vocabulary; ++r)
    weights[r] = 1.0 / std::pow(static_cast<double>(r + 1), exponent);
  const AliasTable table(weights);

  std::FILE* out = std::fopen(out_path.c_str(), "wb");
  if (out == nullptr) {
    std::perror(out_path.c_str());
    return 1;
  }
  const std::uint64_t target = mib << 20;
  std::uint64_t written = 0;
  std::string line;
  bool sentence_start = true;
  while (written < target) {
    const std::string& word = words[table.sample(rng)];
    if (sentence_start) {
      line += static_cast<char>(word[0] - 'a' + 'A');
      line.append(word, 1);
    } else {
      line += word;
    }
    const auto punctuation = rng() % 100;
    sentence_start = punctuation < 8;
    if (sentence_start) {
      line += '.';
    } else if (punctuation < 14) {
      line += ',';
    }
    if (line.size() >= 72) {
      line += '\n';
      written += line.size();
      std::fwrite(line.data(), 1, line.size(), out);
      line.clear();
    } else {
      line += ' ';
    }
  }
  if (std::fclose(out) != 0) {
    std::perror(out_path.c_str());
    return 1;
  }
  std::printf("{\"tool\": \"zipf_corpus\", \"bytes\": %llu, \"seed\": %llu, \"vocabulary\": %u}\n",
              static_cast<unsigned long long>(written), static_cast<unsigned long long>(seed),
              vocabulary);
  return 0;
}
