#include "client/json_output.hpp"

#include <algorithm>
#include <variant>

#include "client/json.hpp"
#include "client/server_stats_fields.hpp"

namespace mrd::client {

std::string counts_json(const protocol::Counts& counts, std::size_t top) {
  const std::size_t shown = std::min(top, counts.entries.size());
  std::string out = "[";
  for (std::size_t i = 0; i < shown; ++i) {
    out += i == 0 ? "\n  {\"key\": " : ",\n  {\"key\": ";
    append_json_string(out, counts.entries[i].key);
    out += ", \"count\": " + std::to_string(counts.entries[i].count) + "}";
  }
  out += shown == 0 ? "]\n" : "\n]\n";
  return out;
}

std::string postings_json(const protocol::Postings& postings) {
  std::string out = "{";
  bool first = true;
  for (const auto& p : postings.entries) {
    out += first ? "\n  " : ",\n  ";
    first = false;
    append_json_string(out, p.word);
    out += ": [";
    for (std::size_t i = 0; i < p.documents.size(); ++i) {
      if (i > 0) out += ", ";
      append_json_string(out, p.documents[i]);
    }
    out += "]";
  }
  out += postings.entries.empty() ? "}\n" : "\n}\n";
  return out;
}

std::string statistics_json(const protocol::Statistics& s) {
  return "{\"count\": " + std::to_string(s.count) + ", \"mean\": " + json_number(s.mean) +
         ", \"median\": " + json_number(s.median) + ", \"mode\": " + json_number(s.mode) +
         ", \"min\": " + json_number(s.min) + ", \"max\": " + json_number(s.max) + "}\n";
}

std::string matrix_rows_json(const protocol::Matrix& m) {
  std::string out = "[";
  for (std::uint64_t r = 0; r < m.rows; ++r) {
    out += r == 0 ? "\n  [" : ",\n  [";
    for (std::uint64_t c = 0; c < m.cols; ++c) {
      if (c > 0) out += ", ";
      out += json_number(m.values[r * m.cols + c]);
    }
    out += "]";
  }
  out += m.rows == 0 ? "]" : "\n]";
  return out;
}

std::string matrix_json(const protocol::Matrix& m) {
  return "{\"rows\": " + std::to_string(m.rows) + ", \"cols\": " + std::to_string(m.cols) +
         ", \"values\": " + matrix_rows_json(m) + "}\n";
}

std::string result_json(const protocol::JobResult& result, std::size_t top) {
  if (const auto* counts = std::get_if<protocol::Counts>(&result)) return counts_json(*counts, top);
  if (const auto* postings = std::get_if<protocol::Postings>(&result)) {
    return postings_json(*postings);
  }
  if (const auto* matrix = std::get_if<protocol::Matrix>(&result)) return matrix_json(*matrix);
  return statistics_json(std::get<protocol::Statistics>(result));
}

std::string progress_counts_json(const protocol::JobProgress& p) {
  return "\"map_done\": " + std::to_string(p.map_done) +
         ", \"map_total\": " + std::to_string(p.map_total) +
         ", \"reduce_done\": " + std::to_string(p.reduce_done) +
         ", \"reduce_total\": " + std::to_string(p.reduce_total);
}

std::string job_status_json(const protocol::JobProgress& p) {
  return "{\"id\": " + std::to_string(p.id) +
         ", \"state\": " + json_string(protocol::to_string(p.state)) + ", " +
         progress_counts_json(p) + "}\n";
}

std::string job_list_json(const protocol::TenantJobList& list) {
  std::string out = "[";
  for (std::size_t i = 0; i < list.jobs.size(); ++i) {
    out += i == 0 ? "\n  " : ",\n  ";
    out += "{\"id\": " + std::to_string(list.jobs[i].id) +
           ", \"state\": " + json_string(protocol::to_string(list.jobs[i].state)) +
           ", \"tenant\": " + json_string(list.jobs[i].tenant) + "}";
  }
  out += list.jobs.empty() ? "]\n" : "\n]\n";
  return out;
}

std::string server_stats_json(const protocol::ServerStats& stats) {
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : server_stats_fields(stats)) {
    out += first ? "\n  " : ",\n  ";
    first = false;
    append_json_string(out, name);
    out += ": " + std::to_string(value);
  }
  out += "\n}\n";
  return out;
}

namespace {

/// `object` (a JSON object and '\n', as the functions above write them) with `fields` (", ..."
/// pairs) added before its closing brace.
std::string with_fields(std::string object, const std::string& fields) {
  while (!object.empty() && (object.back() == '\n' || object.back() == '}'))
    object.pop_back();
  return object + fields + "}\n";
}

std::string histogram_json(const protocol::Histogram& h) {
  std::string out = "{\"buckets\": [";
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    const auto& b = h.buckets[i];
    if (i > 0) out += ", ";
    out += "{\"le\": " +
           (b.upper_us == UINT64_MAX ? std::string("null") : std::to_string(b.upper_us)) +
           ", \"count\": " + std::to_string(b.count) + "}";
  }
  return out + "], \"sum\": " + std::to_string(h.sum_us) + "}";
}

}  // namespace

std::string job_details_json(const protocol::JobDetails& d) {
  return with_fields(
      job_status_json(d.progress),
      ", \"mapper\": " + json_string(d.mapper) + ", \"reducer\": " + json_string(d.reducer) +
          ", \"tenant\": " + json_string(d.tenant) + ", \"input_bytes\": " +
          std::to_string(d.input_bytes) + ", \"submitted_ms\": " + std::to_string(d.submitted_ms) +
          ", \"started_ms\": " + std::to_string(d.started_ms) + ", \"finished_ms\": " +
          std::to_string(d.finished_ms) + ", \"failure\": " + json_string(d.failure));
}

std::string detailed_stats_json(const protocol::DetailedStats& stats) {
  // One field per line, as server_stats_json writes them.
  return with_fields(server_stats_json(stats.counters),
                     ",\n  \"workers_busy\": " + std::to_string(stats.workers_busy) +
                         ",\n  \"tasks_done\": " + std::to_string(stats.tasks_done) +
                         ",\n  \"task_us\": " + histogram_json(stats.task_us) +
                         ",\n  \"job_us\": " + histogram_json(stats.job_us) + "\n");
}

}  // namespace mrd::client
