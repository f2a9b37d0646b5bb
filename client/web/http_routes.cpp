#include "client/web/http_routes.hpp"

#include <httplib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <future>
#include <optional>
#include <string>
#include <string_view>

#include "client/client_error.hpp"
#include "client/json.hpp"
#include "client/json_output.hpp"
#include "client/text_output.hpp"
#include "client/web/json_requests.hpp"
#include "client/web/mrd_servers.hpp"
#include "client/web/page_assets.hpp"
#include "client/web/prometheus_metrics.hpp"

namespace mrd::web {

namespace {

using client::json_string;
using httplib::Request;
using httplib::Response;
using protocol::Status;

/// The field names of a job in a reply: the /api routes say "id" and "state", the course
/// routes "task_id" and "status". Everything else is the same.
struct JobNames {
  const char* id;
  const char* state;
};
constexpr JobNames kApiNames{"id", "state"};
constexpr JobNames kCourseNames{"task_id", "status"};

void reply_json(Response& response, int http_status, std::string body) {
  if (body.empty() || body.back() != '\n') body += '\n';
  response.status = http_status;
  response.set_content(body, "application/json");
}

void reply_error(Response& response, int http_status, std::string_view message) {
  reply_json(response, http_status, "{\"error\": " + json_string(message) + "}");
}

/// json_output's values end with '\n'; inside another object they must not.
std::string inner(std::string json) {
  while (!json.empty() && json.back() == '\n')
    json.pop_back();
  return json;
}

/// {"id": 7, "state": "done" plus `more` (", ..." fields), closed.
std::string job_json(JobNames names, std::uint32_t id, std::string_view state,
                     const std::string& more = "") {
  return std::string("{\"") + names.id + "\": " + std::to_string(id) + ", \"" + names.state +
         "\": " + json_string(state) + more + "}";
}

/// The HTTP status for what mrd answered, or for what went wrong reaching it.
int http_status_of(const client::ClientError& error) {
  if (const auto status = error.server_status()) {
    switch (*status) {
      case Status::kBadRequest:
      case Status::kBadJob: return 400;
      case Status::kAuthFailed:
      case Status::kNotAuthenticated: return 401;
      case Status::kForbidden: return 403;
      case Status::kUnknownJob: return 404;
      case Status::kJobExpired: return 410;
      case Status::kFrameTooLarge: return 413;
      case Status::kQueueFull:
      case Status::kServerBusy: return 429;
      case Status::kServerError: return 500;
      case Status::kShuttingDown:
      case Status::kUnavailable: return 503;
      default: return 502;
    }
  }
  switch (error.kind()) {
    case client::ErrorKind::kConnection: return 503;
    case client::ErrorKind::kUsage:
    case client::ErrorKind::kInput: return 400;
    default: return 502;  // kTls, kProtocol: mrd said something we cannot use
  }
}

/// A route's handler with every failure turned into its HTTP error (docs/http.md, "Errors").
template <class Handler>
httplib::Server::Handler guarded(Handler handler) {
  return [handler](const Request& request, Response& response) {
    try {
      handler(request, response);
    } catch (const BadBody& e) {
      reply_error(response, 400, e.what());
    } catch (const client::ClientError& e) {
      const int status = http_status_of(e);
      if (status == 401) response.set_header("WWW-Authenticate", "Bearer");
      if (status == 429) response.set_header("Retry-After", "1");
      reply_error(response, status, e.what());
    } catch (const std::exception& e) {
      reply_error(response, 500, std::string("mrd-web: ") + e.what());
    }
  };
}

/// The token of "Authorization: Bearer TOKEN", if the request has one.
std::optional<std::string> bearer_of(const Request& request) {
  if (!request.has_header("Authorization")) return std::nullopt;
  const auto value = request.get_header_value("Authorization");
  constexpr std::string_view kScheme = "Bearer ";
  if (value.size() <= kScheme.size() ||
      !std::equal(kScheme.begin(), kScheme.end(), value.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
      })) {
    throw client::ClientError(client::ErrorKind::kRejected,
                              "Authorization: only \"Bearer TOKEN\" is understood",
                              Status::kNotAuthenticated);
  }
  return value.substr(kScheme.size());
}

/// `text`, all of it, as a u32; nullopt if it is anything else.
std::optional<std::uint32_t> whole_u32(const std::string& text) {
  std::uint32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

/// The job id in the route's path (its first capture).
std::uint32_t job_id_of(const Request& request) {
  const std::string text = request.matches[1];
  const auto id = whole_u32(text);
  if (!id) throw BadBody("job id \"" + text + "\": not a job id (a number from 1 to 4294967295)");
  return *id;
}

/// GET /api/jobs?details=1&limit=N: at most this many jobs, and that many when N is not given.
constexpr std::uint32_t kMaxDetailsLimit = 1000;
constexpr std::uint32_t kDefaultDetailsLimit = 50;

/// For GET /api/jobs: with `details=1`, how many jobs to describe (`limit`, 1 to 1000, default
/// 50); nullopt without `details` (or with `details=0`), where `limit` is not read either and the
/// route answers as it always has.
std::optional<std::uint32_t> details_limit_of(const Request& request) {
  const auto details = request.get_param_value("details");
  if (!request.has_param("details") || details == "0") return std::nullopt;
  if (details != "1") throw BadBody("details: 1 or 0, not \"" + details + "\"");
  if (!request.has_param("limit")) return kDefaultDetailsLimit;
  const auto text = request.get_param_value("limit");
  const auto limit = whole_u32(text);
  if (!limit || *limit < 1 || *limit > kMaxDetailsLimit) {
    throw BadBody("limit \"" + text + "\": a number from 1 to " + std::to_string(kMaxDetailsLimit));
  }
  return *limit;
}

/// The newest `limit` jobs `mrd`'s caller may see, newest first, each as GET /api/jobs/ID
/// describes it: LIST, then STATUS with details for each, on the one connection. A job that
/// went between the two (its result evicted) is left out.
std::string newest_job_details_json(client::Connection& mrd, std::uint32_t limit) {
  auto jobs = mrd.list().jobs;
  // Ids are handed out in increasing order: the highest are the newest.
  std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
  if (jobs.size() > limit) jobs.resize(limit);
  std::string out = "[";
  bool first = true;
  for (const auto& job : jobs) {
    std::string details;
    try {
      details = inner(client::job_details_json(mrd.details(job.id)));
    } catch (const client::ClientError& e) {
      const auto status = e.server_status();
      if (status == Status::kJobExpired || status == Status::kUnknownJob) continue;
      throw;
    }
    out += (first ? "\n  " : ",\n  ") + details;
    first = false;
  }
  out += first ? "]" : "\n]";
  return out;
}

/// Bodies being parsed at once may hold this many times their size in JSON values (nlohmann
/// keeps each value in 16 bytes or more, plus its containers): the bytes being parsed are
/// counted, and a request past the budget is asked to come back (429) rather than parsed.
class ParseBudget {
 public:
  explicit ParseBudget(std::uint64_t bytes) : limit_(bytes) {}

  /// True if `bytes` more fit; then give() them back when done.
  bool take(std::uint64_t bytes) {
    auto used = used_.load();
    do {
      if (used + bytes > limit_) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes));
    return true;
  }
  void give(std::uint64_t bytes) { used_ -= bytes; }

 private:
  const std::uint64_t limit_;
  std::atomic<std::uint64_t> used_{0};
};

/// SUBMIT of the job `parse` makes of the body, then 202 with the id and where to ask about it.
/// The caller's token is checked first: a caller mrd would refuse costs no parsing.
template <class Parse>
void submit(const MrdServers& servers, ParseBudget& budget, const Request& request,
            Response& response, Parse parse, JobNames names, const std::string& location) {
  auto mrd = servers.for_caller(bearer_of(request));
  if (!budget.take(request.body.size())) {
    throw client::ClientError(client::ErrorKind::kRejected,
                              "mrd-web is parsing as many request bodies as it may at once; try "
                              "again in a moment",
                              Status::kServerBusy);
  }
  protocol::SubmitRequest job;
  try {
    job = parse(request.body);
  } catch (...) {
    budget.give(request.body.size());
    throw;
  }
  budget.give(request.body.size());
  const auto id = mrd.submit(job);
  response.set_header("Location", location + std::to_string(id));
  reply_json(response, 202, job_json(names, id, "queued"));
}

/// FETCH as a reply: the result when done, the progress (202) when not, or why there is none.
/// The course routes give a matrix as its rows alone.
void result(const MrdServers& servers, const Request& request, Response& response, JobNames names) {
  const auto id = job_id_of(request);
  auto mrd = servers.for_caller(bearer_of(request));
  const auto outcome = mrd.fetch(id);
  const bool course = names.id == kCourseNames.id;
  switch (outcome.status) {
    case Status::kOk: {
      const auto* matrix = std::get_if<protocol::Matrix>(&*outcome.result);
      const auto value = course && matrix
                             ? client::matrix_rows_json(*matrix)
                             : inner(client::result_json(*outcome.result, client::kAllEntries));
      return reply_json(response, 200, job_json(names, id, "done", ", \"result\": " + value));
    }
    case Status::kPending: {
      const auto& p = *outcome.progress;
      const auto state = protocol::to_string(p.state);
      return reply_json(
          response, 202,
          job_json(names, id, state, course ? "" : ", " + client::progress_counts_json(p)));
    }
    case Status::kJobCancelled: return reply_json(response, 200, job_json(names, id, "cancelled"));
    case Status::kUnknownJob:
    case Status::kJobExpired:
      throw client::ClientError(client::ErrorKind::kJobFailed, outcome.message, outcome.status);
    default:  // the job failed: say how and why
      return reply_json(
          response, 200,
          job_json(names, id, "failed",
                   ", \"reason\": " + json_string(protocol::to_string(outcome.status)) +
                       ", \"error\": " + json_string(outcome.message)));
  }
}

void cancel(const MrdServers& servers, const Request& request, Response& response, JobNames names) {
  const auto id = job_id_of(request);
  servers.for_caller(bearer_of(request)).cancel(id);
  reply_json(response, 200, job_json(names, id, "cancelled"));
}

void add_api_routes(httplib::Server& http, const MrdServers& servers, ParseBudget& budget) {
  http.Post("/api/jobs", guarded([&servers, &budget](const Request& request, Response& response) {
              submit(servers, budget, request, response, job_request_from_json, kApiNames,
                     "/api/jobs/");
            }));
  http.Get("/api/jobs", guarded([&servers](const Request& request, Response& response) {
             auto mrd = servers.for_caller(bearer_of(request));
             if (const auto limit = details_limit_of(request)) {
               return reply_json(response, 200, newest_job_details_json(mrd, *limit));
             }
             reply_json(response, 200, client::job_list_json(mrd.list()));
           }));
  http.Get(R"(/api/jobs/([^/]+))", guarded([&servers](const Request& request, Response& response) {
             const auto id = job_id_of(request);
             reply_json(
                 response, 200,
                 client::job_details_json(servers.for_caller(bearer_of(request)).details(id)));
           }));
  http.Get(R"(/api/jobs/([^/]+)/result)",
           guarded([&servers](const Request& request, Response& response) {
             result(servers, request, response, kApiNames);
           }));
  http.Delete(R"(/api/jobs/([^/]+))",
              guarded([&servers](const Request& request, Response& response) {
                cancel(servers, request, response, kApiNames);
              }));
}

/// The routes of the classic course interface (docs/http.md, "The course routes").
void add_course_routes(httplib::Server& http, const MrdServers& servers, ParseBudget& budget) {
  http.Post("/multiply", guarded([&servers, &budget](const Request& request, Response& response) {
              submit(servers, budget, request, response, multiply_request_from_json, kCourseNames,
                     "/status/");
            }));
  http.Get(R"(/status/([^/]+))", guarded([&servers](const Request& request, Response& response) {
             const auto id = job_id_of(request);
             const auto p = servers.for_caller(bearer_of(request)).status(id);
             reply_json(response, 200,
                        job_json(kCourseNames, id, protocol::to_string(p.state),
                                 ", \"progress\": {" + client::progress_counts_json(p) + "}"));
           }));
  http.Get("/tasks", guarded([&servers](const Request& request, Response& response) {
             const auto list = servers.for_caller(bearer_of(request)).list();
             std::string out = "{\"tasks\": [";
             for (std::size_t i = 0; i < list.jobs.size(); ++i) {
               out +=
                   (i == 0 ? "\n  " : ",\n  ") +
                   job_json(kCourseNames, list.jobs[i].id, protocol::to_string(list.jobs[i].state));
             }
             out += list.jobs.empty() ? "]}" : "\n]}";
             reply_json(response, 200, out);
           }));
  http.Get(R"(/result/([^/]+))", guarded([&servers](const Request& request, Response& response) {
             result(servers, request, response, kCourseNames);
           }));
  http.Delete(R"(/remove/([^/]+))", guarded([&servers](const Request& request, Response& response) {
                cancel(servers, request, response, kCourseNames);
              }));
}

/// STATS and LIST of server `index`, with mrd-web's own token; nullopt stats if it did not answer.
ServerScrape scrape(const MrdServers& servers, std::size_t index) {
  const auto start = std::chrono::steady_clock::now();
  ServerScrape out;
  out.server = client::to_string(servers.addresses()[index]);
  try {
    auto mrd = servers.for_self(index);
    const auto stats = mrd.detailed_stats();
    for (const auto& job : mrd.list().jobs)
      ++out.jobs_by_state.at(static_cast<std::size_t>(job.state));
    out.stats = stats;
  } catch (const std::exception&) {
    out.stats.reset();  // mrd_up 0 says it; /healthz says why
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

void add_operator_routes(httplib::Server& http, const MrdServers& servers) {
  http.Get("/metrics", guarded([&servers](const Request&, Response& response) {
             // Every server at once: one that does not answer costs the scrape its timeout once,
             // not once per server.
             std::vector<std::future<ServerScrape>> asked;
             for (std::size_t i = 0; i < servers.addresses().size(); ++i)
               asked.push_back(std::async(std::launch::async, scrape, std::cref(servers), i));
             std::vector<ServerScrape> scrapes;
             for (auto& answer : asked)
               scrapes.push_back(answer.get());
             response.set_content(prometheus_metrics(scrapes), "text/plain; version=0.0.4");
           }));
  http.Get("/healthz", guarded([&servers](const Request&, Response& response) {
             std::string down;
             for (std::size_t i = 0; i < servers.addresses().size(); ++i) {
               try {
                 servers.hello(i);
               } catch (const std::exception& e) {
                 down += client::to_string(servers.addresses()[i]) + ": " + e.what() + "\n";
               }
             }
             response.status = down.empty() ? 200 : 503;
             response.set_content(down.empty() ? "ok\n" : down, "text/plain");
           }));
  http.Get("/api/stats", guarded([&servers](const Request&, Response& response) {
             std::string out = "{\"servers\": [";
             for (std::size_t i = 0; i < servers.addresses().size(); ++i) {
               out += (i == 0 ? "\n  {\"server\": " : ",\n  {\"server\": ") +
                      json_string(client::to_string(servers.addresses()[i]));
               try {
                 const auto stats = servers.for_self(i).detailed_stats();
                 out += ", \"up\": true, \"stats\": " + inner(client::detailed_stats_json(stats));
               } catch (const std::exception& e) {
                 out += ", \"up\": false, \"error\": " + json_string(e.what());
               }
               out += "}";
             }
             out += "\n]}";
             reply_json(response, 200, out);
           }));
}

/// `time` as an HTTP date: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(std::time_t time) {
  std::tm utc{};
  gmtime_r(&time, &utc);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char text[40];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[utc.tm_wday],
                utc.tm_mday, kMonths[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min,
                utc.tm_sec);
  return text;
}

}  // namespace

void add_routes(httplib::Server& http, const MrdServers& servers, std::uint64_t max_body_bytes) {
  // Two of the largest bodies may be parsed at once: about 30 times their size in memory each.
  // (One budget per process: mrd-web adds its routes once.)
  static ParseBudget budget(2 * max_body_bytes);
  add_api_routes(http, servers, budget);
  add_course_routes(http, servers, budget);
  add_operator_routes(http, servers);
  add_page_routes(http);
  // Every answer says when it was made (RFC 9110, section 6.6.1): the page reckons the age of
  // jobs by the server's clock rather than the browser's.
  http.set_post_routing_handler([](const Request&, Response& response) {
    response.set_header("Date", http_date(std::time(nullptr)));
  });
  // A chunked body has no length to check against the limit before it is read: refused.
  http.set_pre_routing_handler([](const Request& request, Response& response) {
    const auto encoding = request.get_header_value("Transfer-Encoding");
    if (encoding.find("chunked") == std::string::npos) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    reply_error(response, 411, "send the body with a Content-Length, not chunked");
    return httplib::Server::HandlerResponse::Handled;
  });
  // cpp-httplib answers these itself (no route; a body over the limit, refused before it is
  // read): with a JSON error, like every other.
  http.set_error_handler([max_body_bytes](const Request& request, Response& response) {
    if (!response.body.empty()) return;  // a route's own error, already JSON
    if (response.status == 404) {
      reply_error(response, 404, "no such route: " + request.method + " " + request.path);
    } else if (response.status == 413 && request.get_header_value("Content-Type")
                                             .starts_with("application/x-www-form-urlencoded")) {
      // curl -d and urllib send this type unless told otherwise; cpp-httplib reads such a body
      // as a form, up to 8 KiB.
      reply_error(response, 413,
                  "a form-encoded body is limited to 8 KiB: send the JSON with \"Content-Type: "
                  "application/json\"");
    } else if (response.status == 413) {
      reply_error(response, 413,
                  "the body is larger than " + std::to_string(max_body_bytes >> 20) +
                      " MiB (--max-body-mib)");
    } else {
      reply_error(response, response.status, "HTTP " + std::to_string(response.status));
    }
  });
}

}  // namespace mrd::web
