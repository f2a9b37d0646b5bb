// Fuzz target: the decoders of request bodies, as mrd runs them on what a client sent.
//
// Input: byte 0 picks the message (modulo the number of messages), the rest is its body. A body
// must decode or be refused with a reason, never crash or allocate more than it holds; one that
// decodes must encode back to exactly the same bytes (fuzz_check.hpp says why).
#include <cstddef>
#include <cstdint>

#include "fuzz_check.hpp"
#include "protocol/codec.hpp"

namespace {

using namespace mrd::protocol;
using mrd::fuzz::check_round_trip;

/// The request bodies, in the order byte 0 picks them (tests/fuzz/make_corpus.cpp writes seeds
/// in the same order: keep the two in step).
constexpr bool (*kDecoders[])(std::string_view) = {
    check_round_trip<SubmitRequest>,  // 0: SUBMIT
    check_round_trip<JobId>,          // 1: FETCH, STATUS, CANCEL
    check_round_trip<Hello>,          // 2: HELLO
    check_round_trip<AuthRequest>,    // 3: AUTH
    check_round_trip<ListRequest>,    // 4: LIST with options (version 3)
    check_round_trip<StatusRequest>,  // 5: STATUS with options (version 4)
    check_round_trip<StatsRequest>,   // 6: STATS with options (version 4)
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const auto& decoder = kDecoders[data[0] % std::size(kDecoders)];
  decoder(mrd::fuzz::bytes_of(data + 1, size - 1));
  return 0;
}
