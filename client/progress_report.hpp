// A running job's progress in one line, for a log or for a bar redrawn in place on a terminal.
#pragma once

#include <cstddef>
#include <string>

#include "protocol/messages.hpp"

namespace mrd::client {

/// "in-progress - mapping (7/10 done)", "in-progress - queued"; just the state once finished.
std::string progress_line(const protocol::JobProgress& progress);

/// "[#######...] mapping 7/10": the current phase's share of tasks done, `width` cells wide.
std::string progress_bar(const protocol::JobProgress& progress, std::size_t width = 30);

}  // namespace mrd::client
