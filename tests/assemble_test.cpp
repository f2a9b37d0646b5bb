// The end of a job: assemble_encoded() against the path it replaces (decode every partition into
// KeyCounts, merge them, encode the result with the codec), byte for byte; and the k-way merge
// (merge_cursors) it is built on against a plain sort.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/body_io.hpp"
#include "protocol/codec.hpp"
#include "protocol/counts_layout.hpp"
#include "protocol/fixed_bytes.hpp"
#include "server/engine/job_kind.hpp"
#include "server/engine/sorted_runs.hpp"

namespace mrd::engine {
namespace {

using protocol::Counts;
using protocol::JobResult;
using protocol::KeyCount;

constexpr std::uint64_t kMaxCount = std::numeric_limits<std::uint64_t>::max();

/// The result order: most frequent first, ties by key in byte order.
bool comes_first(const KeyCount& a, const KeyCount& b) {
  if (a.count != b.count) return a.count > b.count;
  return a.key < b.key;
}

const JobKind& job(std::string_view mapper, std::string_view reducer) {
  const JobKind* kind = find_job_kind(mapper, reducer);
  if (kind == nullptr) throw std::logic_error("no such job in the catalog");
  return *kind;
}

/// A reduced partition holding `entries` in the order given: u64 count, then per entry u64 key
/// length, key, u64 count (written here with memcpy, not with the engine's writer).
std::string partition_of(const std::vector<KeyCount>& entries) {
  std::string out;
  protocol::FixedWriter writer(out);
  writer.value<std::uint64_t>(entries.size());
  for (const auto& entry : entries) {
    writer.bytes(entry.key);
    writer.value(entry.count);
  }
  return out;
}

/// A reduced partition holding `entries` in result order.
std::string sorted_partition(std::vector<KeyCount> entries) {
  std::sort(entries.begin(), entries.end(), comes_first);
  return partition_of(entries);
}

/// The path assemble_encoded() replaces, as the server ran it before: every partition decoded
/// into KeyCounts with a cereal reader, the runs merged pairwise, the result encoded by the codec.
std::string old_assemble_encoded(const std::vector<std::string>& partitions) {
  std::vector<std::vector<KeyCount>> runs(partitions.size());
  for (std::size_t p = 0; p < partitions.size(); ++p) {
    protocol::BodyReader reader(partitions[p]);
    const auto n = reader.count(16, kMaxCount, "counts");
    for (std::uint64_t i = 0; i < n; ++i) {
      KeyCount entry;
      entry.key = reader.bytes(kMaxCount, "key");
      entry.count = reader.value<std::uint64_t>();
      runs[p].push_back(std::move(entry));
    }
    reader.expect_end();
  }
  return protocol::encode(JobResult{Counts{merge_sorted_runs(std::move(runs), comes_first)}});
}

/// Every entry of every partition, sorted into result order: what the result must hold.
Counts expected_counts(const std::vector<std::vector<KeyCount>>& partitions) {
  Counts all;
  for (const auto& partition : partitions)
    all.entries.insert(all.entries.end(), partition.begin(), partition.end());
  std::stable_sort(all.entries.begin(), all.entries.end(), comes_first);
  return all;
}

/// Checks assemble_encoded() of `partitions` (each sorted here) for every counts job: the same
/// bytes as the old path, decoding to every entry in result order, and assemble() agreeing.
void expect_same_result(const std::vector<std::vector<KeyCount>>& partitions) {
  std::vector<std::string> encoded;
  for (const auto& partition : partitions)
    encoded.push_back(sorted_partition(partition));
  const std::string old_bytes = old_assemble_encoded(encoded);
  for (const auto* kind : {&job("words", "sum"), &job("bigrams", "sum")}) {
    SCOPED_TRACE(std::string(kind->mapper()));
    const std::string new_bytes = kind->assemble_encoded(encoded);
    EXPECT_EQ(new_bytes, old_bytes);
    const auto decoded = protocol::decode<JobResult>(new_bytes);
    ASSERT_TRUE(decoded) << decoded.error;
    EXPECT_EQ(*decoded.value, JobResult{expected_counts(partitions)});
    EXPECT_EQ(kind->assemble(encoded), *decoded.value);
  }
}

/// `n` entries with random keys (of length 0 to `max_key`, any bytes) and counts (mostly small,
/// so that ties are common; sometimes near 2^64).
std::vector<KeyCount> random_entries(std::mt19937_64& random, std::size_t n, std::size_t max_key) {
  std::vector<KeyCount> entries(n);
  for (auto& entry : entries) {
    entry.key.resize(random() % (max_key + 1));
    for (auto& c : entry.key)
      c = static_cast<char>(random() % 4 == 0 ? random() : 'a' + random() % 3);
    switch (random() % 4) {
      case 0: entry.count = kMaxCount - random() % 3; break;
      case 1: entry.count = random(); break;
      default: entry.count = random() % 4; break;
    }
  }
  return entries;
}

TEST(AssembleEncoded, NoPartitionsOrEmptyOnesGiveEmptyCounts) {
  expect_same_result({});
  expect_same_result({{}});
  expect_same_result({{}, {}, {}, {}, {}});
  EXPECT_EQ(job("words", "sum").assemble_encoded({partition_of({})}),
            std::string("\x00\x00\x00\x00\x00\x00\x00\x00\x00", protocol::kCountsHeadBytes));
}

TEST(AssembleEncoded, OnePartition) {
  expect_same_result({{{"to", 2}, {"be", 2}, {"or", 1}, {"not", 1}}});
}

TEST(AssembleEncoded, KeysOfEveryLengthAndCountsNearTheTop) {
  const std::string eight = "12345678", nine = "123456789", long_key(5000, 'k');
  expect_same_result({
      {{"", 3}, {eight, kMaxCount}, {nine, 0}},
      {{long_key, kMaxCount - 1}, {"", 0}, {std::string("\xff\x00", 2), 3}},
      {},
      {{std::string(1, '\0'), kMaxCount}, {long_key + "x", 3}, {nine + eight, 1ull << 63}},
  });
}

TEST(AssembleEncoded, KeysCompareAsUnsignedBytes) {
  // 0x80 and above sort after ASCII: a signed comparison would put them first.
  expect_same_result({{{"\x80", 1}, {"z", 1}}, {{"\xff", 1}, {"a", 1}, {"~", 1}}});
}

TEST(AssembleEncoded, ManyPartitionsOfRandomEntries) {
  std::mt19937_64 random(7);
  for (const std::size_t partitions : {2u, 3u, 7u, 64u}) {
    SCOPED_TRACE(partitions);
    std::vector<std::vector<KeyCount>> input(partitions);
    for (auto& partition : input)
      partition = random_entries(random, random() % 300, random() % 2 ? 12 : 40);
    expect_same_result(input);
  }
}

TEST(AssembleEncoded, TheSameKeyInTwoPartitionsIsKeptTwice) {
  // Never made by a reduce task (a key has one partition), but accepted as before.
  expect_same_result({{{"a", 5}, {"b", 1}}, {{"a", 5}, {"b", 2}}});
}

TEST(AssembleEncoded, RealJobsGiveTheOldBytes) {
  const std::vector<std::string> texts = {
      "to be or not to be that is the question", "", "the the the a a b",
      "Ünïcode wörds and \xff\xfe bytes, to be sure", std::string(300, 'x') + " to be"};
  protocol::Documents documents;
  for (std::size_t i = 0; i < texts.size(); ++i)
    documents.documents.push_back({"d" + std::to_string(i), texts[i]});
  const protocol::JobInput input{documents};
  for (const auto* kind : {&job("words", "sum"), &job("bigrams", "sum")}) {
    for (const std::uint32_t partitions : {1u, 2u, 5u}) {
      SCOPED_TRACE(std::string(kind->mapper()) + " " + std::to_string(partitions));
      std::vector<std::vector<std::string>> grouped(partitions);
      for (const auto& chunk : kind->split(view_of(input), 16)) {
        auto pieces = kind->map(chunk, partitions);
        for (std::uint32_t p = 0; p < partitions; ++p)
          grouped[p].push_back(std::move(pieces[p]));
      }
      std::vector<std::string> reduced;
      for (const auto& pieces : grouped)
        reduced.push_back(kind->reduce(pieces));
      EXPECT_EQ(kind->assemble_encoded(reduced), old_assemble_encoded(reduced));
    }
  }
}

TEST(AssembleEncoded, OtherJobsEncodeWhatAssembleGives) {
  const JobKind& index = job("index", "postings");
  const protocol::JobInput input{protocol::Documents{{{"a", "x y"}, {"b", "y z"}}}};
  std::vector<std::string> reduced;
  for (const auto& chunk : index.split(view_of(input), 1 << 20))
    for (auto& piece : index.map(chunk, 2))
      reduced.push_back(index.reduce({std::move(piece)}));
  EXPECT_EQ(index.assemble_encoded(reduced), protocol::encode(index.assemble(reduced)));
}

TEST(AssembleEncoded, RefusesPartitionsThatAreNotWellFormed) {
  const std::string good = sorted_partition({{"be", 2}, {"to", 2}, {"or", 1}});
  const std::string lying_count("\xff\xff\xff\xff\xff\xff\xff\x7f", 8);  // 2^63 entries
  std::string long_key = good;
  long_key[8] = '\x7f';  // the first key's length runs past the end
  const std::vector<std::string> bad = {
      "", good.substr(0, good.size() - 1), good + "x", lying_count, long_key, "abc"};
  const JobKind& words = job("words", "sum");
  for (const auto& partition : bad) {
    EXPECT_THROW(words.assemble_encoded({good, partition}), JobError);
    EXPECT_THROW(words.assemble({partition}), JobError);
  }
}

TEST(AssembleEncoded, RefusesPartitionsOutOfResultOrder) {
  const JobKind& words = job("words", "sum");
  for (const auto& entries : std::vector<std::vector<KeyCount>>{
           {{"a", 1}, {"b", 2}},               // a count rising
           {{"b", 1}, {"a", 1}},               // keys falling within a count
           {{"a", 3}, {"c", 2}, {"b", 2}}}) {  // the same, further on
    try {
      words.assemble_encoded({partition_of(entries)});
      ADD_FAILURE() << "out of order accepted";
    } catch (const JobError& e) {
      EXPECT_NE(std::string(e.what()).find("out of result order"), std::string::npos) << e.what();
    }
  }
  // Equal neighbours are in order.
  EXPECT_NO_THROW(words.assemble_encoded({partition_of({{"a", 1}, {"a", 1}})}));
}

// --- merge_cursors ---

/// A cursor over a vector of ints.
class IntCursor {
 public:
  explicit IntCursor(const std::vector<int>& run) : at_(run.begin()), end_(run.end()) {}
  bool done() const { return at_ == end_; }
  int head() const { return *at_; }
  void advance() { ++at_; }

 private:
  std::vector<int>::const_iterator at_, end_;
};

std::vector<int> merged(const std::vector<std::vector<int>>& runs) {
  std::vector<IntCursor> cursors;
  for (const auto& run : runs)
    cursors.emplace_back(run);
  std::vector<int> out;
  merge_cursors(std::move(cursors), std::less<>{}, [&](int v) { out.push_back(v); });
  return out;
}

TEST(MergeCursors, NoRunsAndEmptyRuns) {
  EXPECT_EQ(merged({}), std::vector<int>{});
  EXPECT_EQ(merged({{}, {}}), std::vector<int>{});
  EXPECT_EQ(merged({{}, {1, 2}, {}}), (std::vector<int>{1, 2}));
}

TEST(MergeCursors, EqualsASortOfEverything) {
  std::mt19937 random(3);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::vector<int>> runs(1 + random() % 20);
    std::vector<int> all;
    for (auto& run : runs) {
      run.resize(random() % 30);
      for (int& v : run)
        v = static_cast<int>(random() % 10);
      std::sort(run.begin(), run.end());
      all.insert(all.end(), run.begin(), run.end());
    }
    std::sort(all.begin(), all.end());
    EXPECT_EQ(merged(runs), all);
  }
}

}  // namespace
}  // namespace mrd::engine
