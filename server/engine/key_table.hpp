// KeyTable: a hash table from byte-string keys to values, built for counting words.
//
// The map hot path looks up every word of the input, so the table avoids what makes
// std::unordered_map<std::string, ...> slow there: no allocation per key (a key longer than 8
// bytes is copied into a KeyArena when first seen), no node per entry, and no pointer to chase
// before the first comparison: entries live in the slots themselves (open addressing with linear
// probing), and each keeps its full hash, so a probe compares key bytes only when the key is
// almost surely the one it looks for. A key of at most 8 bytes (most words) is kept inside its
// slot, so finding it touches one cache line; a caller that knows the hashes of the next keys
// ahead of time can prefetch their slots (WordCounter does, for 16 words at a time). Linear
// probing is only as good as the hash: keyed_hash's secret key is what keeps a client from
// sending words that all share one probe chain.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "server/engine/key_arena.hpp"
#include "server/engine/keyed_hash.hpp"

namespace mrd::engine {

template <class Value>
class KeyTable {
  /// Keys of at most this many bytes live in their slot rather than in the arena.
  static constexpr std::size_t kInlineBytes = 8;
  /// Entry::size_ of a free slot.
  static constexpr std::uint64_t kFree = ~std::uint64_t{0};

 public:
  /// One key and its value, in its slot. Entries move when the table grows: a pointer to one, or
  /// a view of a short key, is valid until the next insertion.
  class alignas(32) Entry {  // so that a 32-byte entry (a count's) never straddles cache lines
   public:
    std::uint64_t hash = 0;  ///< keyed_hash(key()), kept so callers can partition without rehashing
    Value value{};

    /// The key's bytes: in the slot (8 bytes or fewer) or in the table's arena.
    std::string_view key() const {
      if (size_ <= kInlineBytes) return {reinterpret_cast<const char*>(&bytes_), size_};
      return {std::bit_cast<const char*>(bytes_), size_};
    }

   private:
    friend class KeyTable;

    bool is_free() const { return size_ == kFree; }

    std::uint64_t size_ = kFree;  ///< of the key; kFree marks a free slot
    /// The key itself, zero-padded, if it has at most 8 bytes; else the address of its bytes.
    std::uint64_t bytes_ = 0;
  };

  /// An empty table with room for about `expected_keys` keys before it first grows.
  explicit KeyTable(std::size_t expected_keys = 0) {
    std::size_t capacity = kMinCapacity;
    while (capacity * kMaxLoadNumerator < expected_keys * kMaxLoadDenominator)
      capacity *= 2;
    resize(capacity);
  }

  /// The value for `key`, inserted value-initialised (with a copy of the key) if absent.
  Value& operator[](std::string_view key) { return find_or_insert(key, keyed_hash(key)); }

  /// As operator[], for a caller that already has keyed_hash(key).
  Value& find_or_insert(std::string_view key, std::uint64_t hash) {
    return find_or_insert(key, hash, key.size() <= kInlineBytes ? short_key(key) : 0);
  }

  /// As find_or_insert, for a key followed in memory by at least 8 zero bytes: its first 8 bytes
  /// are then one load.
  Value& find_or_insert_zero_padded(std::string_view key, std::uint64_t hash) {
    std::uint64_t head;
    std::memcpy(&head, key.data(), 8);
    return find_or_insert(key, hash, head);
  }

  /// Starts loading the slot where a key with this hash is looked for first: hashing keys ahead
  /// and prefetching their slots keeps several cache misses in flight instead of one.
  void prefetch(std::uint64_t hash) const { __builtin_prefetch(&slots_[home_slot(hash)]); }

  std::size_t size() const { return size_; }

  /// The most slots any lookup of a present key visits (1 when every key sits in its home slot):
  /// what colliding keys would lengthen. For tests; it walks the whole table.
  std::size_t longest_probe() const {
    std::size_t longest = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].is_free()) continue;
      const std::size_t home = home_slot(slots_[i].hash);
      const std::size_t distance = (i - home) & (slots_.size() - 1);  // wraps around the end
      longest = std::max(longest, distance + 1);
    }
    return longest;
  }

  /// Calls visit(entry) for every entry, in slot order: the same for the same insertions under
  /// the same hash key, so map output is reproducible. Through the non-const overload visit may
  /// change values.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (const Entry& slot : slots_) {
      if (!slot.is_free()) visit(slot);
    }
  }
  template <class Visit>
  void for_each(Visit&& visit) {
    for (Entry& slot : slots_) {
      if (!slot.is_free()) visit(slot);
    }
  }

 private:
  static constexpr std::size_t kMinCapacity = 16;
  // Grow beyond 3/4 full: linear probing stays short below that.
  static constexpr std::size_t kMaxLoadNumerator = 3;
  static constexpr std::size_t kMaxLoadDenominator = 4;

  /// A key of at most 8 bytes, zero-padded, as one integer (little-endian), loaded without a byte
  /// loop or a read past its end: two overlapping 4-byte loads for 4 to 8 bytes, the first,
  /// middle and last byte for 1 to 3.
  static std::uint64_t short_key(std::string_view key) {
    const char* p = key.data();
    const std::size_t n = key.size();
    if (n >= 4) {
      std::uint32_t head, tail;
      std::memcpy(&head, p, 4);
      std::memcpy(&tail, p + n - 4, 4);
      return head | (std::uint64_t{tail} << (8 * (n - 4)));
    }
    if (n == 0) return 0;
    const auto byte = [&](std::size_t i) {
      return std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    };
    return byte(0) | byte(n / 2) | byte(n - 1);
  }

  /// The lookup: `head` is the key zero-padded to 8 bytes when it has at most 8 (else unused).
  Value& find_or_insert(std::string_view key, std::uint64_t hash, std::uint64_t head) {
    if ((size_ + 1) * kMaxLoadDenominator > slots_.size() * kMaxLoadNumerator) {
      resize(slots_.size() * 2);
    }
    const bool inline_key = key.size() <= kInlineBytes;
    Entry* slot = &slots_[home_slot(hash)];
    while (!slot->is_free()) {
      if (slot->hash == hash && slot->size_ == key.size() &&
          (inline_key ? slot->bytes_ == head
                      : std::memcmp(std::bit_cast<const char*>(slot->bytes_), key.data(),
                                    key.size()) == 0)) {
        return slot->value;
      }
      slot = next(slot);
    }
    slot->size_ = key.size();
    slot->bytes_ = inline_key ? head : std::bit_cast<std::uint64_t>(arena_.copy(key).data());
    slot->hash = hash;
    ++size_;
    return slot->value;
  }

  /// The first slot to probe. It takes the hash's top bits because callers partition keys by the
  /// hash's value modulo the partition count: with 2^k partitions every key in one partition has
  /// the same low k bits, and a table indexed by low bits would use only 1/2^k of its slots.
  std::size_t home_slot(std::uint64_t hash) const {
    return static_cast<std::size_t>(hash >> shift_);
  }

  /// The slot after `slot`, wrapping around at the end.
  Entry* next(Entry* slot) {
    return ++slot == slots_.data() + slots_.size() ? slots_.data() : slot;
  }

  /// Moves every entry into a new array of `capacity` (a power of two) slots.
  void resize(std::size_t capacity) {
    std::vector<Entry> old(capacity);
    old.swap(slots_);
    shift_ = 64 - std::countr_zero(capacity);
    for (Entry& entry : old) {
      if (entry.is_free()) continue;
      Entry* slot = &slots_[home_slot(entry.hash)];
      while (!slot->is_free())
        slot = next(slot);
      *slot = std::move(entry);
    }
  }

  std::vector<Entry> slots_;  ///< size is a power of two
  int shift_ = 64;            ///< 64 - log2(slots_.size())
  std::size_t size_ = 0;      ///< entries in use
  KeyArena arena_;
};

}  // namespace mrd::engine
