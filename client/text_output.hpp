// Results and server answers as text for people, the way mrctl prints them.
//
// Every function returns whole lines, each ending in '\n'.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/messages.hpp"

namespace mrd::client {

/// `top` for "show every entry".
inline constexpr std::size_t kAllEntries = SIZE_MAX;

/// A double with round-trip precision, as "%.17g".
std::string format_double(double value);

/// The first `top` entries as "count  key", counts right-aligned, most frequent first.
std::string counts_text(const protocol::Counts& counts, std::size_t top);

/// "word: doc1 doc2 ..." per word, in the server's (byte) order.
std::string postings_text(const protocol::Postings& postings);

/// count, mean, median, mode, min and max, one "name  value" per line.
std::string statistics_text(const protocol::Statistics& statistics);

/// Any result: counts limited to `top`, postings, statistics, or a matrix as numpy.savetxt.
std::string result_text(const protocol::JobResult& result, std::size_t top);

/// "job 7: mapping, map 3/10, reduce 0/4".
std::string job_status_text(const protocol::JobProgress& progress);

/// "ID  STATE" per job; nothing for an empty list.
std::string job_list_text(const protocol::TenantJobList& list);

/// "name  value" per counter.
std::string server_stats_text(const protocol::ServerStats& stats);

/// job_status_text, then what the job is and when each step happened:
///   job 7: done, map 4/4, reduce 2/2
///     words + sum, 66 bytes, tenant alice
///     submitted 2025-12-01 08:00:00.000 UTC, started after 12 ms, finished after 250 ms
std::string job_details_text(const protocol::JobDetails& details);

/// server_stats_text, then the busy workers, the tasks done and the latencies' counts and sums.
std::string detailed_stats_text(const protocol::DetailedStats& stats);

}  // namespace mrd::client
