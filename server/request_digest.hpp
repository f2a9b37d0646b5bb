// RequestDigest: what an idempotency key is bound to. The SHA-256 of a whole SUBMIT body, so that
// the same key with a different request can be told from a resent one (see docs/protocol.md,
// "Idempotency") without keeping the body itself once the job has finished.
#pragma once

#include <array>
#include <memory>
#include <string_view>

namespace mrd::server {

/// SHA-256 of a SUBMIT body: 32 bytes, compared as bytes.
using RequestDigest = std::array<unsigned char, 32>;

/// The digest of `request` (the SUBMIT body as it came off the wire).
RequestDigest digest_of(std::string_view request);

/// The same digest, of bytes that arrive in pieces: a big SUBMIT body is hashed as it is received,
/// a read at a time, rather than all at once at its end.
class DigestStream {
 public:
  DigestStream();
  ~DigestStream();
  DigestStream(const DigestStream&) = delete;
  DigestStream& operator=(const DigestStream&) = delete;

  /// Adds the next bytes.
  void update(std::string_view bytes);
  /// The digest of everything added.
  RequestDigest finish();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

}  // namespace mrd::server
