#include "server/request_digest.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace mrd::server {

RequestDigest digest_of(std::string_view request) {
  RequestDigest digest{};
  unsigned int size = 0;
  if (EVP_Digest(request.data(), request.size(), digest.data(), &size, EVP_sha256(), nullptr) !=
          1 ||
      size != digest.size()) {
    throw std::runtime_error("SHA-256 failed");  // only if libcrypto itself is broken
  }
  return digest;
}

}  // namespace mrd::server
