// GET /metrics: the STATS counters of every mrd server in the Prometheus text exposition format
// (version 0.0.4), each series labelled with the server it came from. Pure, so the exact text is
// tested (tests/web_json_test.cpp); the real output is also checked with `promtool check metrics`.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/messages.hpp"

namespace mrd::web {

/// What one server said when asked for the scrape.
struct ServerScrape {
  std::string server;                            ///< "host:port", the `server` label
  std::optional<protocol::DetailedStats> stats;  ///< nullopt: it did not answer (mrd_up 0)
  std::array<std::uint64_t, 6> jobs_by_state{};  ///< indexed by protocol::JobState, from LIST
  double seconds = 0;                            ///< how long asking took
};

/// The exposition: HELP and TYPE once per metric, then one sample per server that answered
/// (mrd_up has one for every server).
std::string prometheus_metrics(const std::vector<ServerScrape>& scrapes);

/// A label value with '\', '"' and newlines escaped, as the format asks.
std::string escape_label_value(std::string_view value);

}  // namespace mrd::web
