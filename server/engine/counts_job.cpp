#include "server/engine/counts_job.hpp"

#include <algorithm>

#include "protocol/body_io.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/piece_io.hpp"
#include "server/engine/sorted_runs.hpp"
#include "server/engine/text_split.hpp"

namespace mrd::engine {
namespace {

using protocol::BodyReader;
using protocol::BodyWriter;
using protocol::KeyCount;

/// The result order: most frequent first, ties by key in byte order.
template <class A, class B>
bool comes_first(const A& a, const B& b) {
  if (a.count != b.count) return a.count > b.count;
  return a.key < b.key;  // std::string_view and std::string compare bytes as unsigned char
}

/// A key and its count, viewing bytes owned by a CountTable.
struct CountView {
  std::string_view key;
  std::uint64_t count;
};

/// Smallest encoded entry: an empty key (its u64 length) and a u64 count.
constexpr std::size_t kMinEntryBytes = 16;

void write_counts(BodyWriter& writer, const std::vector<CountView>& entries) {
  writer.count(entries.size());
  for (const auto& entry : entries) {
    writer.bytes(entry.key);
    writer.value(entry.count);
  }
}

/// Calls add(key, count) for every entry of one encoded piece or partition.
template <class Add>
void read_counts(std::string_view bytes, Add&& add) {
  BodyReader reader(bytes);
  const auto entries = reader.count(kMinEntryBytes, kNoCountLimit, "counts");
  for (std::uint64_t i = 0; i < entries; ++i) {
    std::string key = reader.bytes(kNoCountLimit, "counted key");
    add(std::move(key), reader.value<std::uint64_t>());
  }
  reader.expect_end();
}

}  // namespace

std::size_t CountsJob::input_kind() const {
  return input_kind_of<DocumentsView>();
}

std::vector<InputView> CountsJob::split(const InputView& input, std::uint64_t chunk_bytes) const {
  return split_documents(input_as<DocumentsView>(input, mapper()), chunk_bytes, Overlap::kNone);
}

void CountsJob::validate(const InputView& input) const {
  input_as<DocumentsView>(input, mapper());  // any text can be counted
}

std::vector<std::string> CountsJob::map(const InputView& chunk, std::uint32_t partitions) const {
  check_partitions(partitions);
  CountTable counts;
  count_keys(input_as<DocumentsView>(chunk, mapper()), counts);

  std::vector<std::vector<CountView>> by_partition(partitions);
  counts.for_each([&](const CountTable::Entry& entry) {
    by_partition[partition_of(entry.hash, partitions)].push_back({entry.key(), entry.value});
  });
  std::vector<std::string> pieces(partitions);
  for (std::uint32_t p = 0; p < partitions; ++p) {
    BodyWriter writer(pieces[p]);
    write_counts(writer, by_partition[p]);
  }
  return pieces;
}

std::string CountsJob::reduce(const std::vector<std::string>& pieces) const {
  CountTable totals;
  for (const auto& piece : pieces) {
    read_intermediate("counts from a map task", [&] {
      read_counts(piece, [&](std::string key, std::uint64_t count) {
        auto& total = totals[key];
        total = combine(total, count);
      });
    });
  }
  std::vector<CountView> sorted;
  sorted.reserve(totals.size());
  totals.for_each([&](const CountTable::Entry& entry) {
    sorted.push_back({entry.key(), entry.value});
  });
  std::sort(sorted.begin(), sorted.end(), comes_first<CountView, CountView>);

  std::string partition;
  BodyWriter writer(partition);
  write_counts(writer, sorted);
  return partition;
}

protocol::JobResult CountsJob::assemble(std::vector<std::string> partitions) const {
  std::vector<std::vector<KeyCount>> runs(partitions.size());
  for (std::size_t p = 0; p < partitions.size(); ++p) {
    read_intermediate("counts from a reduce task", [&] {
      read_counts(partitions[p], [&](std::string key, std::uint64_t count) {
        runs[p].push_back(KeyCount{std::move(key), count});
      });
    });
    partitions[p] = {};  // free each partition's bytes as soon as they are decoded
  }
  return protocol::Counts{merge_sorted_runs(std::move(runs), comes_first<KeyCount, KeyCount>)};
}

}  // namespace mrd::engine
