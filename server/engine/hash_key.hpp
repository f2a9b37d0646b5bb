// The process-wide key of keyed_hash (keyed_hash.hpp), and how it reaches the worker processes.
//
// The server draws a random key when it starts (random_hash_key), so nobody outside can predict
// which words collide. Its workers must all use that same key, or map tasks in two workers would
// send one word to two different partitions: the server passes it in each worker's environment
// (hash_key_to_environment), and a worker installs it before its first task
// (hash_key_from_environment). A process that never sets a key uses a fixed default, so unit
// tests and in-process use are reproducible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mrd::engine {

/// A 128-bit SipHash key: k0 is its first 8 bytes read little-endian, k1 its last 8.
struct HashKey {
  std::uint64_t k0 = 0;  ///< bytes 0 to 7
  std::uint64_t k1 = 0;  ///< bytes 8 to 15
  friend bool operator==(const HashKey&, const HashKey&) = default;
};

/// The key of a process that never calls set_hash_key: the first 32 hex digits of pi's fraction.
inline constexpr HashKey kDefaultHashKey{0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL};

/// The environment variable that carries the key to a worker: 32 hex digits (format_hash_key).
inline constexpr std::string_view kHashKeyVariable = "MRD_HASH_KEY";

namespace detail {
/// The key in use. Written only by set_hash_key, before the process hashes anything or starts a
/// thread that might, so reading it needs no synchronisation.
inline HashKey current_hash_key = kDefaultHashKey;
}  // namespace detail

/// The key keyed_hash uses in this process.
inline const HashKey& hash_key() {
  return detail::current_hash_key;
}

/// Makes `key` this process's key. Call once at start, before anything is hashed and before any
/// other thread starts: hashes taken under the previous key no longer match.
void set_hash_key(const HashKey& key);

/// 16 bytes from the kernel's random source (getrandom); throws std::system_error if it fails.
HashKey random_hash_key();

/// The key's 16 bytes as 32 lower-case hex digits, first byte first.
std::string format_hash_key(const HashKey& key);

/// The key written by format_hash_key (either case), or nullopt unless `hex` is exactly 32 hex
/// digits.
std::optional<HashKey> parse_hash_key(std::string_view hex);

/// "MRD_HASH_KEY=<this process's key>", an entry for a worker's environment (posix_spawn's envp).
std::string hash_key_to_environment();

/// The key in this process's MRD_HASH_KEY, or nullopt when the variable is unset. Throws
/// std::invalid_argument when it is set but not 32 hex digits: a worker must not guess a key.
std::optional<HashKey> hash_key_from_environment();

}  // namespace mrd::engine
