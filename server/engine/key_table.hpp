// KeyTable: a hash table from byte-string keys to values, built for counting words.
//
// The map hot path looks up every word of the input, so the table avoids what makes
// std::unordered_map<std::string, ...> slow there: no allocation per key (keys are copied into a
// KeyArena only when first seen), no node per entry, and no pointer to chase before the first
// comparison: entries live in the slots themselves (open addressing with linear probing), and
// each keeps its full hash, so a probe compares key bytes only when the key is almost surely the
// one it looks for. Linear probing is only as good as the hash: keyed_hash's secret key is what
// keeps a client from sending words that all share one probe chain.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "server/engine/key_arena.hpp"
#include "server/engine/keyed_hash.hpp"

namespace mrd::engine {

template <class Value>
class KeyTable {
 public:
  /// One key and its value.
  struct Entry {
    std::string_view key;    ///< bytes owned by the table; data() == nullptr marks a free slot
    std::uint64_t hash = 0;  ///< keyed_hash(key), kept so callers can partition without rehashing
    Value value{};
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
    if ((size_ + 1) * kMaxLoadDenominator > slots_.size() * kMaxLoadNumerator) {
      resize(slots_.size() * 2);
    }
    Entry* slot = &slots_[home_slot(hash)];
    while (slot->key.data() != nullptr) {
      if (slot->hash == hash && slot->key == key) return slot->value;
      slot = next(slot);
    }
    // A free slot is told apart by a null data(), so an empty key needs a non-null one.
    slot->key = key.empty() ? std::string_view(kEmptyKey, 0) : arena_.copy(key);
    slot->hash = hash;
    ++size_;
    return slot->value;
  }

  std::size_t size() const { return size_; }

  /// The most slots any lookup of a present key visits (1 when every key sits in its home slot):
  /// what colliding keys would lengthen. For tests; it walks the whole table.
  std::size_t longest_probe() const {
    std::size_t longest = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].key.data() == nullptr) continue;
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
      if (slot.key.data() != nullptr) visit(slot);
    }
  }
  template <class Visit>
  void for_each(Visit&& visit) {
    for (Entry& slot : slots_) {
      if (slot.key.data() != nullptr) visit(slot);
    }
  }

 private:
  static constexpr std::size_t kMinCapacity = 16;
  // Grow beyond 3/4 full: linear probing stays short below that.
  static constexpr std::size_t kMaxLoadNumerator = 3;
  static constexpr std::size_t kMaxLoadDenominator = 4;
  static constexpr char kEmptyKey[1] = "";

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
      if (entry.key.data() == nullptr) continue;
      Entry* slot = &slots_[home_slot(entry.hash)];
      while (slot->key.data() != nullptr)
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
