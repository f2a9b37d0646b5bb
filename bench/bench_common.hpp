// Small pieces the benchmark programs share: a clock, whole-file reads, percentiles, and the
// digest that proves two word counts equal without shipping them around.
#pragma once

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mrd::bench {

using Clock = std::chrono::steady_clock;

/// Seconds between two time points, as a double.
inline double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// CPU time this process has used so far (all threads, user + system), in seconds.
inline double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

/// The whole file as bytes; throws on a read error.
inline std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::size_t>(in.tellg());
  in.seekg(0);
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    throw std::runtime_error("cannot read " + path);
  }
  return bytes;
}

/// The p-th percentile (0..100) of `values` by nearest rank; sorts `values`. 0 when empty.
inline double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = p / 100.0 * static_cast<double>(values.size());
  std::size_t index = rank <= 1 ? 0 : static_cast<std::size_t>(rank + 0.999999) - 1;
  return values[std::min(index, values.size() - 1)];
}

/// A fingerprint of a word count listed in the protocol's result order (most frequent first,
/// ties by key in byte order): FNV-1a over every key, a zero byte, the count's 8 bytes. Two
/// counts with the same digest, distinct-key count and total are, for all practical purposes,
/// the same result in the same order.
class CountsDigest {
 public:
  void add(std::string_view key, std::uint64_t count) {
    for (const char c : key)
      mix(static_cast<unsigned char>(c));
    mix(0);
    for (int i = 0; i < 8; ++i)
      mix(static_cast<unsigned char>(count >> (8 * i)));
    ++distinct_;
    total_ += count;
  }

  /// `distinct total fnv64hex`, the line both sides print.
  std::string line() const {
    char text[96];
    std::snprintf(text, sizeof text, "%llu %llu %016llx",
                  static_cast<unsigned long long>(distinct_),
                  static_cast<unsigned long long>(total_), static_cast<unsigned long long>(hash_));
    return text;
  }

  std::uint64_t distinct() const { return distinct_; }
  std::uint64_t total() const { return total_; }

 private:
  void mix(unsigned char byte) {
    hash_ ^= byte;
    hash_ *= 0x100000001b3ull;
  }

  std::uint64_t hash_ = 0xcbf29ce484222325ull;
  std::uint64_t distinct_ = 0;
  std::uint64_t total_ = 0;
};

/// Median of a few samples (copies them); 0 when empty.
inline double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/// `[a, b, c]` with full precision, for the JSON lines every tool prints.
inline std::string json_list(const std::vector<double>& values) {
  std::string out = "[";
  char number[40];
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::snprintf(number, sizeof number, "%s%.6g", i ? ", " : "", values[i]);
    out += number;
  }
  return out + "]";
}

}  // namespace mrd::bench
