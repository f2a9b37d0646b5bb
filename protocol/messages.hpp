// The bodies carried by requests and replies, as plain C++ values.
//
// codec.hpp turns each into bytes and back; docs/protocol.md gives their byte layouts.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "protocol/wire.hpp"

namespace mrd::protocol {

/// A dense float64 matrix, row-major: element (r, c) is values[r * cols + c].
struct Matrix {
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  std::vector<double> values;  ///< rows * cols elements
  bool operator==(const Matrix&) const = default;
};

/// A named text. Names identify documents in an inverted index; text is any bytes.
struct Document {
  std::string name;
  std::string text;
  bool operator==(const Document&) const = default;
};

/// Input kind 0: texts, for the word, bigram and index jobs.
struct Documents {
  std::vector<Document> documents;
  bool operator==(const Documents&) const = default;
};

/// Input kind 1: numbers, for the statistics job.
struct Numbers {
  std::vector<double> values;
  bool operator==(const Numbers&) const = default;
};

/// Input kind 2: two matrices, for the matrix product A x B.
struct MatrixPair {
  Matrix a;
  Matrix b;
  bool operator==(const MatrixPair&) const = default;
};

/// A job's input; the variant index is the input kind byte on the wire.
using JobInput = std::variant<Documents, Numbers, MatrixPair>;

/// Tuning a client may ask for; zero means "the server's default".
struct JobOptions {
  std::uint64_t chunk_bytes = 0;      ///< bytes of input per map task
  std::uint32_t partitions = 0;       ///< number of reduce partitions
  std::uint32_t task_timeout_ms = 0;  ///< longest a single task may run before its worker is killed
  std::uint32_t memory_limit_mib = 0;  ///< address-space limit of a worker running this job's tasks
  bool operator==(const JobOptions&) const = default;
};

/// SUBMIT body: which mapper and reducer to run, over what.
struct SubmitRequest {
  std::string mapper;
  std::string reducer;
  JobOptions options;
  JobInput input;
  /// Chosen by the client; the same non-empty key again gets the same job id instead of a new job.
  /// (Last here so that {mapper, reducer, options, input} initialises a request without one; on
  /// the wire it comes before the input.)
  std::string idempotency_key{};
  bool operator==(const SubmitRequest&) const = default;
};

/// HELLO body, both ways; the reply adds the server's name and version. (A version 2 reply is a
/// HelloReply.)
struct Hello {
  std::uint16_t protocol_version = kProtocolVersion;
  std::string software;  ///< empty in requests; "mrd 0.1.0" in replies
  bool operator==(const Hello&) const = default;
};

/// HELLO's OK body in version 2: version 1's, then flags.
struct HelloReply {
  std::uint16_t protocol_version = kProtocolVersion;
  std::string software;
  std::uint8_t flags = 0;  ///< kHelloAuthRequired, ...; other bits are 0
  bool operator==(const HelloReply&) const = default;
};

/// AUTH body: the token, as the operator handed it out.
struct AuthRequest {
  std::string token;
  bool operator==(const AuthRequest&) const = default;
};

/// AUTH's OK body: who the token says the connection is.
struct AuthReply {
  std::string tenant;
  Role role = Role::kUser;
  bool operator==(const AuthReply&) const = default;
};

/// A key and how often it occurred (word count, bigram count).
struct KeyCount {
  std::string key;
  std::uint64_t count = 0;
  bool operator==(const KeyCount&) const = default;
};

/// Result kind 0: counts, most frequent first, ties by key in byte order.
struct Counts {
  std::vector<KeyCount> entries;
  bool operator==(const Counts&) const = default;
};

/// A word and the sorted names of the documents it occurs in.
struct Posting {
  std::string word;
  std::vector<std::string> documents;
  bool operator==(const Posting&) const = default;
};

/// Result kind 1: an inverted index, words in byte order.
struct Postings {
  std::vector<Posting> entries;
  bool operator==(const Postings&) const = default;
};

/// Result kind 3: summary statistics of a list of numbers. With count 0 every other field is NaN.
struct Statistics {
  std::uint64_t count = 0;
  double mean = 0, median = 0, mode = 0, min = 0, max = 0;
  bool operator==(const Statistics&) const = default;
};

/// A finished job's result; the variant index is the result kind byte on the wire.
using JobResult = std::variant<Counts, Postings, Matrix, Statistics>;

/// STATUS reply, and FETCH's PENDING reply: where a job is.
struct JobProgress {
  std::uint32_t id = 0;
  JobState state = JobState::kQueued;
  std::uint32_t map_done = 0;
  std::uint32_t map_total = 0;
  std::uint32_t reduce_done = 0;
  std::uint32_t reduce_total = 0;
  bool operator==(const JobProgress&) const = default;
};

/// STATUS body in version 4 (a bare u32 id asks for a JobProgress, as in version 1).
struct StatusRequest {
  std::uint32_t id = 0;
  std::uint8_t options = kStatusWithDetails;  ///< kStatusWithDetails; other bits are 0
  bool operator==(const StatusRequest&) const = default;
};

/// STATUS reply to a StatusRequest with kStatusWithDetails: where a job is, what it is, whose,
/// and when each step of its life happened. Times are Unix time in milliseconds; 0 means "not
/// yet", or unknown for a job the server restored from its data directory (docs/protocol.md).
struct JobDetails {
  JobProgress progress;
  std::string mapper;
  std::string reducer;
  std::string tenant;              ///< who submitted it; empty without a token
  std::uint64_t input_bytes = 0;   ///< the length of the SUBMIT body that carried it
  std::uint64_t submitted_ms = 0;  ///< when the server accepted it
  std::uint64_t started_ms = 0;    ///< when its first task went to a worker
  std::uint64_t finished_ms = 0;   ///< when it was done, failed or cancelled
  std::string failure;             ///< why it failed (as FETCH says); empty otherwise
  bool operator==(const JobDetails&) const = default;
};

/// One row of a LIST reply.
struct JobSummary {
  std::uint32_t id = 0;
  JobState state = JobState::kQueued;
  bool operator==(const JobSummary&) const = default;
};

/// LIST reply: every job the server remembers, by id.
struct JobList {
  std::vector<JobSummary> jobs;
  bool operator==(const JobList&) const = default;
};

/// LIST body in version 3 (an empty body asks for a JobList, as in version 1).
struct ListRequest {
  std::uint8_t options = kListWithTenants;  ///< kListWithTenants; other bits are 0
  bool operator==(const ListRequest&) const = default;
};

/// One row of a LIST reply to a ListRequest with kListWithTenants.
struct TenantJobSummary {
  std::uint32_t id = 0;
  JobState state = JobState::kQueued;
  std::string tenant;  ///< who submitted it; empty for a job submitted without a token
  bool operator==(const TenantJobSummary&) const = default;
};

/// LIST reply with kListWithTenants: the jobs the caller may see, by id, with their tenants.
struct TenantJobList {
  std::vector<TenantJobSummary> jobs;
  bool operator==(const TenantJobList&) const = default;
};

/// STATS reply: the server's counters since it started.
struct ServerStats {
  std::uint64_t uptime_ms = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t connections_total = 0;
  std::uint64_t requests_total = 0;
  std::uint64_t requests_rejected = 0;  ///< replies with an error status about the request itself
  std::uint64_t jobs_submitted = 0;
  std::uint64_t jobs_done = 0;
  std::uint64_t jobs_failed = 0;
  std::uint64_t jobs_cancelled = 0;
  std::uint64_t jobs_expired = 0;
  std::uint64_t jobs_unfinished = 0;  ///< queued or running
  std::uint64_t workers = 0;
  std::uint64_t worker_restarts = 0;
  std::uint64_t retained_result_bytes = 0;
  bool operator==(const ServerStats&) const = default;
};

/// STATS body in version 4 (an empty body asks for ServerStats, as in version 1).
struct StatsRequest {
  std::uint8_t options = kStatsWithDetails;  ///< kStatsWithDetails; other bits are 0
  bool operator==(const StatsRequest&) const = default;
};

/// A histogram of durations: for each bucket its upper bound in microseconds (the last one
/// UINT64_MAX, "+Inf") and how many durations were at most that (cumulative, as Prometheus
/// counts them), then the sum of every duration in microseconds.
struct Histogram {
  struct Bucket {
    std::uint64_t upper_us = 0;
    std::uint64_t count = 0;
    bool operator==(const Bucket&) const = default;
  };
  std::vector<Bucket> buckets;
  std::uint64_t sum_us = 0;
  /// How many durations in all: the last (unbounded) bucket's cumulative count.
  std::uint64_t count() const { return buckets.empty() ? 0 : buckets.back().count; }
  bool operator==(const Histogram&) const = default;
};

/// STATS reply to a StatsRequest with kStatsWithDetails.
struct DetailedStats {
  ServerStats counters;
  std::uint64_t workers_busy = 0;  ///< worker processes running a task now
  std::uint64_t tasks_done = 0;    ///< map and reduce tasks whose output was taken in
  Histogram task_us;               ///< how long those tasks took, from handed out to taken in
  Histogram job_us;                ///< how long finished jobs took, from accepted to finished
  bool operator==(const DetailedStats&) const = default;
};

}  // namespace mrd::protocol
