// Test support for servers with tokens (mrd --auth-file): an auth file written at test time, and
// AUTH in raw bytes.
#pragma once

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/raw_jobs.hpp"
#include "tests/server_process.hpp"

namespace mrd::testing {

inline constexpr const char* kAliceToken = "alice-0f3c9a1d-token";
inline constexpr const char* kBobToken = "bob-5a8e01f7-token";
inline constexpr const char* kOpsToken = "ops-77e2b5c4-token";

/// The SHA-256 of `text` in hex, as sha256sum prints it.
inline std::string sha256_hex(const std::string& text) {
  std::string output;
  if (run_command("printf '%s' '" + text + "' | sha256sum", &output) != 0) {
    throw std::runtime_error(output);
  }
  return output.substr(0, 64);
}

/// An auth file in its own directory: alice and bob (users) and ops (admin) unless told otherwise.
class AuthFile {
 public:
  AuthFile() {
    write(
        {{"alice", "user", kAliceToken}, {"bob", "user", kBobToken}, {"ops", "admin", kOpsToken}});
  }

  struct Line {
    std::string tenant, role, token;
  };
  void write(const std::vector<Line>& lines) {
    std::ofstream file(path());
    file << "# tenant role sha256-of-token\n\n";
    for (const auto& l : lines)
      file << l.tenant << "  " << l.role << "  " << sha256_hex(l.token) << "  # a comment\n";
  }
  std::string path() const { return (dir_.path() / "tokens").string(); }

 private:
  TempDir dir_;
};

inline std::string auth_frame(const std::string& token) {
  std::string frame;
  protocol::append_message(frame, static_cast<std::uint8_t>(Opcode::kAuth),
                           protocol::AuthRequest{token});
  return frame;
}

/// Sends AUTH with `token` and returns the reply.
inline RawReply authenticate(RawClient& client, const std::string& token) {
  client.send(auth_frame(token));
  auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no reply to AUTH");
  return *reply;
}

/// A connection authenticated with `token`.
inline std::unique_ptr<RawClient> connect_as(const ServerProcess& server,
                                             const std::string& token) {
  auto client = std::make_unique<RawClient>(server.port());
  const auto reply = authenticate(*client, token);
  if (reply.status != kOk) throw std::runtime_error("AUTH refused: " + error_text(reply));
  return client;
}

/// Sends a request about job `id` (FETCH, STATUS, CANCEL) and returns the whole reply frame.
inline std::string ask_about(RawClient& client, Opcode opcode, std::uint32_t id) {
  client.send_message(opcode, protocol::JobId{id});
  const auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no reply");
  std::string frame;
  protocol::append_frame(frame, reply->status, reply->body);
  return frame;
}

/// The reply, byte for byte, to a request about a job that is no longer kept, on a server with
/// tokens (docs/protocol.md, section 5, "Whose job it is").
inline std::string not_kept(std::uint32_t id) {
  std::string frame;
  protocol::append_message(
      frame, static_cast<std::uint8_t>(Status::kJobExpired),
      protocol::ErrorMessage{"job " + std::to_string(id) +
                             " expired: its result was evicted (or it is not yours)"});
  return frame;
}

}  // namespace mrd::testing
