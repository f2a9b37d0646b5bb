#include "server/auth_tokens.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "protocol/limits.hpp"

namespace mrd::server {
namespace {

bool is_tenant_name(std::string_view name) {
  return !name.empty() && name.size() <= protocol::kMaxTenantBytes &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
         });
}

/// 64 hex digits (either case) as 32 bytes; false if it is not that.
bool parse_digest(std::string_view hex, RequestDigest& digest) {
  if (hex.size() != 2 * digest.size()) return false;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < digest.size(); ++i) {
    const int high = nibble(hex[2 * i]), low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    digest[i] = static_cast<unsigned char>(high << 4 | low);
  }
  return true;
}

}  // namespace

AuthTokens AuthTokens::load(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot read the auth file " + path);
  AuthTokens tokens;
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    const auto where = path + ":" + std::to_string(number) + ": ";
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::string tenant, role, hex, extra;
    if (!(fields >> tenant)) continue;  // blank or comment only
    if (!(fields >> role >> hex) || fields >> extra) {
      throw std::runtime_error(where + "want three fields: tenant role sha256-of-token");
    }
    if (!is_tenant_name(tenant)) {
      throw std::runtime_error(where + "a tenant is 1 to 64 of A-Z a-z 0-9 . _ -, not '" + tenant +
                               "'");
    }
    if (role != "user" && role != "admin") {
      throw std::runtime_error(where + "the role is user or admin, not '" + role + "'");
    }
    Entry entry;
    if (!parse_digest(hex, entry.digest)) {
      throw std::runtime_error(where +
                               "the third field is the token's SHA-256 in hex (64 digits, as "
                               "sha256sum prints it), not the token itself");
    }
    for (const auto& other : tokens.entries_) {
      if (other.digest == entry.digest) {
        throw std::runtime_error(where + "this token is already on an earlier line");
      }
    }
    entry.identity = std::make_shared<const Identity>(
        Identity{tenant, role == "admin" ? protocol::Role::kAdmin : protocol::Role::kUser});
    tokens.entries_.push_back(std::move(entry));
  }
  return tokens;
}

std::shared_ptr<const Identity> AuthTokens::find(std::string_view token) const {
  const auto digest = digest_of(token);
  std::shared_ptr<const Identity> found;
  for (const auto& entry : entries_) {
    // Every entry is compared, whatever matched before: no early exit to time.
    if (CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0) {
      found = entry.identity;
    }
  }
  return found;
}

}  // namespace mrd::server
