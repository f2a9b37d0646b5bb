#include "client/mrctl/progress_display.hpp"

#include <unistd.h>

#include <cstdio>

#include "client/progress_report.hpp"

namespace mrd::mrctl {

ProgressDisplay::Mode ProgressDisplay::choose_mode(bool quiet) {
  if (quiet) return Mode::kOff;
  return ::isatty(STDERR_FILENO) ? Mode::kBar : Mode::kLines;
}

void ProgressDisplay::update(const protocol::JobProgress& progress) {
  if (mode_ == Mode::kOff) return;
  const std::string text =
      mode_ == Mode::kBar ? client::progress_bar(progress) : client::progress_line(progress);
  if (text == shown_) return;
  shown_ = text;
  if (mode_ == Mode::kBar) {
    // Overwrite the old bar; pad with spaces in case the new one is shorter.
    const std::size_t pad = bar_columns_ > text.size() ? bar_columns_ - text.size() : 0;
    std::fprintf(stderr, "\r%s%*s", text.c_str(), static_cast<int>(pad), "");
    bar_columns_ = text.size();
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

void ProgressDisplay::note(const std::string& line) {
  if (mode_ == Mode::kOff) return;
  finish();
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void ProgressDisplay::finish() {
  if (bar_columns_ == 0) return;
  std::fprintf(stderr, "\r%*s\r", static_cast<int>(bar_columns_), "");
  std::fflush(stderr);
  bar_columns_ = 0;
  shown_.clear();
}

}  // namespace mrd::mrctl
