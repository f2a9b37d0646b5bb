// index + postings: for each word, the sorted names of the documents it occurs in.
//
// Intermediate format, the same for map pieces and reduced partitions: a u64 number of words,
// then per word the word (u64 length and bytes), a u64 number of document names and the names
// (each a u64 length and bytes). A reduced partition is sorted by word, each word's names sorted
// and without duplicates, so assemble only has to merge.
#include <algorithm>

#include "protocol/body_io.hpp"
#include "server/engine/builtin_jobs.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/key_table.hpp"
#include "server/engine/piece_io.hpp"
#include "server/engine/sorted_runs.hpp"
#include "server/engine/text_split.hpp"
#include "server/engine/tokenizer.hpp"

namespace mrd::engine {
namespace {

using protocol::BodyReader;
using protocol::BodyWriter;
using protocol::Posting;

/// Smallest encoded posting: an empty word and no names (two u64 counts).
constexpr std::size_t kMinPostingBytes = 16;
/// Smallest encoded name: an empty one (its u64 length).
constexpr std::size_t kMinNameBytes = 8;

void write_posting(BodyWriter& writer, std::string_view word,
                   const std::vector<std::string_view>& names) {
  writer.bytes(word);
  writer.count(names.size());
  for (const auto name : names) {
    writer.bytes(name);
  }
}

/// Calls add(word, names) for every posting of one encoded piece or partition.
template <class Add>
void read_postings(std::string_view bytes, Add&& add) {
  BodyReader reader(bytes);
  const auto postings = reader.count(kMinPostingBytes, kNoCountLimit, "postings");
  for (std::uint64_t i = 0; i < postings; ++i) {
    std::string word = reader.bytes(kNoCountLimit, "indexed word");
    const auto name_count = reader.count(kMinNameBytes, kNoCountLimit, "document names");
    std::vector<std::string> names;
    names.reserve(static_cast<std::size_t>(name_count));
    for (std::uint64_t n = 0; n < name_count; ++n) {
      names.push_back(reader.bytes(kNoCountLimit, "document name"));
    }
    add(std::move(word), std::move(names));
  }
  reader.expect_end();
}

class InvertedIndex final : public JobKind {
 public:
  std::string_view mapper() const override { return "index"; }
  std::string_view reducer() const override { return "postings"; }
  std::size_t input_kind() const override { return input_kind_of<DocumentsView>(); }

  void validate(const InputView& input) const override {
    input_as<DocumentsView>(input, mapper());  // any text can be indexed
  }

  std::vector<InputView> split(const InputView& input, std::uint64_t chunk_bytes) const override {
    return split_documents(input_as<DocumentsView>(input, mapper()), chunk_bytes, *text_overlap());
  }
  std::optional<Overlap> text_overlap() const override { return Overlap::kNone; }

  std::vector<std::string> map(const InputView& chunk, std::uint32_t partitions) const override {
    check_partitions(partitions);
    const auto& documents = input_as<DocumentsView>(chunk, mapper()).documents;

    // Each word's documents, as indexes into `documents`, in order and without repeats.
    using Occurrences = KeyTable<std::vector<std::uint32_t>>;
    Occurrences occurrences;
    std::string scratch;
    for (std::uint32_t d = 0; d < documents.size(); ++d) {
      for_each_word(documents[d].text, scratch, [&](std::string_view word) {
        auto& found_in = occurrences[word];
        if (found_in.empty() || found_in.back() != d) found_in.push_back(d);
      });
    }

    std::vector<std::vector<const Occurrences::Entry*>> by_partition(partitions);
    occurrences.for_each([&](const Occurrences::Entry& entry) {
      by_partition[partition_of(entry.hash, partitions)].push_back(&entry);
    });
    std::vector<std::string> pieces(partitions);
    std::vector<std::string_view> names;
    for (std::uint32_t p = 0; p < partitions; ++p) {
      BodyWriter writer(pieces[p]);
      writer.count(by_partition[p].size());
      for (const auto* entry : by_partition[p]) {
        names.clear();
        for (const std::uint32_t d : entry->value) {
          names.push_back(documents[d].name);
        }
        write_posting(writer, entry->key(), names);
      }
    }
    return pieces;
  }

  std::string reduce(const std::vector<std::string>& pieces) const override {
    using NamesOf = KeyTable<std::vector<std::string>>;
    NamesOf names_of;
    for (const auto& piece : pieces) {
      read_intermediate("postings from a map task", [&] {
        read_postings(piece, [&](std::string word, std::vector<std::string> names) {
          auto& all = names_of[word];
          all.insert(all.end(), std::make_move_iterator(names.begin()),
                     std::make_move_iterator(names.end()));
        });
      });
    }

    std::vector<NamesOf::Entry*> by_word;
    by_word.reserve(names_of.size());
    names_of.for_each([&](NamesOf::Entry& entry) { by_word.push_back(&entry); });
    std::sort(by_word.begin(), by_word.end(),
              [](const NamesOf::Entry* a, const NamesOf::Entry* b) { return a->key() < b->key(); });

    std::string partition;
    BodyWriter writer(partition);
    writer.count(by_word.size());
    std::vector<std::string_view> names;
    for (auto* entry : by_word) {
      // A document cut into several chunks, or two documents with one name, list a name twice.
      auto& all = entry->value;
      std::sort(all.begin(), all.end());
      all.erase(std::unique(all.begin(), all.end()), all.end());
      names.assign(all.begin(), all.end());
      write_posting(writer, entry->key(), names);
    }
    return partition;
  }

  protocol::JobResult assemble(std::vector<std::string> partitions) const override {
    std::vector<std::vector<Posting>> runs(partitions.size());
    for (std::size_t p = 0; p < partitions.size(); ++p) {
      read_intermediate("postings from a reduce task", [&] {
        read_postings(partitions[p], [&](std::string word, std::vector<std::string> names) {
          runs[p].push_back(Posting{std::move(word), std::move(names)});
        });
      });
      partitions[p] = {};  // free each partition's bytes as soon as they are decoded
    }
    const auto by_word = [](const Posting& a, const Posting& b) { return a.word < b.word; };
    return protocol::Postings{merge_sorted_runs(std::move(runs), by_word)};
  }
};

}  // namespace

const JobKind& inverted_index_job() {
  static const InvertedIndex job;
  return job;
}

}  // namespace mrd::engine
