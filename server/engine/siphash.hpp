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

namespace detail {

/// SipHash's state: key setup, the compression of one 8-byte block, and finalisation.
template <int CompressionRounds, int FinalizationRounds>
class SipState {
 public:
  SipState(std::uint64_t k0, std::uint64_t k1)
      : v0_(k0 ^ 0x736f6d6570736575ULL),  // "somepseudorandomlygeneratedbytes"
        v1_(k1 ^ 0x646f72616e646f6dULL),
        v2_(k0 ^ 0x6c7967656e657261ULL),
        v3_(k1 ^ 0x7465646279746573ULL) {}

  /// Mixes in one block: 8 bytes of input read little-endian.
  void compress(std::uint64_t block) {
    v3_ ^= block;
    rounds(CompressionRounds);
    v0_ ^= block;
  }

  /// The hash, once the last block (with the length's low byte on top) is compressed.
  std::uint64_t finish() {
    v2_ ^= 0xff;
    rounds(FinalizationRounds);
    return v0_ ^ v1_ ^ v2_ ^ v3_;
  }

 private:
  void rounds(int count) {
    for (int i = 0; i < count; ++i) {
      v0_ += v1_;
      v1_ = std::rotl(v1_, 13);
      v1_ ^= v0_;
      v0_ = std::rotl(v0_, 32);
      v2_ += v3_;
      v3_ = std::rotl(v3_, 16);
      v3_ ^= v2_;
      v0_ += v3_;
      v3_ = std::rotl(v3_, 21);
      v3_ ^= v0_;
      v2_ += v1_;
      v1_ = std::rotl(v1_, 17);
      v1_ ^= v2_;
      v2_ = std::rotl(v2_, 32);
    }
  }

  std::uint64_t v0_, v1_, v2_, v3_;
};

}  // namespace detail

/// SipHash-`CompressionRounds`-`FinalizationRounds` of `bytes` under the key (k0, k1): k0 is the
/// key's first 8 bytes read little-endian, k1 its last 8.
template <int CompressionRounds, int FinalizationRounds>
std::uint64_t siphash(std::uint64_t k0, std::uint64_t k1, std::string_view bytes) {
  detail::SipState<CompressionRounds, FinalizationRounds> state(k0, k1);
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  for (; left >= 8; p += 8, left -= 8) {
    std::uint64_t block;
    std::memcpy(&block, p, 8);  // little-endian host assumed, as the protocol already requires
    state.compress(block);
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
  state.compress(last);
  return state.finish();
}

/// The same hash as siphash, of `bytes` that are followed in memory by at least 8 zero bytes:
/// then the last block is one 8-byte load, with no branch on how many bytes are left, which is
/// what a hash of short words mostly does.
template <int CompressionRounds, int FinalizationRounds>
std::uint64_t siphash_zero_padded(std::uint64_t k0, std::uint64_t k1, std::string_view bytes) {
  detail::SipState<CompressionRounds, FinalizationRounds> state(k0, k1);
  const char* p = bytes.data();
  const char* const whole_end = p + (bytes.size() & ~std::size_t{7});
  std::uint64_t block;
  for (; p != whole_end; p += 8) {
    std::memcpy(&block, p, 8);
    state.compress(block);
  }
  std::memcpy(&block, p, 8);  // the 0 to 7 bytes left, then zeros
  state.compress(block | static_cast<std::uint64_t>(bytes.size()) << 56);
  return state.finish();
}

}  // namespace mrd::engine
