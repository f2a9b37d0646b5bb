#include "client/progress_report.hpp"

#include <algorithm>

namespace mrd::client {
namespace {

/// Tasks done and in all of the phase the job is in; {0, 0} while queued or once finished.
std::pair<std::uint32_t, std::uint32_t> phase_tasks(const protocol::JobProgress& p) {
  switch (p.state) {
    case protocol::JobState::kMapping: return {p.map_done, p.map_total};
    case protocol::JobState::kReducing: return {p.reduce_done, p.reduce_total};
    default: return {0, 0};
  }
}

bool has_tasks(const protocol::JobProgress& p) {
  return p.state == protocol::JobState::kMapping || p.state == protocol::JobState::kReducing;
}

}  // namespace

std::string progress_line(const protocol::JobProgress& p) {
  const std::string state(protocol::to_string(p.state));
  if (protocol::is_finished(p.state)) return state;
  if (!has_tasks(p)) return "in-progress - " + state;
  const auto [done, total] = phase_tasks(p);
  return "in-progress - " + state + " (" + std::to_string(done) + "/" + std::to_string(total) +
         " done)";
}

std::string progress_bar(const protocol::JobProgress& p, std::size_t width) {
  const auto [done, total] = phase_tasks(p);
  const std::size_t filled =
      total == 0 ? 0 : std::min<std::size_t>(width, std::uint64_t{done} * width / total);
  std::string out = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] " +
                    std::string(protocol::to_string(p.state));
  if (has_tasks(p)) out += " " + std::to_string(done) + "/" + std::to_string(total);
  return out;
}

}  // namespace mrd::client
