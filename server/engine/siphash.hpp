// SipHash (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a keyed 64-bit hash
// of bytes. Without the 128-bit key, nobody can tell which inputs collide, so inputs cannot be
// chosen to collide.
//
// SipHash-c-d runs c rounds per 8-byte block and d rounds to finalise. The paper's SipHash-2-4
// is the reference (its test vectors check this code); SipHash-1-3, what CPython and Rust's std
// hash tables use against the same attack, is the fast variant for the word-count hot path.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mrd::engine {

/// SipHash-`CompressionRounds`-`FinalizationRounds` of `bytes` under the key (k0, k1): k0 is the
/// key's first 8 bytes read little-endian, k1 its last 8.
template <int CompressionRounds, int FinalizationRounds>
std::uint64_t siphash(std::uint64_t k0, std::uint64_t k1, std::string_view bytes) {
  std::uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;  // "somepseudorandomlygeneratedbytes"
  std::uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
  std::uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
  std::uint64_t v3 = k1 ^ 0x7465646279746573ULL;
  const auto rounds = [&](int count) {
    for (int i = 0; i < count; ++i) {
      v0 += v1;
      v1 = std::rotl(v1, 13);
      v1 ^= v0;
      v0 = std::rotl(v0, 32);
      v2 += v3;
      v3 = std::rotl(v3, 16);
      v3 ^= v2;
      v0 += v3;
      v3 = std::rotl(v3, 21);
      v3 ^= v0;
      v2 += v1;
      v1 = std::rotl(v1, 17);
      v1 ^= v2;
      v2 = std::rotl(v2, 32);
    }
  };
  const auto compress = [&](std::uint64_t block) {
    v3 ^= block;
    rounds(CompressionRounds);
    v0 ^= block;
  };

  const char* p = bytes.data();
  std::size_t left = bytes.size();
  for (; left >= 8; p += 8, left -= 8) {
    std::uint64_t block;
    std::memcpy(&block, p, 8);  // little-endian host assumed, as the protocol already requires
    compress(block);
  }
  // The last block: the 0 to 7 remaining bytes, zero-padded, with the length's low byte on top.
  // Loaded without a byte loop: two overlapping 4-byte loads cover 4 to 7 bytes (the bytes they
  // share land on the same bits), the first, middle and last byte cover 1 to 3.
  std::uint64_t last = static_cast<std::uint64_t>(bytes.size()) << 56;
  if (left >= 4) {
    std::uint32_t head, tail;
    std::memcpy(&head, p, 4);
    std::memcpy(&tail, p + left - 4, 4);
    last |= head | (std::uint64_t{tail} << (8 * (left - 4)));
  } else if (left > 0) {
    const auto byte = [&](std::size_t i) {
      return std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    };
    last |= byte(0) | byte(left / 2) | byte(left - 1);
  }
  compress(last);

  v2 ^= 0xff;
  rounds(FinalizationRounds);
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace mrd::engine
