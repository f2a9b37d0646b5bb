#include "client/web/json_requests.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <utility>

#include "protocol/limits.hpp"

namespace mrd::web {

namespace {

using nlohmann::json;

/// No request of docs/http.md nests deeper than 3 levels; every level costs memory, so a body
/// nesting deeper than this is refused while it is parsed, before it is built.
constexpr int kMaxDepth = 16;

/// The body as JSON, or BadBody with the parser's reason (line and column included).
json parse_body(std::string_view body) {
  try {
    return json::parse(body, [](int depth, json::parse_event_t, json&) {
      if (depth >= kMaxDepth) {  // depth counts from 0
        throw BadBody("the body nests deeper than " + std::to_string(kMaxDepth) + " levels");
      }
      return true;
    });
  } catch (const BadBody&) {
    throw;
  } catch (const json::exception& e) {
    // Not JSON, or a number JSON can write but a double cannot hold (1e400). nlohmann's messages
    // start with "[json.exception.parse_error.101] ": drop the tag; and they may quote the
    // offending text, which could be long: cut it.
    std::string what = e.what();
    if (const auto end = what.find("] "); what.starts_with("[json.") && end != std::string::npos)
      what.erase(0, end + 2);
    if (what.size() > 200) what = what.substr(0, 200) + "...";
    throw BadBody("the body is not JSON: " + what);
  }
}

/// Refuses fields a route does not take: a misspelt "matrixa" is an error, not an empty input.
void expect_only(const json& body, std::initializer_list<std::string_view> fields) {
  if (!body.is_object()) throw BadBody("the body must be a JSON object");
  for (const auto& [name, value] : body.items()) {
    bool known = false;
    for (const auto field : fields)
      known = known || name == field;
    if (!known) throw BadBody(name + ": not a field of this request");
  }
}

std::string string_field(const json& value, const std::string& name) {
  if (!value.is_string()) throw BadBody(name + ": must be a string");
  return value.get<std::string>();
}

double number_field(const json& value, const std::string& name) {
  if (!value.is_number()) throw BadBody(name + ": must be a number");
  return value.get<double>();
}

/// A non-negative whole number no larger than `max`.
std::uint64_t count_field(const json& value, const std::string& name, std::uint64_t max) {
  // nlohmann reads a non-negative whole number as unsigned, a negative one as signed.
  if (!value.is_number_unsigned()) throw BadBody(name + ": must be a whole number, 0 or more");
  const auto n = value.get<std::uint64_t>();
  if (n > max) throw BadBody(name + ": at most " + std::to_string(max));
  return n;
}

/// A matrix as a list of rows, each a list of numbers of the same length.
protocol::Matrix matrix_field(const json& value, const std::string& name) {
  if (!value.is_array()) throw BadBody(name + ": must be a list of rows");
  protocol::Matrix m;
  m.rows = value.size();
  if (m.rows > protocol::kMaxMatrixSide) {
    throw BadBody(name + ": more than " + std::to_string(protocol::kMaxMatrixSide) + " rows");
  }
  for (std::size_t r = 0; r < value.size(); ++r) {
    const auto& row = value[r];
    const auto row_name = name + ": row " + std::to_string(r + 1);
    if (!row.is_array()) throw BadBody(row_name + " must be a list of numbers");
    if (r == 0) {
      m.cols = row.size();
      if (m.cols > protocol::kMaxMatrixSide) {
        throw BadBody(row_name + " has more than " + std::to_string(protocol::kMaxMatrixSide) +
                      " values");
      }
    } else if (row.size() != m.cols) {
      const auto values = [](std::size_t n) {
        return std::to_string(n) + (n == 1 ? " value" : " values");
      };
      throw BadBody(row_name + " has " + values(row.size()) + ", row 1 has " + values(m.cols));
    }
    for (std::size_t c = 0; c < row.size(); ++c) {
      m.values.push_back(number_field(row[c], row_name + ", value " + std::to_string(c + 1)));
    }
  }
  return m;
}

protocol::Documents documents_field(const json& value) {
  if (!value.is_array()) throw BadBody("documents: must be a list");
  protocol::Documents documents;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto& d = value[i];
    const auto name = "documents: item " + std::to_string(i + 1);
    if (d.is_string()) {
      documents.documents.push_back({std::to_string(i + 1), d.get<std::string>()});
    } else if (d.is_object()) {
      expect_only(d, {"name", "text"});
      if (!d.contains("text")) throw BadBody(name + " has no \"text\"");
      documents.documents.push_back(
          {d.contains("name") ? string_field(d["name"], name + ": name") : std::to_string(i + 1),
           string_field(d["text"], name + ": text")});
    } else {
      throw BadBody(name + " must be a string or {\"name\": ..., \"text\": ...}");
    }
  }
  return documents;
}

protocol::JobOptions options_field(const json& value) {
  if (!value.is_object()) throw BadBody("options: must be an object");
  expect_only(value, {"chunk_bytes", "partitions", "task_timeout_ms", "memory_limit_mib"});
  constexpr auto kU32 = std::numeric_limits<std::uint32_t>::max();
  constexpr auto kU64 = std::numeric_limits<std::uint64_t>::max();
  protocol::JobOptions options;
  const auto field = [&](const char* name, std::uint64_t max) -> std::uint64_t {
    return value.contains(name) ? count_field(value[name], std::string("options: ") + name, max)
                                : 0;
  };
  options.chunk_bytes = field("chunk_bytes", kU64);
  options.partitions = static_cast<std::uint32_t>(field("partitions", kU32));
  options.task_timeout_ms = static_cast<std::uint32_t>(field("task_timeout_ms", kU32));
  options.memory_limit_mib = static_cast<std::uint32_t>(field("memory_limit_mib", kU32));
  return options;
}

protocol::MatrixPair matrix_pair(const json& body) {
  if (!body.contains("matrix_a") || !body.contains("matrix_b")) {
    throw BadBody("matrix_a and matrix_b: both are needed");
  }
  return {matrix_field(body["matrix_a"], "matrix_a"), matrix_field(body["matrix_b"], "matrix_b")};
}

/// The one input of a job request.
protocol::JobInput input_field(const json& body) {
  const bool text = body.contains("text"), documents = body.contains("documents"),
             numbers = body.contains("numbers"),
             matrices = body.contains("matrix_a") || body.contains("matrix_b");
  const int given = int(text) + int(documents) + int(numbers) + int(matrices);
  if (given == 0) throw BadBody("no input: give text, documents, numbers or matrix_a and matrix_b");
  if (given > 1)
    throw BadBody("more than one input: give one of text, documents, numbers, matrices");
  if (text) return protocol::Documents{{{"text", string_field(body["text"], "text")}}};
  if (documents) return documents_field(body["documents"]);
  if (matrices) return matrix_pair(body);
  const auto& list = body["numbers"];
  if (!list.is_array()) throw BadBody("numbers: must be a list of numbers");
  protocol::Numbers out;
  out.values.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i)
    out.values.push_back(number_field(list[i], "numbers: item " + std::to_string(i + 1)));
  return out;
}

}  // namespace

std::string_view default_reducer(std::string_view mapper) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kPairs{{
      {"words", "sum"},
      {"bigrams", "sum"},
      {"index", "postings"},
      {"numbers", "stats"},
      {"matmul", "rows"},
  }};
  for (const auto& [m, r] : kPairs) {
    if (m == mapper) return r;
  }
  return {};
}

protocol::SubmitRequest job_request_from_json(std::string_view text) {
  const auto body = parse_body(text);
  expect_only(body, {"mapper", "reducer", "text", "documents", "numbers", "matrix_a", "matrix_b",
                     "options", "idempotency_key"});
  if (!body.contains("mapper")) throw BadBody("mapper: required (words, bigrams, index, ...)");
  protocol::SubmitRequest request;
  request.mapper = string_field(body["mapper"], "mapper");
  if (body.contains("reducer")) {
    request.reducer = string_field(body["reducer"], "reducer");
  } else {
    request.reducer = default_reducer(request.mapper);
    if (request.reducer.empty()) {
      throw BadBody("reducer: required with mapper \"" + request.mapper +
                    "\", which is not built in");
    }
  }
  request.input = input_field(body);
  if (body.contains("options")) request.options = options_field(body["options"]);
  if (body.contains("idempotency_key")) {
    request.idempotency_key = string_field(body["idempotency_key"], "idempotency_key");
    if (request.idempotency_key.size() > protocol::kMaxIdempotencyKeyBytes) {
      throw BadBody("idempotency_key: at most " +
                    std::to_string(protocol::kMaxIdempotencyKeyBytes) + " bytes");
    }
  }
  return request;
}

protocol::SubmitRequest multiply_request_from_json(std::string_view text) {
  const auto body = parse_body(text);
  expect_only(body, {"matrix_a", "matrix_b"});
  return {"matmul", "rows", {}, matrix_pair(body)};
}

}  // namespace mrd::web
