#include "client/mrctl/session.hpp"

#include <chrono>
#include <cstdio>

#include "client/client_error.hpp"
#include "client/mrctl/progress_display.hpp"

namespace mrd::mrctl {

client::Connection open_connection(const GlobalOptions& global) {
  const auto timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(global.timeout_seconds * 1000));
  auto connection =
      client::Connection::connect(client::parse_server_address(global.server), timeout);
  connection.hello();
  return connection;
}

client::FetchOutcome wait_with_progress(client::Connection& connection, std::uint32_t job_id,
                                        const GlobalOptions& global) {
  ProgressDisplay display(ProgressDisplay::choose_mode(global.quiet));
  auto outcome = connection.wait_for_result(
      job_id, [&display](const protocol::JobProgress& progress) { display.update(progress); });
  display.finish();
  return outcome;
}

std::optional<protocol::JobResult> run_job(const GlobalOptions& global,
                                           protocol::SubmitRequest request) {
  const SubmitOptions& submit = global.submit;
  request.options.chunk_bytes = submit.chunk_bytes;
  request.options.partitions = submit.partitions;
  auto connection = open_connection(global);
  const std::uint32_t job_id = connection.submit(request);
  if (submit.no_wait) {
    print(std::to_string(job_id) + "\n");
    return std::nullopt;
  }
  return client::result_or_throw(wait_with_progress(connection, job_id, global), job_id);
}

void print(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    throw client::ClientError(client::ErrorKind::kInput, "cannot write the output");
  }
}

}  // namespace mrd::mrctl
