// Results and server answers as JSON for programs: the --json output of mrctl.
//
// Every function returns one JSON value followed by '\n'. Strings are escaped by json.hpp;
// numbers that JSON cannot express (NaN, infinities) are null.
#pragma once

#include <cstddef>
#include <string>

#include "protocol/messages.hpp"

namespace mrd::client {

/// [{"key": "the", "count": 12}, ...] for the first `top` entries.
std::string counts_json(const protocol::Counts& counts, std::size_t top);

/// {"word": ["doc1", "doc2"], ...}
std::string postings_json(const protocol::Postings& postings);

/// {"count": 5, "mean": 3, "median": 3, "mode": 1, "min": 1, "max": 5}
std::string statistics_json(const protocol::Statistics& statistics);

/// {"rows": 2, "cols": 2, "values": [[1, 2], [3, 4]]}
std::string matrix_json(const protocol::Matrix& matrix);

/// [[1, 2], [3, 4]]: the values of matrix_json, rows as lists, without a final '\n'.
std::string matrix_rows_json(const protocol::Matrix& matrix);

/// Whichever of the above fits the result; `top` applies to counts only.
std::string result_json(const protocol::JobResult& result, std::size_t top);

/// "map_done": 3, "map_total": 10, "reduce_done": 0, "reduce_total": 2: the fields alone, for
/// an object of the caller's (mrd-web's course routes).
std::string progress_counts_json(const protocol::JobProgress& progress);

/// {"id": 7, "state": "mapping", "map_done": 3, "map_total": 10, ...}
std::string job_status_json(const protocol::JobProgress& progress);

/// [{"id": 7, "state": "done"}, ...]
std::string job_list_json(const protocol::TenantJobList& list);

/// {"uptime_ms": 1234, ...}
std::string server_stats_json(const protocol::ServerStats& stats);

/// job_status_json's fields, then "mapper", "reducer", "tenant", "input_bytes",
/// "submitted_ms", "started_ms", "finished_ms" and "failure".
std::string job_details_json(const protocol::JobDetails& details);

/// server_stats_json's fields, then "workers_busy", "tasks_done", and "task_us" and "job_us" as
/// {"buckets": [{"le": 1, "count": 0}, ..., {"le": null, "count": 3}], "sum": 46} (le null: +Inf;
/// counts cumulative).
std::string detailed_stats_json(const protocol::DetailedStats& stats);

}  // namespace mrd::client
