// One logging helper for the whole server: timestamped lines on stderr, with a level.
//
//   log(Level::kInfo, "listening on ", endpoint);
//
// Messages are assembled with operator<< and written with one write() so lines from the network
// thread and the scheduler thread never interleave mid-line.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace mrd::server {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

/// Lines above this level are dropped. Set once at start-up (mrd --log-level).
void set_log_level(Level level);
bool log_enabled(Level level);

/// Parses "error", "warn", "info" or "debug".
bool parse_log_level(std::string_view text, Level& level);

/// kText: "2026-12-01T08:15:46.828Z mrd[26872] info: message". kJson: one object per line, for
/// log collectors: {"time": "...", "pid": 26872, "level": "info", "message": "..."}.
enum class LogFormat { kText, kJson };
void set_log_format(LogFormat format);

void write_log_line(Level level, const std::string& message);

template <class... Parts>
void log(Level level, const Parts&... parts) {
  if (!log_enabled(level)) return;
  std::ostringstream line;
  (line << ... << parts);
  write_log_line(level, line.str());
}

/// At most `max_bytes` of `bytes` as hex, for logging bad input without flooding the log.
std::string hex_prefix(std::string_view bytes, std::size_t max_bytes = 16);

}  // namespace mrd::server
