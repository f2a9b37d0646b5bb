// mrd-web's pure parts: JSON request bodies into SUBMIT requests (and the 400s of bad ones), and
// the Prometheus text. The routes themselves are tested through the real programs in
// tests/web_test.py.
#include <gtest/gtest.h>

#include <cmath>

#include "client/web/json_requests.hpp"
#include "client/web/prometheus_metrics.hpp"

namespace mrd::web {
namespace {

using protocol::Documents;
using protocol::Matrix;
using protocol::MatrixPair;
using protocol::Numbers;
using protocol::SubmitRequest;

/// The message of the BadBody that `body` gets, or "" if it is accepted.
std::string refusal(std::string_view body) {
  try {
    job_request_from_json(body);
    return "";
  } catch (const BadBody& e) {
    return e.what();
  }
}

TEST(WebJson, EveryInputKindBecomesItsRequest) {
  EXPECT_EQ(job_request_from_json(R"({"mapper": "words", "text": "one two two"})"),
            (SubmitRequest{"words", "sum", {}, Documents{{{"text", "one two two"}}}}));
  EXPECT_EQ(job_request_from_json(
                R"({"mapper": "index", "documents": [{"name": "a", "text": "x"}, "y z"]})"),
            (SubmitRequest{"index", "postings", {}, Documents{{{"a", "x"}, {"2", "y z"}}}}));
  EXPECT_EQ(job_request_from_json(R"({"mapper": "numbers", "numbers": [1, 2.5, -3e2]})"),
            (SubmitRequest{"numbers", "stats", {}, Numbers{{1, 2.5, -300}}}));
  EXPECT_EQ(job_request_from_json(
                R"({"mapper": "matmul", "matrix_a": [[1, 2]], "matrix_b": [[3], [4]]})"),
            (SubmitRequest{"matmul", "rows", {}, MatrixPair{{1, 2, {1, 2}}, {2, 1, {3, 4}}}}));
  EXPECT_EQ(multiply_request_from_json(R"({"matrix_a": [], "matrix_b": [[], []]})"),
            (SubmitRequest{"matmul", "rows", {}, MatrixPair{{0, 0, {}}, {2, 0, {}}}}));
}

TEST(WebJson, ReducerOptionsAndKeyAreTakenAsGiven) {
  const auto request = job_request_from_json(
      R"({"mapper": "bigrams", "reducer": "sum", "text": "a b",
          "options": {"chunk_bytes": 4096, "partitions": 3, "task_timeout_ms": 500,
                      "memory_limit_mib": 64},
          "idempotency_key": "k-1"})");
  EXPECT_EQ(request.reducer, "sum");
  EXPECT_EQ(request.options, (protocol::JobOptions{4096, 3, 500, 64}));
  EXPECT_EQ(request.idempotency_key, "k-1");
  // A mapper that is not built in (a plugin's) must name its reducer.
  EXPECT_EQ(job_request_from_json(R"({"mapper": "mine", "reducer": "theirs", "text": ""})").reducer,
            "theirs");
  EXPECT_EQ(refusal(R"({"mapper": "mine", "text": ""})"),
            "reducer: required with mapper \"mine\", which is not built in");
}

TEST(WebJson, BadBodiesNameTheFieldAndWhy) {
  EXPECT_EQ(refusal("{\"mapper\": "),
            "the body is not JSON: parse error at line 1, column 12: syntax error while parsing "
            "value - unexpected end of input; expected '[', '{', or a literal");
  EXPECT_EQ(refusal("[1]"), "the body must be a JSON object");
  EXPECT_EQ(refusal(R"({"text": "x"})"), "mapper: required (words, bigrams, index, ...)");
  EXPECT_EQ(refusal(R"({"mapper": 3, "text": "x"})"), "mapper: must be a string");
  EXPECT_EQ(refusal(R"({"mapper": "words"})"),
            "no input: give text, documents, numbers or matrix_a and matrix_b");
  EXPECT_EQ(refusal(R"({"mapper": "words", "text": "x", "numbers": [1]})"),
            "more than one input: give one of text, documents, numbers, matrices");
  EXPECT_EQ(refusal(R"({"mapper": "words", "txt": "x"})"), "txt: not a field of this request");
  EXPECT_EQ(refusal(R"({"mapper": "numbers", "numbers": [1, "2"]})"),
            "numbers: item 2: must be a number");
  EXPECT_EQ(refusal(R"({"mapper": "words", "documents": [{"name": "a"}]})"),
            "documents: item 1 has no \"text\"");
  EXPECT_EQ(refusal(R"({"mapper": "words", "documents": [7]})"),
            "documents: item 1 must be a string or {\"name\": ..., \"text\": ...}");
  EXPECT_EQ(refusal(R"({"mapper": "matmul", "matrix_a": [[1]]})"),
            "matrix_a and matrix_b: both are needed");
  EXPECT_EQ(refusal(R"({"mapper": "matmul", "matrix_a": [[1, 2], [3]], "matrix_b": []})"),
            "matrix_a: row 2 has 1 value, row 1 has 2 values");
  EXPECT_EQ(refusal(R"({"mapper": "matmul", "matrix_a": [[1, null]], "matrix_b": []})"),
            "matrix_a: row 1, value 2: must be a number");
  EXPECT_EQ(refusal(R"({"mapper": "matmul", "matrix_a": [1], "matrix_b": []})"),
            "matrix_a: row 1 must be a list of numbers");
  EXPECT_EQ(refusal(R"({"mapper": "words", "text": "", "options": {"partitions": -1}})"),
            "options: partitions: must be a whole number, 0 or more");
  EXPECT_EQ(refusal(R"({"mapper": "words", "text": "", "options": {"partitions": 4294967296}})"),
            "options: partitions: at most 4294967295");
  EXPECT_EQ(refusal(R"({"mapper": "words", "text": "", "options": {"retries": 1}})"),
            "retries: not a field of this request");
  EXPECT_EQ(refusal(R"({"mapper": "words", "text": "", "idempotency_key": ")" +
                    std::string(65, 'k') + "\"}"),
            "idempotency_key: at most 64 bytes");
  // What would cost more than it says: too deep, a number no double holds, bytes not UTF-8.
  EXPECT_EQ(refusal(std::string(17, '[') + std::string(17, ']')),
            "the body nests deeper than 16 levels");
  EXPECT_EQ(refusal(std::string(16, '[') + std::string(16, ']')), "the body must be a JSON object");
  EXPECT_EQ(refusal(R"({"mapper": "numbers", "numbers": [1e400]})"),
            "the body is not JSON: number overflow parsing '1e400'");
  EXPECT_EQ(refusal("{\"mapper\": \"words\", \"text\": \"\xff\"}").substr(0, 42),
            "the body is not JSON: parse error at line ");
  const auto long_number =
      refusal(R"({"mapper": "numbers", "numbers": [1)" + std::string(400, '0') + "]}");
  EXPECT_LT(long_number.size(), 260u) << "the message does not echo the whole number";
  // /multiply takes the two matrices and nothing else.
  EXPECT_THROW(multiply_request_from_json(R"({"matrix_a": [[1]], "matrix_b": [[1]], "x": 1})"),
               BadBody);
}

TEST(WebMetrics, EachMetricOnceWithItsSamplesPerServer) {
  protocol::DetailedStats stats;
  stats.counters.uptime_ms = 1500;
  stats.counters.jobs_done = 7;
  stats.counters.workers = 2;
  stats.workers_busy = 1;
  stats.task_us = {{{100, 1}, {2500000, 3}, {UINT64_MAX, 4}}, 4500250};
  ServerScrape up{"127.0.0.1:1936", stats, {1, 0, 2, 7, 0, 0}, 0.25};
  ServerScrape down{"db\"1\":1936", std::nullopt, {}, 0.5};
  const auto text = prometheus_metrics({up, down});
  EXPECT_NE(text.find("# HELP mrd_up 1 if the server answered this scrape, 0 if not.\n"
                      "# TYPE mrd_up gauge\n"
                      "mrd_up{server=\"127.0.0.1:1936\"} 1\n"
                      "mrd_up{server=\"db\\\"1\\\":1936\"} 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE mrd_jobs_done_total counter\n"
                      "mrd_jobs_done_total{server=\"127.0.0.1:1936\"} 7\n# HELP"),
            std::string::npos)
      << "one sample, from the server that answered";
  EXPECT_NE(text.find("mrd_uptime_seconds{server=\"127.0.0.1:1936\"} 1.5\n"), std::string::npos);
  EXPECT_NE(text.find("mrd_jobs{server=\"127.0.0.1:1936\",state=\"reducing\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("mrd_jobs{server=\"127.0.0.1:1936\",state=\"cancelled\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("mrd_scrape_duration_seconds{server=\"db\\\"1\\\":1936\"} 0.5\n"),
            std::string::npos);
  // Histograms in seconds, cumulative buckets with "le", then _sum and _count.
  EXPECT_NE(
      text.find("# TYPE mrd_task_duration_seconds histogram\n"
                "mrd_task_duration_seconds_bucket{server=\"127.0.0.1:1936\",le=\"0.0001\"} 1\n"
                "mrd_task_duration_seconds_bucket{server=\"127.0.0.1:1936\",le=\"2.5\"} 3\n"
                "mrd_task_duration_seconds_bucket{server=\"127.0.0.1:1936\",le=\"+Inf\"} 4\n"
                "mrd_task_duration_seconds_sum{server=\"127.0.0.1:1936\"} 4.50025\n"
                "mrd_task_duration_seconds_count{server=\"127.0.0.1:1936\"} 4\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("mrd_workers_busy{server=\"127.0.0.1:1936\"} 1\n"), std::string::npos);
  // Every STATS counter is there, each HELP and TYPE exactly once.
  for (const auto* name : {"mrd_uptime_seconds",
                           "mrd_connections_open",
                           "mrd_connections_total",
                           "mrd_requests_total",
                           "mrd_requests_rejected_total",
                           "mrd_jobs_submitted_total",
                           "mrd_jobs_done_total",
                           "mrd_jobs_failed_total",
                           "mrd_jobs_cancelled_total",
                           "mrd_jobs_expired_total",
                           "mrd_jobs_unfinished",
                           "mrd_workers",
                           "mrd_worker_restarts_total",
                           "mrd_retained_result_bytes",
                           "mrd_workers_busy",
                           "mrd_tasks_done_total",
                           "mrd_task_duration_seconds",
                           "mrd_job_duration_seconds",
                           "mrd_jobs",
                           "mrd_scrape_duration_seconds"}) {
    for (const auto* line : {"# TYPE ", "# HELP "}) {
      const auto start = std::string(line) + name + " ";
      const auto first = text.find(start);
      EXPECT_NE(first, std::string::npos) << line << name;
      EXPECT_EQ(text.find(start, first + 1), std::string::npos) << line << name;
    }
  }
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

}  // namespace
}  // namespace mrd::web
