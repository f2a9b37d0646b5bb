// The hash of keys (words, bigrams, values) that KeyTable probes with and that picks a key's
// reduce partition.
//
// It is keyed, SipHash-1-3 under the process's 128-bit HashKey (hash_key.hpp): an unkeyed hash
// lets anyone precompute words that all collide, and a few megabytes of them turn every table
// lookup into a walk along one probe chain (a word count 40 times slower, holding workers other
// clients wait for). With a random key drawn at server start, collisions cannot be found offline.
// Map tasks run in different worker processes and must send each key to the same partition, so
// every process of one server shares the key (the server hands it to its workers); results do
// not depend on the key, since every job orders its output by key or value, not by partition.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "server/engine/hash_key.hpp"
#include "server/engine/siphash.hpp"

namespace mrd::engine {

/// A 64-bit hash of `bytes` under this process's key: the same in every process of one server.
inline std::uint64_t keyed_hash(std::string_view bytes) {
  const HashKey& key = hash_key();
  return siphash<1, 3>(key.k0, key.k1, bytes);
}

/// keyed_hash(bytes), for bytes followed in memory by at least 8 zero bytes (as the word-count
/// kernel lays its words out): the same value, without a branch on the length of the tail.
inline std::uint64_t keyed_hash_zero_padded(std::string_view bytes) {
  const HashKey& key = hash_key();
  return siphash_zero_padded<1, 3>(key.k0, key.k1, bytes);
}

/// keyed_hash of the 8 little-endian bytes of `bits` (a double's bits, for instance).
inline std::uint64_t keyed_hash_of_bits(std::uint64_t bits) {
  char bytes[8];
  std::memcpy(bytes, &bits, 8);  // little-endian host assumed, as everywhere
  return keyed_hash(std::string_view(bytes, 8));
}

/// The reduce partition of a key with this hash.
constexpr std::uint32_t partition_of(std::uint64_t hash, std::uint32_t partitions) {
  return static_cast<std::uint32_t>(hash % partitions);
}

}  // namespace mrd::engine
