// CountsJob: the shared half of the jobs whose result is key counts (words, bigrams).
//
// A subclass says which keys a chunk holds; this class counts them, combines the counts within
// the chunk, sends each key to its partition, sums the partitions and orders the result.
//
// Intermediate format, the same for map pieces and reduced partitions: a u64 number of entries,
// then per entry the key (u64 length and bytes) and its u64 count. Map pieces are in no particular
// order; a reduced partition is in result order (count descending, then key in byte order), so
// assemble only has to merge.
//
// An entry of a partition has the very layout of an entry of the counts result on the wire
// (protocol/counts_layout.hpp), so assemble_encoded merges the partitions' entries as views into
// their bytes and copies each one whole into the result: no key is decoded into a string.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/engine/job_kind.hpp"
#include "server/engine/key_table.hpp"

namespace mrd::engine {

class CountsJob : public JobKind {
 public:
  std::string_view reducer() const override { return "sum"; }
  std::size_t input_kind() const override;
  /// Cuts the documents between words, every word in exactly one chunk (bigrams override this).
  std::vector<InputView> split(const InputView& input, std::uint64_t chunk_bytes) const override;
  std::optional<Overlap> text_overlap() const override { return Overlap::kNone; }
  void validate(const InputView& input) const override;
  std::vector<std::string> map(const InputView& chunk, std::uint32_t partitions) const override;
  std::string reduce(const std::vector<std::string>& pieces) const override;
  /// The decoding of assemble_encoded's bytes (the server itself only needs those).
  protocol::JobResult assemble(std::vector<std::string> partitions) const override;
  /// Merges the partitions' entries straight into the result's bytes, sized once. Throws JobError
  /// if a partition is not a well-formed partition in result order.
  std::string assemble_encoded(std::vector<std::string> partitions) const override;

  /// Merges two values of the same key: their sum here; a plugin job may choose another
  /// associative, commutative operation with 0 as its identity (max, bitwise or...).
  virtual std::uint64_t combine(std::uint64_t a, std::uint64_t b) const { return a + b; }

 protected:
  using CountTable = KeyTable<std::uint64_t>;

  /// Adds one to `counts` for every key found in the chunk's documents (read in place).
  virtual void count_keys(const DocumentsView& chunk, CountTable& counts) const = 0;
};

}  // namespace mrd::engine
