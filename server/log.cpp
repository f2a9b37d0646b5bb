#include "server/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace mrd::server {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<LogFormat> g_format{LogFormat::kText};

const char* level_name(Level level) {
  switch (level) {
    case Level::kError: return "error";
    case Level::kWarn: return "warn";
    case Level::kInfo: return "info";
    case Level::kDebug: return "debug";
  }
  return "?";
}
/// The length of the valid UTF-8 sequence at the start of `text`, or 0 if it is not one (RFC
/// 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const auto lead = byte(0);
  if (lead < 0x80) return 1;
  const std::size_t n = lead >= 0xc2 && lead <= 0xdf   ? 2
                        : lead >= 0xe0 && lead <= 0xef ? 3
                        : lead >= 0xf0 && lead <= 0xf4 ? 4
                                                       : 0;
  if (n == 0 || n > text.size()) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    if ((byte(i) >> 6) != 0x2) return 0;
  }
  const auto second = byte(1);
  if ((lead == 0xe0 && second < 0xa0) || (lead == 0xed && second > 0x9f) ||
      (lead == 0xf0 && second < 0x90) || (lead == 0xf4 && second > 0x8f)) {
    return 0;
  }
  return n;
}

/// `text` as the contents of a JSON string: quote, backslash and control bytes escaped, and
/// bytes that are not UTF-8 (a client's mapper name may be anything) replaced by U+FFFD, so
/// that every line parses.
void append_json_escaped(std::string& out, std::string_view text) {
  while (!text.empty()) {
    const char c = text.front();
    const auto n = utf8_sequence(text);
    if (n == 0) {
      out += "\\ufffd";
      text.remove_prefix(1);
      continue;
    }
    if (n > 1) {
      out.append(text.substr(0, n));
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
    text.remove_prefix(n);
  }
}

}  // namespace

void set_log_format(LogFormat format) {
  g_format = format;
}

void set_log_level(Level level) {
  g_level = static_cast<int>(level);
}

bool log_enabled(Level level) {
  return static_cast<int>(level) <= g_level.load();
}

bool parse_log_level(std::string_view text, Level& level) {
  for (auto candidate : {Level::kError, Level::kWarn, Level::kInfo, Level::kDebug}) {
    if (text == level_name(candidate)) {
      level = candidate;
      return true;
    }
  }
  return false;
}

void write_log_line(Level level, const std::string& message) {
  const auto now = std::chrono::system_clock::now();
  const auto seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  char prefix[96];
  std::string line;
  if (g_format == LogFormat::kJson) {
    std::snprintf(prefix, sizeof prefix,
                  "{\"time\": \"%s.%03dZ\", \"pid\": %d, \"level\": \"%s\", \"message\": \"", stamp,
                  static_cast<int>(millis), static_cast<int>(getpid()), level_name(level));
    line = prefix;
    append_json_escaped(line, message);
    line += "\"}\n";
  } else {
    std::snprintf(prefix, sizeof prefix, "%s.%03dZ mrd[%d] %s: ", stamp, static_cast<int>(millis),
                  static_cast<int>(getpid()), level_name(level));
    line = prefix + message + "\n";
  }
  // One write per line: atomic for pipes up to PIPE_BUF, and never interleaved within a process.
  [[maybe_unused]] auto written = ::write(STDERR_FILENO, line.data(), line.size());
}

std::string hex_prefix(std::string_view bytes, std::size_t max_bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < max_bytes; ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (i) out += ' ';
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  if (bytes.size() > max_bytes) out += " ...";
  return out;
}

}  // namespace mrd::server
