#include "client/web/prometheus_metrics.hpp"

#include <charconv>
#include <functional>
#include <string_view>

namespace mrd::web {

namespace {

/// One metric taken from STATS: its name, type and help, and how to read it.
struct StatsMetric {
  std::string_view name;
  std::string_view type;  ///< "counter" or "gauge"
  std::string_view help;
  std::function<double(const protocol::ServerStats&)> value;
};

const std::vector<StatsMetric>& stats_metrics() {
  using S = protocol::ServerStats;
  static const std::vector<StatsMetric> metrics{
      {"mrd_uptime_seconds", "gauge", "Seconds since the server started.",
       [](const S& s) { return s.uptime_ms / 1000.0; }},
      {"mrd_connections_open", "gauge", "Client connections open now.",
       [](const S& s) { return double(s.connections_open); }},
      {"mrd_connections_total", "counter", "Client connections accepted.",
       [](const S& s) { return double(s.connections_total); }},
      {"mrd_requests_total", "counter", "Requests answered.",
       [](const S& s) { return double(s.requests_total); }},
      {"mrd_requests_rejected_total", "counter",
       "Requests answered with an error about the request itself.",
       [](const S& s) { return double(s.requests_rejected); }},
      {"mrd_jobs_submitted_total", "counter", "Jobs accepted.",
       [](const S& s) { return double(s.jobs_submitted); }},
      {"mrd_jobs_done_total", "counter", "Jobs finished with a result.",
       [](const S& s) { return double(s.jobs_done); }},
      {"mrd_jobs_failed_total", "counter", "Jobs that failed, with a reason.",
       [](const S& s) { return double(s.jobs_failed); }},
      {"mrd_jobs_cancelled_total", "counter", "CANCELs that stopped a job or released a result.",
       [](const S& s) { return double(s.jobs_cancelled); }},
      {"mrd_jobs_expired_total", "counter", "Finished jobs whose results were evicted.",
       [](const S& s) { return double(s.jobs_expired); }},
      {"mrd_jobs_unfinished", "gauge", "Jobs queued or running now.",
       [](const S& s) { return double(s.jobs_unfinished); }},
      {"mrd_workers", "gauge", "Worker processes in the pool.",
       [](const S& s) { return double(s.workers); }},
      {"mrd_worker_restarts_total", "counter",
       "Worker processes replaced: died, ran past a deadline, or stopped by a cancel.",
       [](const S& s) { return double(s.worker_restarts); }},
      {"mrd_retained_result_bytes", "gauge", "Bytes of finished jobs kept for FETCH.",
       [](const S& s) { return double(s.retained_result_bytes); }},
  };
  return metrics;
}

/// The shortest text that reads back as the same double ("12", "39.312").
std::string number(double value) {
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return error == std::errc() ? std::string(buffer, end) : "NaN";
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, const std::string& labels, double value) {
  out.append(name).append("{").append(labels).append("} ").append(number(value)).append("\n");
}

std::string server_label(const ServerScrape& scrape) {
  return "server=\"" + escape_label_value(scrape.server) + "\"";
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string prometheus_metrics(const std::vector<ServerScrape>& scrapes) {
  std::string out;
  header(out, "mrd_up", "gauge", "1 if the server answered this scrape, 0 if not.");
  for (const auto& scrape : scrapes)
    sample(out, "mrd_up", server_label(scrape), scrape.stats ? 1 : 0);
  for (const auto& metric : stats_metrics()) {
    header(out, metric.name, metric.type, metric.help);
    for (const auto& scrape : scrapes) {
      if (scrape.stats) sample(out, metric.name, server_label(scrape), metric.value(*scrape.stats));
    }
  }
  header(out, "mrd_jobs", "gauge", "Jobs the server keeps, by state.");
  for (const auto& scrape : scrapes) {
    if (!scrape.stats) continue;
    for (std::size_t state = 0; state < scrape.jobs_by_state.size(); ++state) {
      const auto name = protocol::to_string(static_cast<protocol::JobState>(state));
      sample(out, "mrd_jobs", server_label(scrape) + ",state=\"" + std::string(name) + "\"",
             double(scrape.jobs_by_state[state]));
    }
  }
  header(out, "mrd_scrape_duration_seconds", "gauge",
         "Seconds this scrape took to ask the server.");
  for (const auto& scrape : scrapes)
    sample(out, "mrd_scrape_duration_seconds", server_label(scrape), scrape.seconds);
  return out;
}

}  // namespace mrd::web
