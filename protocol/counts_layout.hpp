// The wire layout of a counts result (result kind 0), for writers that build its bytes directly
// instead of encoding a protocol::Counts value (a job's last step, which merges partitions whose
// entries are already in this layout).
//
// The body: u8 result kind 0, u64 number of entries, then per entry a u64 key length, the key's
// bytes and its u64 count, all little-endian (docs/protocol.md, "Results"). codec.cpp's encoding
// of protocol::Counts gives the same bytes; tests/assemble_test.cpp checks that they agree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <variant>

#include "protocol/fixed_bytes.hpp"
#include "protocol/messages.hpp"

namespace mrd::protocol {

/// The result kind byte of a counts result: Counts' index in JobResult.
inline constexpr std::uint8_t kCountsResultKind = 0;
static_assert(std::is_same_v<std::variant_alternative_t<kCountsResultKind, JobResult>, Counts>);

/// Bytes before the first entry: the result kind and the u64 number of entries.
inline constexpr std::size_t kCountsHeadBytes = 1 + sizeof(std::uint64_t);

/// Bytes of an entry besides its key: the u64 key length before it and the u64 count after it.
inline constexpr std::size_t kCountEntryFixedBytes = 2 * sizeof(std::uint64_t);

/// Writes the head of a counts result of `entries` entries; the caller writes them after it.
inline void write_counts_head(FixedWriter& writer, std::uint64_t entries) {
  writer.value(kCountsResultKind);
  writer.value(entries);
}

}  // namespace mrd::protocol
