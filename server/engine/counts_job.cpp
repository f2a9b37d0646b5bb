#include "server/engine/counts_job.hpp"

#include <algorithm>
#include <cstring>

#include "protocol/body_io.hpp"
#include "protocol/codec.hpp"
#include "protocol/counts_layout.hpp"
#include "protocol/fixed_bytes.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/piece_io.hpp"
#include "server/engine/sorted_runs.hpp"
#include "server/engine/text_split.hpp"

namespace mrd::engine {
namespace {

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
static_assert(kMinEntryBytes == protocol::kCountEntryFixedBytes,
              "a partition's entries are the result's entries, byte for byte");

/// Bytes before a piece's or partition's first entry: its u64 number of entries.
constexpr std::size_t kEntriesHeadBytes = sizeof(std::uint64_t);

/// A piece or partition: the u64 number of entries, then each entry (u64 key length, the key,
/// u64 count), written with plain stores into a string sized once: a map task writes one entry
/// per distinct word of its chunk.
std::string encode_counts(const std::vector<CountView>& entries) {
  std::size_t bytes = kEntriesHeadBytes;
  for (const auto& entry : entries)
    bytes += kMinEntryBytes + entry.key.size();
  std::string out;
  out.reserve(bytes);
  protocol::FixedWriter writer(out);
  writer.value<std::uint64_t>(entries.size());
  for (const auto& entry : entries) {
    writer.bytes(entry.key);
    writer.value<std::uint64_t>(entry.count);
  }
  return out;
}

/// Calls add(key, count) for every entry of one encoded piece or partition; `key` views `bytes`.
template <class Add>
void read_counts(std::string_view bytes, Add&& add) {
  protocol::FixedReader reader(bytes, "counts");
  const auto entries = reader.value<std::uint64_t>();
  if (entries > reader.remaining() / kMinEntryBytes) {
    throw protocol::DecodeError("counts: count larger than the body holds");
  }
  for (std::uint64_t i = 0; i < entries; ++i) {
    const auto key = reader.take(reader.value<std::uint64_t>());
    add(key, reader.value<std::uint64_t>());
  }
  reader.expect_end();
}

/// One entry of a reduced partition, viewed in place.
struct EncodedEntry {
  std::string_view key;
  std::uint64_t count;
  std::string_view encoded;  ///< the whole entry: u64 key length, key, u64 count
};

/// Checks a reduced partition: its layout, every length against the bytes, and the result order
/// the merge relies on (equal neighbours allowed). Returns its number of entries.
std::uint64_t check_partition(std::string_view partition) {
  protocol::FixedReader reader(partition, "partition");
  const auto entries = reader.value<std::uint64_t>();
  if (entries > reader.remaining() / kMinEntryBytes) {
    throw protocol::DecodeError("partition: count larger than the body holds");
  }
  CountView previous{};
  for (std::uint64_t i = 0; i < entries; ++i) {
    const auto key_bytes = reader.value<std::uint64_t>();
    CountView entry{reader.take(key_bytes), 0};
    entry.count = reader.value<std::uint64_t>();
    if (i > 0 && comes_first(entry, previous)) {
      throw protocol::DecodeError("partition: entries out of result order");
    }
    previous = entry;
  }
  reader.expect_end();
  return entries;
}

/// Reads the entries of a partition check_partition() accepted, front to back.
class PartitionCursor {
 public:
  /// `entries`: the partition without its head.
  explicit PartitionCursor(std::string_view entries)
      : at_(entries.data()), end_(entries.data() + entries.size()) {
    if (!done()) read_head();
  }

  bool done() const { return at_ == end_; }
  const EncodedEntry& head() const { return head_; }
  void advance() {
    at_ += head_.encoded.size();
    if (!done()) read_head();
  }

 private:
  void read_head() {
    std::uint64_t key_bytes;
    std::memcpy(&key_bytes, at_, sizeof key_bytes);
    const char* key = at_ + sizeof key_bytes;
    head_.key = {key, static_cast<std::size_t>(key_bytes)};
    std::memcpy(&head_.count, key + key_bytes, sizeof head_.count);
    head_.encoded = {at_, static_cast<std::size_t>(key_bytes) + kMinEntryBytes};
  }

  const char* at_;   ///< the head's first byte
  const char* end_;  ///< one past the partition's last byte
  EncodedEntry head_{};
};

}  // namespace

std::size_t CountsJob::input_kind() const {
  return input_kind_of<DocumentsView>();
}

std::vector<InputView> CountsJob::split(const InputView& input, std::uint64_t chunk_bytes) const {
  return split_documents(input_as<DocumentsView>(input, mapper()), chunk_bytes, *text_overlap());
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
  for (std::uint32_t p = 0; p < partitions; ++p)
    pieces[p] = encode_counts(by_partition[p]);
  return pieces;
}

std::string CountsJob::reduce(const std::vector<std::string>& pieces) const {
  // At least as many keys as the biggest piece has entries: the table is sized once for those,
  // not doubled up to them (a lying count is capped by the bytes that could hold it).
  std::size_t expected = 0;
  for (const auto& piece : pieces) {
    std::uint64_t entries = 0;
    if (piece.size() >= kEntriesHeadBytes) std::memcpy(&entries, piece.data(), sizeof entries);
    expected = std::max<std::size_t>(
        expected, std::min<std::uint64_t>(entries, piece.size() / kMinEntryBytes));
  }
  CountTable totals(expected);
  for (const auto& piece : pieces) {
    read_intermediate("counts from a map task", [&] {
      read_counts(piece, [&](std::string_view key, std::uint64_t count) {
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

  return encode_counts(sorted);
}

protocol::JobResult CountsJob::assemble(std::vector<std::string> partitions) const {
  auto decoded = protocol::decode<protocol::JobResult>(assemble_encoded(std::move(partitions)));
  if (!decoded) throw JobError("assembled counts do not decode: " + decoded.error);
  return std::move(*decoded.value);
}

std::string CountsJob::assemble_encoded(std::vector<std::string> partitions) const {
  std::uint64_t entries = 0;
  std::size_t result_bytes = protocol::kCountsHeadBytes;
  std::vector<PartitionCursor> cursors;
  cursors.reserve(partitions.size());
  read_intermediate("counts from a reduce task", [&] {
    for (const std::string& partition : partitions) {
      entries += check_partition(partition);
      const auto entry_bytes = std::string_view(partition).substr(kEntriesHeadBytes);
      result_bytes += entry_bytes.size();  // copied as they are
      cursors.emplace_back(entry_bytes);
    }
  });

  std::string result;
  result.reserve(result_bytes);
  protocol::FixedWriter writer(result);
  protocol::write_counts_head(writer, entries);
  merge_cursors(std::move(cursors), comes_first<EncodedEntry, EncodedEntry>,
                [&](const EncodedEntry& entry) { writer.raw(entry.encoded); });
  return result;
}

}  // namespace mrd::engine
