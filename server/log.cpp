#include "server/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace mrd::server {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

const char* level_name(Level level) {
  switch (level) {
    case Level::kError: return "error";
    case Level::kWarn: return "warn";
    case Level::kInfo: return "info";
    case Level::kDebug: return "debug";
  }
  return "?";
}
}  // namespace

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
  char prefix[64];
  std::snprintf(prefix, sizeof prefix, "%s.%03dZ mrd[%d] %s: ", stamp, static_cast<int>(millis),
                static_cast<int>(getpid()), level_name(level));
  std::string line = prefix + message + "\n";
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
