// A hash of bytes that every process computes the same way, and the partition it picks.
//
// Map tasks run in different worker processes, and each must send a key to the same reduce
// partition, so the hash may depend on nothing but the key's bytes: no seed, no std::hash (whose
// value the standard does not pin down). It reads eight bytes at a time, which keeps it cheap for
// the word-count hot path.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mrd::engine {

/// Mixes all 64 bits of `h` into all others (MurmurHash3's finaliser).
constexpr std::uint64_t mix64(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

/// A well-mixed 64-bit hash of `bytes`, the same in every process and every build.
inline std::uint64_t stable_hash(std::string_view bytes) {
  constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  std::uint64_t h = bytes.size() * kGolden;
  while (left >= 8) {
    std::uint64_t block;
    std::memcpy(&block, p, 8);  // the protocol already requires a little-endian host
    h = std::rotl((h ^ block) * kGolden, 31);
    p += 8;
    left -= 8;
  }
  // The last 0 to 7 bytes without a byte loop: two overlapping 4-byte loads cover 4 to 7 bytes,
  // the first, middle and last byte cover 1 to 3. Either way every byte is read, and keys of
  // different lengths already differ in `h`.
  std::uint64_t tail = 0;
  if (left >= 4) {
    std::uint32_t first, last;
    std::memcpy(&first, p, 4);
    std::memcpy(&last, p + left - 4, 4);
    tail = (std::uint64_t{last} << 32) | first;
  } else if (left > 0) {
    const auto byte = [&](std::size_t i) {
      return std::uint64_t{static_cast<unsigned char>(p[i])};
    };
    tail = (byte(0) << 16) | (byte(left / 2) << 8) | byte(left - 1);
  }
  return mix64((h ^ tail) * kGolden);
}

/// The reduce partition of a key with this hash.
constexpr std::uint32_t partition_of(std::uint64_t hash, std::uint32_t partitions) {
  return static_cast<std::uint32_t>(hash % partitions);
}

}  // namespace mrd::engine
