// Every size and count limit of the protocol, in one place.
//
// The server checks each of these *before* it allocates anything for the value it limits, so a
// lying length costs a reply, never memory. Defaults that an operator may change at start-up are
// marked as such; the rest are fixed by the protocol.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mrd::protocol {

/// Bytes in the header that starts every request and every reply.
inline constexpr std::size_t kHeaderBytes = 5;

/// Default largest request body (mrd --max-frame-mib): a 256 MiB corpus plus room for its framing.
inline constexpr std::uint64_t kDefaultMaxFrameBytes = 384ull << 20;

/// Largest body of any request other than SUBMIT. These bodies are a few bytes; anything larger is
/// not a client of this protocol, so the server answers FRAME_TOO_LARGE and closes.
inline constexpr std::uint32_t kMaxSmallBodyBytes = 64;

/// Largest AUTH body: a token up to 1016 bytes (its 8-byte length first). Longer is not a token.
inline constexpr std::uint32_t kMaxAuthBodyBytes = 1024;

/// Longest tenant name (mrd --auth-file).
inline constexpr std::size_t kMaxTenantBytes = 64;

/// Longest mapper or reducer name in a SUBMIT.
inline constexpr std::uint64_t kMaxNameBytes = 64;

/// Longest idempotency key in a SUBMIT.
inline constexpr std::uint64_t kMaxIdempotencyKeyBytes = 64;

/// Longest document name in a SUBMIT.
inline constexpr std::uint64_t kMaxDocumentNameBytes = 4096;

/// Largest matrix side (rows or columns).
inline constexpr std::uint64_t kMaxMatrixSide = 1u << 20;

/// Default most simultaneous connections (mrd --max-connections).
inline constexpr std::uint32_t kDefaultMaxConnections = 10000;

/// Default most jobs accepted but not yet finished (mrd --max-queued-jobs).
inline constexpr std::uint32_t kDefaultMaxQueuedJobs = 10000;

/// Default seconds a connection may stay silent before the server closes it (mrd --idle-timeout).
inline constexpr std::uint32_t kDefaultIdleTimeoutSeconds = 300;

/// Default seconds a request may take to arrive once its first byte has (mrd --request-timeout).
inline constexpr std::uint32_t kDefaultRequestTimeoutSeconds = 120;

/// Default bytes of finished results kept before the oldest are evicted (mrd --max-retained-mib).
inline constexpr std::uint64_t kDefaultMaxRetainedBytes = 1024ull << 20;

/// Most buckets a histogram of STATS's details may have (the server sends 17).
inline constexpr std::uint64_t kMaxHistogramBuckets = 64;

/// A count or length with no cap of its own: only the bytes left in the body bound it, and the
/// readers check that before they allocate.
inline constexpr std::uint64_t kNoCountLimit = UINT64_MAX;

}  // namespace mrd::protocol
