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
/// `text` as the contents of a JSON string: quote, backslash and control bytes escaped. Other
/// bytes are copied (a peer's bytes in a message may not be UTF-8; collectors cope).
void append_json_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
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
