#include "server/engine/key_arena.hpp"

#include <cstring>

namespace mrd::engine {

std::string_view KeyArena::copy(std::string_view bytes) {
  if (bytes.empty()) return {};
  if (bytes.size() > left_) {
    // A key larger than a quarter block gets a block of its own, so that one long key does not
    // waste the rest of the current block.
    if (bytes.size() > kBlockBytes / 4) {
      auto& own = blocks_.emplace_back(std::make_unique_for_overwrite<char[]>(bytes.size()));
      std::memcpy(own.get(), bytes.data(), bytes.size());
      return {own.get(), bytes.size()};
    }
    next_ = blocks_.emplace_back(std::make_unique_for_overwrite<char[]>(kBlockBytes)).get();
    left_ = kBlockBytes;
  }
  char* at = next_;
  std::memcpy(at, bytes.data(), bytes.size());
  next_ += bytes.size();
  left_ -= bytes.size();
  return {at, bytes.size()};
}

}  // namespace mrd::engine
