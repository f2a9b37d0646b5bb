// Fuzz target: the decoders of reply bodies, as mrctl runs them on what a server sent.
//
// Input: byte 0 picks the message (modulo the number of messages), the rest is its body. A body
// must decode or be refused with a reason, never crash or allocate more than it holds; one that
// decodes must encode back to exactly the same bytes (fuzz_check.hpp says why).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "protocol/codec.hpp"

namespace {

using namespace mrd::protocol;
using mrd::fuzz::check_round_trip;

/// A FETCH's OK body, decoded as a JobResult; one that holds a matrix is also viewed in place
/// (what mrctl matmul --out C.npy reads), which must agree with the decoded matrix exactly.
bool check_fetch_result(std::string_view body) {
  const bool decoded = check_round_trip<JobResult>(body);
  if (!holds_matrix_result(body)) return decoded;
  const auto view = decode<MatrixResultView>(body);
  FUZZ_CHECK(view.value.has_value() == decoded, "viewed in place iff decoded");
  if (!decoded) return false;
  const auto result = decode<JobResult>(body);
  const auto& matrix = std::get<Matrix>(*result.value);
  FUZZ_CHECK(view.value->rows == matrix.rows && view.value->cols == matrix.cols, "same shape");
  FUZZ_CHECK(
      view.value->values == std::string_view(reinterpret_cast<const char*>(matrix.values.data()),
                                             matrix.values.size() * sizeof(double)),
      "same values");
  return true;
}

/// The reply bodies, in the order byte 0 picks them (tests/fuzz/make_corpus.cpp writes seeds in
/// the same order: keep the two in step).
constexpr bool (*kDecoders[])(std::string_view) = {
    check_fetch_result,               // 0: FETCH, OK
    check_round_trip<JobProgress>,    // 1: STATUS, and FETCH's PENDING
    check_round_trip<JobList>,        // 2: LIST
    check_round_trip<ServerStats>,    // 3: STATS
    check_round_trip<ErrorMessage>,   // 4: every error status
    check_round_trip<Hello>,          // 5: HELLO
    check_round_trip<JobId>,          // 6: SUBMIT
    check_round_trip<HelloReply>,     // 7: HELLO of version 2
    check_round_trip<AuthReply>,      // 8: AUTH
    check_round_trip<TenantJobList>,  // 9: LIST with tenants (version 3)
    check_round_trip<JobDetails>,     // 10: STATUS with details (version 4)
    check_round_trip<DetailedStats>,  // 11: STATS with details (version 4)
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const auto& decoder = kDecoders[data[0] % std::size(kDecoders)];
  decoder(mrd::fuzz::bytes_of(data + 1, size - 1));
  return 0;
}
