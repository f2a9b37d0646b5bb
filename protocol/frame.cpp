#include "protocol/frame.hpp"

#include "protocol/limits.hpp"
#include "protocol/wire.hpp"

namespace mrd::protocol {

std::uint64_t request_body_limit(std::uint8_t opcode, std::uint64_t max_frame_bytes) {
  if (opcode == static_cast<std::uint8_t>(Opcode::kSubmit)) return max_frame_bytes;
  if (opcode == static_cast<std::uint8_t>(Opcode::kAuth)) return kMaxAuthBodyBytes;
  return kMaxSmallBodyBytes;
}

ParsedFrame parse_frame(std::string_view input, std::uint64_t max_body_bytes) {
  ParsedFrame parsed;
  if (input.size() < kHeaderBytes) return parsed;  // need more, size unknown yet

  parsed.code = static_cast<std::uint8_t>(input[0]);
  // Assemble the little-endian length byte by byte: correct on any host, no alignment traps.
  for (int i = 3; i >= 0; --i) {
    parsed.body_bytes = (parsed.body_bytes << 8) | static_cast<std::uint8_t>(input[1 + i]);
  }
  if (parsed.body_bytes > max_body_bytes) {
    parsed.outcome = ParsedFrame::Outcome::kTooLarge;
    return parsed;
  }
  parsed.frame_bytes = kHeaderBytes + parsed.body_bytes;
  if (input.size() < parsed.frame_bytes) return parsed;  // need more, size known

  parsed.outcome = ParsedFrame::Outcome::kFrame;
  parsed.body = input.substr(kHeaderBytes, parsed.body_bytes);
  return parsed;
}

ParsedFrame parse_request(std::string_view input, std::uint64_t max_frame_bytes) {
  if (input.empty()) return {};
  const auto opcode = static_cast<std::uint8_t>(input[0]);
  return parse_frame(input, request_body_limit(opcode, max_frame_bytes));
}

void append_header(std::string& out, std::uint8_t code, std::uint32_t body_bytes) {
  char header[kHeaderBytes] = {static_cast<char>(code)};
  for (int i = 0; i < 4; ++i)
    header[1 + i] = static_cast<char>((body_bytes >> (8 * i)) & 0xff);
  out.append(header, kHeaderBytes);
}

void append_frame(std::string& out, std::uint8_t code, std::string_view body) {
  append_header(out, code, static_cast<std::uint32_t>(body.size()));
  out.append(body);
}

}  // namespace mrd::protocol
