#include "client/text_output.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <variant>

#include "client/server_stats_fields.hpp"
#include "client/text_matrix.hpp"

namespace mrd::client {
namespace {

/// `text` right-aligned in `width` columns.
std::string pad_left(const std::string& text, std::size_t width) {
  return std::string(width > text.size() ? width - text.size() : 0, ' ') + text;
}

/// `text` left-aligned in `width` columns.
std::string pad_right(std::string_view text, std::size_t width) {
  return std::string(text) + std::string(width > text.size() ? width - text.size() : 0, ' ');
}

}  // namespace

std::string format_double(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

std::string counts_text(const protocol::Counts& counts, std::size_t top) {
  const std::size_t shown = std::min(top, counts.entries.size());
  std::size_t width = 0;
  for (std::size_t i = 0; i < shown; ++i) {
    width = std::max(width, std::to_string(counts.entries[i].count).size());
  }
  std::string out;
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& e = counts.entries[i];
    out += pad_left(std::to_string(e.count), width) + "  " + e.key + '\n';
  }
  return out;
}

std::string postings_text(const protocol::Postings& postings) {
  std::string out;
  for (const auto& p : postings.entries) {
    out += p.word + ':';
    for (const auto& d : p.documents)
      out += ' ' + d;
    out += '\n';
  }
  return out;
}

std::string statistics_text(const protocol::Statistics& s) {
  return "count   " + std::to_string(s.count) + "\nmean    " + format_double(s.mean) +
         "\nmedian  " + format_double(s.median) + "\nmode    " + format_double(s.mode) +
         "\nmin     " + format_double(s.min) + "\nmax     " + format_double(s.max) + '\n';
}

std::string result_text(const protocol::JobResult& result, std::size_t top) {
  if (const auto* counts = std::get_if<protocol::Counts>(&result)) return counts_text(*counts, top);
  if (const auto* postings = std::get_if<protocol::Postings>(&result)) {
    return postings_text(*postings);
  }
  if (const auto* matrix = std::get_if<protocol::Matrix>(&result)) {
    return format_text_matrix(*matrix);
  }
  return statistics_text(std::get<protocol::Statistics>(result));
}

std::string job_status_text(const protocol::JobProgress& p) {
  return "job " + std::to_string(p.id) + ": " + std::string(protocol::to_string(p.state)) +
         ", map " + std::to_string(p.map_done) + "/" + std::to_string(p.map_total) + ", reduce " +
         std::to_string(p.reduce_done) + "/" + std::to_string(p.reduce_total) + '\n';
}

std::string job_list_text(const protocol::TenantJobList& list) {
  std::size_t width = 2;  // "ID"
  bool tenants = false;   // a server without tokens has none: no column for them
  for (const auto& j : list.jobs) {
    width = std::max(width, std::to_string(j.id).size());
    tenants = tenants || !j.tenant.empty();
  }
  std::string out;
  if (list.jobs.empty()) return out;
  out += pad_left("ID", width) + (tenants ? "  STATE      TENANT\n" : "  STATE\n");
  for (const auto& j : list.jobs) {
    const std::string state(protocol::to_string(j.state));
    out += pad_left(std::to_string(j.id), width) + "  " +
           (tenants ? pad_right(state, 9) + "  " + (j.tenant.empty() ? "-" : j.tenant) : state) +
           '\n';
  }
  return out;
}

namespace {

/// The counters of STATS, then `more`, one per line, names padded to one width.
std::string detailed_stats_lines(
    const protocol::ServerStats& stats,
    std::initializer_list<std::pair<std::string_view, std::uint64_t>> more) {
  const auto fields = server_stats_fields(stats);
  std::size_t width = 0;
  for (const auto& [name, value] : fields)
    width = std::max(width, name.size());
  for (const auto& [name, value] : more)
    width = std::max(width, name.size());
  std::string out;
  for (const auto& [name, value] : fields)
    out += pad_right(name, width) + "  " + std::to_string(value) + '\n';
  for (const auto& [name, value] : more)
    out += pad_right(name, width) + "  " + std::to_string(value) + '\n';
  return out;
}

}  // namespace

std::string server_stats_text(const protocol::ServerStats& stats) {
  return detailed_stats_lines(stats, {});
}

namespace {

/// "2025-12-01 08:00:00.000 UTC" for a Unix time in milliseconds.
std::string utc_time(std::uint64_t unix_ms) {
  const auto seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[48];
  const auto n = std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &utc);
  std::snprintf(text + n, sizeof text - n, ".%03u UTC", static_cast<unsigned>(unix_ms % 1000));
  return text;
}

/// "after 12 ms" from `from` to `to`, or `otherwise` when `to` has not happened.
std::string after(std::uint64_t from, std::uint64_t to, const char* otherwise) {
  if (to == 0) return otherwise;
  if (from == 0 || to < from) return "at " + utc_time(to);
  return "after " + std::to_string(to - from) + " ms";
}

}  // namespace

std::string job_details_text(const protocol::JobDetails& d) {
  std::string out = job_status_text(d.progress);
  out += "  " + (d.mapper.empty() ? std::string("(a job from before the server's restart)")
                                  : d.mapper + " + " + d.reducer + ", " +
                                        std::to_string(d.input_bytes) + " bytes");
  if (!d.tenant.empty()) out += ", tenant " + d.tenant;
  out += '\n';
  out += "  " + (d.submitted_ms ? "submitted " + utc_time(d.submitted_ms)
                                : std::string("submitted before the server's restart"));
  out += ", started " + after(d.submitted_ms, d.started_ms, "not yet");
  out += ", finished " + after(d.submitted_ms, d.finished_ms, "not yet") + '\n';
  if (!d.failure.empty()) out += "  failed: " + d.failure + '\n';
  return out;
}

std::string detailed_stats_text(const protocol::DetailedStats& stats) {
  return detailed_stats_lines(stats.counters, {{"workers_busy", stats.workers_busy},
                                               {"tasks_done", stats.tasks_done},
                                               {"task_us_count", stats.task_us.count()},
                                               {"task_us_sum", stats.task_us.sum_us},
                                               {"job_us_count", stats.job_us.count()},
                                               {"job_us_sum", stats.job_us.sum_us}});
}

}  // namespace mrd::client
