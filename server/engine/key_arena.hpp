// KeyArena: owns the bytes of the keys in a KeyTable.
//
// A table of string_views needs somewhere to keep the bytes its views point at. Copying each new
// key into a few large blocks costs one allocation per 64 KiB of keys instead of one per key, and
// a block never moves, so views into it stay valid as the arena grows.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

namespace mrd::engine {

class KeyArena {
 public:
  KeyArena() = default;
  KeyArena(KeyArena&&) = default;
  KeyArena& operator=(KeyArena&&) = default;

  /// A copy of `bytes` that lives as long as the arena.
  std::string_view copy(std::string_view bytes);

 private:
  static constexpr std::size_t kBlockBytes = 64 * 1024;

  std::vector<std::unique_ptr<char[]>> blocks_;
  char* next_ = nullptr;  ///< first free byte of the newest block
  std::size_t left_ = 0;  ///< free bytes after next_
};

}  // namespace mrd::engine
