// The JSON bodies of mrd-web's POST routes (docs/http.md), turned into SUBMIT requests.
//
// Pure: no sockets, so every shape a caller may send is tested byte for byte
// (tests/web_json_test.cpp). mrd checks the request again; what is checked here is the JSON's
// shape, so that a mistake gets a message that names the field rather than mrd's BAD_REQUEST.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "protocol/messages.hpp"

namespace mrd::web {

/// A request body that is not JSON, or not the shape its route takes; the message says which
/// field and why ("matrix_a: row 2 has 3 values, row 1 has 2"). An HTTP 400.
class BadBody : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The reducer that goes with a built-in mapper ("sum" for "words"), or "" for another mapper.
std::string_view default_reducer(std::string_view mapper);

/// POST /api/jobs: {"mapper": ..., "reducer"?: ..., one input, "options"?: ...,
/// "idempotency_key"?: ...}.
protocol::SubmitRequest job_request_from_json(std::string_view body);

/// POST /multiply: {"matrix_a": [[...]], "matrix_b": [[...]]}, a matmul job.
protocol::SubmitRequest multiply_request_from_json(std::string_view body);

}  // namespace mrd::web
