// The body codec: every message in messages.hpp to bytes and back.
//
// encode() appends nothing but the body; frame.hpp adds the header. decode<T>() never throws and
// never allocates more than the body could hold: a bad body comes back as an error message.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace mrd::protocol {

/// A decoded value, or the reason there is none.
template <class T>
struct Decoded {
  std::optional<T> value;
  std::string error;  ///< set when value is empty
  explicit operator bool() const { return value.has_value(); }
};

/// A request or reply body holding one job id (FETCH, STATUS, CANCEL requests; SUBMIT reply).
struct JobId {
  std::uint32_t id = 0;
  bool operator==(const JobId&) const = default;
};

/// An error reply's body: a human-readable message.
struct ErrorMessage {
  std::string text;
  bool operator==(const ErrorMessage&) const = default;
};

/// Appends the encoding of a body to `out`.
void encode_to(std::string& out, const JobId& body);
void encode_to(std::string& out, const ErrorMessage& body);
void encode_to(std::string& out, const Hello& body);
void encode_to(std::string& out, const HelloReply& body);
void encode_to(std::string& out, const AuthRequest& body);
void encode_to(std::string& out, const AuthReply& body);
void encode_to(std::string& out, const SubmitRequest& body);
void encode_to(std::string& out, const JobResult& body);
void encode_to(std::string& out, const JobProgress& body);
void encode_to(std::string& out, const JobList& body);
void encode_to(std::string& out, const ListRequest& body);
void encode_to(std::string& out, const TenantJobList& body);
void encode_to(std::string& out, const ServerStats& body);
void encode_to(std::string& out, const StatusRequest& body);
void encode_to(std::string& out, const JobDetails& body);
void encode_to(std::string& out, const StatsRequest& body);
void encode_to(std::string& out, const DetailedStats& body);

/// The encoding of a body on its own.
template <class T>
std::string encode(const T& body) {
  std::string out;
  encode_to(out, body);
  return out;
}

/// Appends a whole frame (header, then the encoded body) without an intermediate copy.
template <class T>
void append_message(std::string& out, std::uint8_t code, const T& body) {
  const std::size_t header_at = out.size();
  append_header(out, code, 0);
  encode_to(out, body);
  const auto body_bytes = static_cast<std::uint32_t>(out.size() - header_at - 5);
  std::string patched;
  append_header(patched, code, body_bytes);
  out.replace(header_at, patched.size(), patched);
}

/// A payload left out of an encoded frame, to be sent from where it is: it belongs after the
/// first `at` bytes of the frame's encoded bytes. Either `bytes` (in the request), or, for a
/// payload the request does not hold (gather_message's `outside`), its slot and size: the sender
/// sends it from wherever it keeps it (a file).
struct GatheredPayload {
  std::size_t at = 0;
  std::string_view bytes;
  std::optional<std::size_t> outside_slot;
  std::uint64_t outside_bytes = 0;
};

/// A frame encoded for a gather write (sendmsg with several buffers): its big payloads (a
/// document's text, the numbers, a matrix's values) are not copied into it. A SUBMIT of 64 MiB
/// is then sent straight from the request the client built, with a few hundred bytes encoded
/// around it, instead of from a 64 MiB copy.
struct GatheredMessage {
  std::string bytes;                      ///< the frame, without its gathered payloads
  std::vector<GatheredPayload> payloads;  ///< each belongs after bytes[0, at); in order of `at`
  /// The frame's size: bytes and payloads.
  std::uint64_t size() const;
  /// Calls, in the frame's order, `encoded(bytes)` for each run of encoded bytes, `payload(bytes)`
  /// for each payload in the request, `outside(slot, size)` for each outside payload: the frame
  /// is what they stand for, concatenated.
  template <class Encoded, class Payload, class Outside>
  void for_each_piece(Encoded encoded, Payload payload, Outside outside) const {
    const std::string_view all(bytes);
    std::size_t at = 0;
    for (const auto& gathered : payloads) {
      if (gathered.at > at) encoded(all.substr(at, gathered.at - at));
      at = gathered.at;
      if (gathered.outside_slot) {
        outside(*gathered.outside_slot, gathered.outside_bytes);
      } else {
        payload(gathered.bytes);
      }
    }
    if (at < all.size()) encoded(all.substr(at));
  }
  /// The pieces to send, in order; the frame is their concatenation. Only for a message without
  /// outside payloads (std::logic_error otherwise).
  std::vector<std::string_view> pieces() const;
};

/// Payloads of this many bytes or more are gathered; smaller ones are copied, which costs less
/// than one more buffer to send.
inline constexpr std::size_t kGatherFromBytes = 64 * 1024;

/// A SUBMIT frame, its payloads gathered. Its pieces are valid while `request` is unchanged. The
/// header holds the body's size, which fits a frame only up to 4 GiB: check size() first.
/// `outside[slot]`, if more than 0, is the size in bytes of a payload the request does not hold,
/// which the caller sends in its place (from a file, read as it is sent). The slots are the
/// input's payloads: document i's text is slot i (the request's text is then empty); of a matrix
/// pair, A's values are slot 0 and B's slot 1 (the request's matrix then has its shape and no
/// values; the size must be a whole number of doubles, std::invalid_argument otherwise).
GatheredMessage gather_message(std::uint8_t code, const SubmitRequest& request,
                               std::span<const std::uint64_t> outside = {});

/// Decodes a whole body as a T.
template <class T>
Decoded<T> decode(std::string_view body);

/// Decodes a FETCH/STATUS/CANCEL request body, which must be exactly 4 bytes.
template <>
Decoded<JobId> decode<JobId>(std::string_view body);
template <>
Decoded<ErrorMessage> decode<ErrorMessage>(std::string_view body);
template <>
Decoded<Hello> decode<Hello>(std::string_view body);
template <>
Decoded<HelloReply> decode<HelloReply>(std::string_view body);
template <>
Decoded<AuthRequest> decode<AuthRequest>(std::string_view body);
template <>
Decoded<AuthReply> decode<AuthReply>(std::string_view body);
template <>
Decoded<SubmitRequest> decode<SubmitRequest>(std::string_view body);
template <>
Decoded<JobResult> decode<JobResult>(std::string_view body);
template <>
Decoded<JobProgress> decode<JobProgress>(std::string_view body);
template <>
Decoded<JobList> decode<JobList>(std::string_view body);
template <>
Decoded<ListRequest> decode<ListRequest>(std::string_view body);
template <>
Decoded<TenantJobList> decode<TenantJobList>(std::string_view body);
template <>
Decoded<ServerStats> decode<ServerStats>(std::string_view body);
template <>
Decoded<StatusRequest> decode<StatusRequest>(std::string_view body);
template <>
Decoded<JobDetails> decode<JobDetails>(std::string_view body);
template <>
Decoded<StatsRequest> decode<StatsRequest>(std::string_view body);
template <>
Decoded<DetailedStats> decode<DetailedStats>(std::string_view body);

/// The kind byte that starts a JobResult body holding a Matrix (its index in the variant).
inline constexpr std::uint8_t kMatrixResultKind = 2;
static_assert(std::is_same_v<std::variant_alternative_t<kMatrixResultKind, JobResult>, Matrix>);

/// A JobResult body holding a matrix, its values left where they are in the body: raw
/// little-endian doubles, as a .npy file holds them, so a client can write a big product to a
/// file from where it received it, without decoding it into a Matrix first.
struct MatrixResultView {
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  std::string_view values;  ///< rows * cols * 8 bytes, not aligned for reading as doubles
};

/// True if `body`, a FETCH's OK body, holds a matrix: decode<MatrixResultView> reads it then,
/// with the same checks as decode<JobResult>.
bool holds_matrix_result(std::string_view body);
template <>
Decoded<MatrixResultView> decode<MatrixResultView>(std::string_view body);

/// Matrix and counts helpers shared with the engine's intermediate formats.
class BodyWriter;
class BodyReader;
void write_matrix(BodyWriter& w, const Matrix& m);
Matrix read_matrix(BodyReader& r);

}  // namespace mrd::protocol
