// numbers + stats: count, mean, median, mode, min and max of a list of numbers.
//
// Map turns a chunk into sorted (value, count) pairs and sends each distinct value to the
// partition picked by the hash of its bits; reduce merges a partition's pairs; assemble merges the
// partitions into one sorted list of distinct values, from which every statistic is one walk.
//
// Intermediate format, the same for map pieces and reduced partitions: a u64 number of pairs, then
// per pair the f64 value and its u64 count, values strictly increasing.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

#include "protocol/body_io.hpp"
#include "server/engine/builtin_jobs.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/keyed_hash.hpp"
#include "server/engine/piece_io.hpp"
#include "server/engine/sorted_runs.hpp"

namespace mrd::engine {
namespace {

using protocol::BodyReader;
using protocol::BodyWriter;

/// A distinct value and how often it occurs.
struct ValueCount {
  double value;
  std::uint64_t count;
};

/// An encoded pair: f64 and u64.
constexpr std::size_t kPairBytes = 16;

bool by_value(const ValueCount& a, const ValueCount& b) {
  return a.value < b.value;
}

/// Sorted values to (value, count) pairs. -0.0 == 0.0, so both become one value, 0.0.
std::vector<ValueCount> count_sorted(const std::vector<double>& sorted) {
  std::vector<ValueCount> pairs;
  for (const double value : sorted) {
    if (!pairs.empty() && pairs.back().value == value) {
      ++pairs.back().count;
    } else {
      pairs.push_back({value == 0.0 ? 0.0 : value, 1});
    }
  }
  return pairs;
}

/// Adds up the counts of equal neighbours in a list sorted by value.
std::vector<ValueCount> combine_equal(std::vector<ValueCount> sorted) {
  std::vector<ValueCount> combined;
  combined.reserve(sorted.size());
  for (const auto& pair : sorted) {
    if (!combined.empty() && combined.back().value == pair.value) {
      combined.back().count += pair.count;
    } else {
      combined.push_back(pair);
    }
  }
  return combined;
}

void write_pairs(BodyWriter& writer, const std::vector<ValueCount>& pairs) {
  writer.count(pairs.size());
  for (const auto& pair : pairs) {
    writer.value(pair.value);
    writer.value(pair.count);
  }
}

/// One encoded list of pairs, checked: no NaN, values strictly increasing.
std::vector<ValueCount> read_pairs(std::string_view bytes) {
  BodyReader reader(bytes);
  std::vector<ValueCount> pairs(
      static_cast<std::size_t>(reader.count(kPairBytes, kNoCountLimit, "value counts")));
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    pairs[i].value = reader.value<double>();
    pairs[i].count = reader.value<std::uint64_t>();
    // Merging trusts the order, and NaN has none: either would spoil the result silently.
    if (std::isnan(pairs[i].value)) throw protocol::DecodeError("NaN among the values");
    if (i > 0 && !(pairs[i - 1].value < pairs[i].value)) {
      throw protocol::DecodeError("values out of order");
    }
  }
  reader.expect_end();
  return pairs;
}

/// The value at 0-based position `index` of the full sorted list the pairs stand for.
double value_at(const std::vector<ValueCount>& pairs, std::uint64_t index) {
  for (const auto& pair : pairs) {
    if (index < pair.count) return pair.value;
    index -= pair.count;
  }
  throw JobError("statistics: position beyond the end of the values");  // callers never ask
}

protocol::Statistics summarise(const std::vector<ValueCount>& pairs) {
  protocol::Statistics stats;
  for (const auto& pair : pairs) {
    stats.count += pair.count;
  }
  if (stats.count == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    stats.mean = stats.median = stats.mode = stats.min = stats.max = nan;
    return stats;
  }
  // long double keeps 64 bits of mantissa and a wider exponent, so adding many doubles loses
  // little and a sum of large values does not overflow to infinity.
  long double sum = 0;
  for (const auto& pair : pairs) {
    sum += static_cast<long double>(pair.value) * pair.count;
  }
  stats.mean = static_cast<double>(sum / static_cast<long double>(stats.count));

  const double lower = value_at(pairs, (stats.count - 1) / 2);
  const double upper = value_at(pairs, stats.count / 2);
  stats.median = lower == upper ? lower : std::midpoint(lower, upper);  // midpoint cannot overflow

  const ValueCount* mode = &pairs.front();
  for (const auto& pair : pairs) {
    if (pair.count > mode->count) mode = &pair;  // strictly more: ties keep the smaller value
  }
  stats.mode = mode->value;
  stats.min = pairs.front().value;
  stats.max = pairs.back().value;
  return stats;
}

class Statistics final : public JobKind {
 public:
  std::string_view mapper() const override { return "numbers"; }
  std::string_view reducer() const override { return "stats"; }
  std::size_t input_kind() const override { return input_kind_of<NumbersView>(); }

  void validate(const InputView& input) const override {
    const auto values = input_as<NumbersView>(input, mapper()).values;
    const auto nan =
        std::find_if(values.begin(), values.end(), [](double v) { return std::isnan(v); });
    if (nan != values.end()) {
      throw JobError("input contains NaN at position " + std::to_string(nan - values.begin()));
    }
  }

  std::vector<InputView> split(const InputView& input, std::uint64_t chunk_bytes) const override {
    const auto values = input_as<NumbersView>(input, mapper()).values;
    const std::uint64_t per_chunk = std::max<std::uint64_t>(1, chunk_bytes / sizeof(double));
    std::vector<InputView> chunks;
    for (std::size_t start = 0; start < values.size(); start += per_chunk) {
      const std::size_t count =
          values.size() - start <= per_chunk ? values.size() - start : per_chunk;
      chunks.emplace_back(NumbersView{values.subspan(start, count)});
    }
    if (chunks.empty()) chunks.emplace_back(NumbersView{values});  // no numbers: one empty chunk
    return chunks;
  }

  std::vector<std::string> map(const InputView& chunk, std::uint32_t partitions) const override {
    check_partitions(partitions);
    validate(chunk);  // sorting with a NaN in the list is undefined behaviour
    const auto values = std::get<NumbersView>(chunk).values;
    std::vector<double> sorted(values.begin(), values.end());  // the chunk itself is read-only
    std::sort(sorted.begin(), sorted.end());

    std::vector<std::vector<ValueCount>> by_partition(partitions);
    for (const auto& pair : count_sorted(sorted)) {
      // Hash the bits, not the value: they are the same in every process. Keyed like words, so
      // values cannot be chosen to crowd one partition.
      const auto hash = keyed_hash_of_bits(std::bit_cast<std::uint64_t>(pair.value));
      by_partition[partition_of(hash, partitions)].push_back(pair);  // stays sorted
    }
    std::vector<std::string> pieces(partitions);
    for (std::uint32_t p = 0; p < partitions; ++p) {
      BodyWriter writer(pieces[p]);
      write_pairs(writer, by_partition[p]);
    }
    return pieces;
  }

  std::string reduce(const std::vector<std::string>& pieces) const override {
    std::vector<std::vector<ValueCount>> runs;
    runs.reserve(pieces.size());
    for (const auto& piece : pieces) {
      runs.push_back(
          read_intermediate("value counts from a map task", [&] { return read_pairs(piece); }));
    }
    std::string partition;
    BodyWriter writer(partition);
    write_pairs(writer, combine_equal(merge_sorted_runs(std::move(runs), by_value)));
    return partition;
  }

  protocol::JobResult assemble(std::vector<std::string> partitions) const override {
    std::vector<std::vector<ValueCount>> runs;
    runs.reserve(partitions.size());
    for (auto& partition : partitions) {
      runs.push_back(read_intermediate("value counts from a reduce task",
                                       [&] { return read_pairs(partition); }));
      partition = {};
    }
    // Partitions hold disjoint values, but combining costs one pass and makes no assumption.
    return summarise(combine_equal(merge_sorted_runs(std::move(runs), by_value)));
  }
};

}  // namespace

const JobKind& statistics_job() {
  static const Statistics job;
  return job;
}

}  // namespace mrd::engine
