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

struct DigestStream::Context {
  EVP_MD_CTX* evp = EVP_MD_CTX_new();
  ~Context() { EVP_MD_CTX_free(evp); }
};

DigestStream::DigestStream() : context_(std::make_unique<Context>()) {
  if (!context_->evp || EVP_DigestInit_ex(context_->evp, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
}

DigestStream::~DigestStream() = default;

void DigestStream::update(std::string_view bytes) {
  if (EVP_DigestUpdate(context_->evp, bytes.data(), bytes.size()) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
}

RequestDigest DigestStream::finish() {
  RequestDigest digest{};
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(context_->evp, digest.data(), &size) != 1 || size != digest.size()) {
    throw std::runtime_error("SHA-256 failed");
  }
  return digest;
}

}  // namespace mrd::server
