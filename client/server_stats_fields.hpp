// ServerStats as a list of (name, value) pairs, so text and JSON output list the same counters.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <utility>

#include "protocol/messages.hpp"

namespace mrd::client {

/// Every counter in wire order, named as in messages.hpp.
inline std::array<std::pair<std::string_view, std::uint64_t>, 14> server_stats_fields(
    const protocol::ServerStats& s) {
  return {{
      {"uptime_ms", s.uptime_ms},
      {"connections_open", s.connections_open},
      {"connections_total", s.connections_total},
      {"requests_total", s.requests_total},
      {"requests_rejected", s.requests_rejected},
      {"jobs_submitted", s.jobs_submitted},
      {"jobs_done", s.jobs_done},
      {"jobs_failed", s.jobs_failed},
      {"jobs_cancelled", s.jobs_cancelled},
      {"jobs_expired", s.jobs_expired},
      {"jobs_unfinished", s.jobs_unfinished},
      {"workers", s.workers},
      {"worker_restarts", s.worker_restarts},
      {"retained_result_bytes", s.retained_result_bytes},
  }};
}

}  // namespace mrd::client
