// RequestDigest: what an idempotency key is bound to. The SHA-256 of a whole SUBMIT body, so that
// the same key with a different request can be told from a resent one (see docs/protocol.md,
// "Idempotency") without keeping the body itself once the job has finished.
#pragma once

#include <array>
#include <string_view>

namespace mrd::server {

/// SHA-256 of a SUBMIT body: 32 bytes, compared as bytes.
using RequestDigest = std::array<unsigned char, 32>;

/// The digest of `request` (the SUBMIT body as it came off the wire).
RequestDigest digest_of(std::string_view request);

}  // namespace mrd::server
