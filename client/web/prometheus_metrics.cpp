#include "client/web/prometheus_metrics.hpp"

#include <charconv>
#include <cstdio>
#include <functional>
#include <string_view>

namespace mrd::web {

namespace {

/// One metric taken from STATS: its name, type and help, and how to read it.
struct StatsMetric {
  std::string_view name;
  std::string_view type;  ///< "counter" or "gauge"
  std::string_view help;
  std::function<double(const protocol::DetailedStats&)> value;
};

const std::vector<StatsMetric>& stats_metrics() {
  using S = protocol::DetailedStats;
  static const std::vector<StatsMetric> metrics{
      {"mrd_uptime_seconds", "gauge", "Seconds since the server started.",
       [](const S& s) { return s.counters.uptime_ms / 1000.0; }},
      {"mrd_connections_open", "gauge", "Client connections open now.",
       [](const S& s) { return double(s.counters.connections_open); }},
      {"mrd_connections_total", "counter", "Client connections accepted.",
       [](const S& s) { return double(s.counters.connections_total); }},
      {"mrd_requests_total", "counter", "Requests answered.",
       [](const S& s) { return double(s.counters.requests_total); }},
      {"mrd_requests_rejected_total", "counter",
       "Requests answered with an error about the request itself.",
       [](const S& s) { return double(s.counters.requests_rejected); }},
      {"mrd_jobs_submitted_total", "counter", "Jobs accepted.",
       [](const S& s) { return double(s.counters.jobs_submitted); }},
      {"mrd_jobs_done_total", "counter", "Jobs finished with a result.",
       [](const S& s) { return double(s.counters.jobs_done); }},
      {"mrd_jobs_failed_total", "counter", "Jobs that failed, with a reason.",
       [](const S& s) { return double(s.counters.jobs_failed); }},
      {"mrd_jobs_cancelled_total", "counter", "CANCELs that stopped a job or released a result.",
       [](const S& s) { return double(s.counters.jobs_cancelled); }},
      {"mrd_jobs_expired_total", "counter", "Finished jobs whose results were evicted.",
       [](const S& s) { return double(s.counters.jobs_expired); }},
      {"mrd_jobs_unfinished", "gauge", "Jobs queued or running now.",
       [](const S& s) { return double(s.counters.jobs_unfinished); }},
      {"mrd_workers", "gauge", "Worker processes in the pool.",
       [](const S& s) { return double(s.counters.workers); }},
      {"mrd_worker_restarts_total", "counter",
       "Worker processes replaced: died, ran past a deadline, or stopped by a cancel.",
       [](const S& s) { return double(s.counters.worker_restarts); }},
      {"mrd_retained_result_bytes", "gauge", "Bytes of finished jobs kept for FETCH.",
       [](const S& s) { return double(s.counters.retained_result_bytes); }},
      {"mrd_workers_busy", "gauge", "Worker processes running a task now.",
       [](const S& s) { return double(s.workers_busy); }},
      {"mrd_tasks_done_total", "counter", "Map and reduce tasks whose output was taken in.",
       [](const S& s) { return double(s.tasks_done); }},
  };
  return metrics;
}

/// The shortest text that reads back as the same double ("12", "39.312").
std::string number(double value) {
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return error == std::errc() ? std::string(buffer, end) : "NaN";
}

/// A bucket's bound as people write it: "0.0001", "2.5", "60" (not "1e-04").
std::string bound(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.10g", seconds);
  return buffer;
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

/// A histogram in microseconds as Prometheus wants it: seconds, cumulative buckets with an
/// "le" label ("+Inf" last), then _sum and _count.
template <class Pick>
void histogram(std::string& out, const std::vector<ServerScrape>& scrapes, std::string_view name,
               std::string_view help, Pick pick) {
  header(out, name, "histogram", help);
  const std::string base(name);
  for (const auto& scrape : scrapes) {
    if (!scrape.stats) continue;
    const auto& h = pick(*scrape.stats);
    const auto label = server_label(scrape);
    for (const auto& bucket : h.buckets) {
      const auto le = bucket.upper_us == UINT64_MAX ? std::string("+Inf")
                                                    : bound(double(bucket.upper_us) / 1e6);
      sample(out, base + "_bucket", label + ",le=\"" + le + "\"", double(bucket.count));
    }
    sample(out, base + "_sum", label, double(h.sum_us) / 1e6);
    sample(out, base + "_count", label, double(h.count()));
  }
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
  histogram(
      out, scrapes, "mrd_task_duration_seconds",
      "Seconds a task took, from handed to a worker to its output taken in.",
      [](const protocol::DetailedStats& s) -> const protocol::Histogram& { return s.task_us; });
  histogram(
      out, scrapes, "mrd_job_duration_seconds",
      "Seconds a finished job took, from accepted to done or failed.",
      [](const protocol::DetailedStats& s) -> const protocol::Histogram& { return s.job_us; });
  header(out, "mrd_scrape_duration_seconds", "gauge",
         "Seconds this scrape took to ask the server.");
  for (const auto& scrape : scrapes)
    sample(out, "mrd_scrape_duration_seconds", server_label(scrape), scrape.seconds);
  return out;
}

}  // namespace mrd::web
