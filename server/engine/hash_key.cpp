#include "server/engine/hash_key.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace mrd::engine {
namespace {

/// The key's 16 bytes, k0's little-endian bytes then k1's.
std::array<unsigned char, 16> bytes_of(const HashKey& key) {
  std::array<unsigned char, 16> bytes{};
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<unsigned char>(key.k0 >> (8 * i));
    bytes[8 + i] = static_cast<unsigned char>(key.k1 >> (8 * i));
  }
  return bytes;
}

HashKey key_of(const std::array<unsigned char, 16>& bytes) {
  HashKey key;
  for (int i = 0; i < 8; ++i) {
    key.k0 |= std::uint64_t{bytes[i]} << (8 * i);
    key.k1 |= std::uint64_t{bytes[8 + i]} << (8 * i);
  }
  return key;
}

/// The value of one hex digit, or -1.
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void set_hash_key(const HashKey& key) {
  detail::current_hash_key = key;
}

HashKey random_hash_key() {
  std::array<unsigned char, 16> bytes{};
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t got = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "getrandom for the hash key");
    }
    filled += static_cast<std::size_t>(got);
  }
  return key_of(bytes);
}

std::string format_hash_key(const HashKey& key) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (const unsigned char byte : bytes_of(key)) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0xf]);
  }
  return hex;
}

std::optional<HashKey> parse_hash_key(std::string_view hex) {
  std::array<unsigned char, 16> bytes{};
  if (hex.size() != 2 * bytes.size()) return std::nullopt;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const int high = hex_value(hex[2 * i]);
    const int low = hex_value(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes[i] = static_cast<unsigned char>(high << 4 | low);
  }
  return key_of(bytes);
}

std::string hash_key_to_environment() {
  return std::string(kHashKeyVariable) + "=" + format_hash_key(hash_key());
}

std::optional<HashKey> hash_key_from_environment() {
  const char* value = std::getenv(std::string(kHashKeyVariable).c_str());
  if (value == nullptr) return std::nullopt;
  auto key = parse_hash_key(value);
  if (!key) {
    throw std::invalid_argument(std::string(kHashKeyVariable) + " is not 32 hex digits");
  }
  return key;
}

}  // namespace mrd::engine
