// The example frames shown in docs/protocol.md, built with the real codec.
//
// docs_test checks that the document shows exactly these bytes; `protocol_examples` prints them
// so the document can be regenerated after a wire change.
#pragma once

#include <string>
#include <vector>

#include "protocol/codec.hpp"

namespace mrd::examples {

struct Example {
  std::string name;   ///< the label in docs/protocol.md
  std::string bytes;  ///< the whole frame
};

inline std::string frame(std::uint8_t code, const std::string& body) {
  std::string out;
  protocol::append_frame(out, code, body);
  return out;
}

template <class T>
std::string message(std::uint8_t code, const T& body) {
  return frame(code, protocol::encode(body));
}

/// A finished job's details (STATUS with details): the document's example and a fuzz seed.
inline protocol::JobDetails job_details_example() {
  return {{7, protocol::JobState::kDone, 4, 4, 2, 2},
          "words",
          "sum",
          "alice",
          66,
          1764576000000,
          1764576000012,
          1764576000250,
          ""};
}

inline std::vector<Example> all_examples() {
  using namespace protocol;
  const auto op = [](Opcode o) { return static_cast<std::uint8_t>(o); };
  const auto st = [](Status s) { return static_cast<std::uint8_t>(s); };
  SubmitRequest words{"words", "sum", {0, 0}, Documents{{{"a.txt", "to be or not to be"}}}};
  SubmitRequest stats{"numbers", "stats", {0, 0}, Numbers{{1.5, 2.5}}};
  SubmitRequest matmul{"matmul", "rows", {0, 0}, MatrixPair{{1, 2, {1, 2}}, {2, 1, {3, 4}}}};
  return {
      {"hello-request", message(op(Opcode::kHello), Hello{1, ""})},
      {"hello-reply", message(st(Status::kOk), Hello{1, "mrd 0.1.0"})},
      {"hello-v3-request", message(op(Opcode::kHello), Hello{3, ""})},
      {"hello-v3-reply", message(st(Status::kOk), HelloReply{3, "mrd 0.1.0", kHelloAuthRequired})},
      {"auth-request", message(op(Opcode::kAuth), AuthRequest{"s3cret"})},
      {"auth-reply", message(st(Status::kOk), AuthReply{"alice", Role::kUser})},
      {"auth-failed-reply",
       message(st(Status::kAuthFailed), ErrorMessage{"auth: the token is not valid"})},
      {"submit-words-request", message(op(Opcode::kSubmit), words)},
      {"submit-stats-request", message(op(Opcode::kSubmit), stats)},
      {"submit-matmul-request", message(op(Opcode::kSubmit), matmul)},
      {"submit-reply", message(st(Status::kOk), JobId{7})},
      {"fetch-request", message(op(Opcode::kFetch), JobId{7})},
      {"fetch-pending-reply",
       message(st(Status::kPending), JobProgress{7, JobState::kMapping, 1, 4, 0, 2})},
      {"fetch-words-reply",
       message(st(Status::kOk), JobResult{Counts{{{"be", 2}, {"to", 2}, {"not", 1}, {"or", 1}}}})},
      {"fetch-stats-reply",
       message(st(Status::kOk), JobResult{Statistics{2, 2.0, 2.0, 1.5, 1.5, 2.5}})},
      {"fetch-matmul-reply", message(st(Status::kOk), JobResult{Matrix{1, 1, {11}}})},
      {"fetch-index-reply",
       message(st(Status::kOk), JobResult{Postings{{{"be", {"a.txt", "b.txt"}}}}})},
      {"unknown-job-reply", message(st(Status::kUnknownJob), ErrorMessage{"no job 9"})},
      {"unavailable-reply",
       message(st(Status::kUnavailable),
               ErrorMessage{"fetch: this node cannot reach the cluster's Redis at redis:6379/0 "
                            "(Connection refused); nothing was done; try again, or another "
                            "node"})},
      {"status-request", message(op(Opcode::kStatus), JobId{7})},
      {"status-reply", message(st(Status::kOk), JobProgress{7, JobState::kDone, 4, 4, 2, 2})},
      {"cancel-request", message(op(Opcode::kCancel), JobId{7})},
      {"cancel-reply", frame(st(Status::kOk), "")},
      {"list-request", frame(op(Opcode::kList), "")},
      {"list-reply",
       message(st(Status::kOk), JobList{{{7, JobState::kDone}, {8, JobState::kQueued}}})},
      {"list-tenants-request", message(op(Opcode::kList), ListRequest{kListWithTenants})},
      {"list-tenants-reply",
       message(st(Status::kOk),
               TenantJobList{{{7, JobState::kDone, "alice"}, {8, JobState::kQueued, "bob"}}})},
      {"stats-request", frame(op(Opcode::kStats), "")},
      {"status-details-request",
       message(op(Opcode::kStatus), StatusRequest{7, kStatusWithDetails})},
      {"status-details-reply", message(st(Status::kOk), job_details_example())},
      {"stats-details-request", message(op(Opcode::kStats), StatsRequest{kStatsWithDetails})},
      {"stats-details-reply",
       message(st(Status::kOk), DetailedStats{{120000, 1, 9, 40, 2, 4, 1, 0, 0, 0, 3, 2, 0, 4096},
                                              1,
                                              3,
                                              {{{10, 2}, {UINT64_MAX, 3}}, 46},
                                              {{{10, 0}, {UINT64_MAX, 1}}, 60}})},
  };
}

/// Lower-case hex, 16 bytes to a line, bytes separated by spaces (what the document shows).
inline std::string to_hex_lines(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (i % 16) out += ' ';
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
    if (i % 16 == 15 || i + 1 == bytes.size()) out += '\n';
  }
  return out;
}

}  // namespace mrd::examples
