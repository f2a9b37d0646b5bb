// ProgressDisplay: shows a job's progress on stderr while mrctl waits for it.
//
// On a terminal it is one bar redrawn in place; in a log (stderr redirected) it is one line per
// change, so a log of a long job stays short; with --quiet it is nothing.
#pragma once

#include <cstddef>
#include <string>

#include "protocol/messages.hpp"

namespace mrd::mrctl {

class ProgressDisplay {
 public:
  enum class Mode { kOff, kBar, kLines };

  /// kOff if `quiet`, else kBar when stderr is a terminal and kLines when it is not.
  static Mode choose_mode(bool quiet);

  explicit ProgressDisplay(Mode mode) : mode_(mode) {}
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;
  ~ProgressDisplay() { finish(); }

  /// Shows `progress` if it differs from what is shown.
  void update(const protocol::JobProgress& progress);

  /// Says something once, on its own line (the bar is cleared first). Ignored when kOff.
  void note(const std::string& line);

  /// Erases the bar, so what follows starts on a clean line. Safe to call more than once.
  void finish();

 private:
  Mode mode_;
  std::string shown_;            ///< the text last written
  std::size_t bar_columns_ = 0;  ///< width of the bar now on screen, 0 if none
};

}  // namespace mrd::mrctl
