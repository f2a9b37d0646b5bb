#include "client/mrctl/session.hpp"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include "client/client_error.hpp"
#include "client/frame_trace.hpp"
#include "client/mrctl/progress_display.hpp"
#include "client/token_file.hpp"

namespace mrd::mrctl {

namespace {

/// --trace: each frame described on stderr, as the connection sends or receives it.
void print_frame(client::Direction direction, std::string_view frame, protocol::Opcode request) {
  std::fputs(client::describe_frame(direction, frame, request).c_str(), stderr);
}

}  // namespace

namespace {

/// The token for a server that asks for one: the first line of --token-file, or MRD_TOKEN.
std::string token(const GlobalOptions& global, const client::ServerAddress& server) {
  if (!global.token_file.empty()) return client::read_token_file(global.token_file);
  if (const char* token = std::getenv("MRD_TOKEN"); token && *token) return token;
  throw client::ClientError(client::ErrorKind::kRejected,
                            "the server at " + client::to_string(server) +
                                " needs a token: give it with --token-file FILE or MRD_TOKEN",
                            protocol::Status::kNotAuthenticated);
}

}  // namespace

client::Connection open_connection(const GlobalOptions& global) {
  const auto timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(global.timeout_seconds * 1000));
  auto tls = global.tls;
  const bool tls_asked = tls.enabled || !tls.ca_file.empty() || !tls.cert_file.empty() ||
                         !tls.key_file.empty() || !tls.verify;
  if (tls_asked && !tls.enabled) {
    throw client::ClientError(client::ErrorKind::kUsage,
                              "--cacert, --cert, --key and --insecure-skip-verify need --tls");
  }
  if (!tls.verify) {
    std::fputs("mrctl: warning: --insecure-skip-verify: the server's certificate is not checked\n",
               stderr);
  }
  // As curl does: the session keys for Wireshark, if asked for in the environment.
  if (const char* keylog = std::getenv("SSLKEYLOGFILE"); keylog && *keylog)
    tls.keylog_file = keylog;
  auto connection =
      client::Connection::connect(client::parse_server_address(global.server), timeout, tls);
  if (global.trace) connection.set_frame_observer(print_frame);
  connection.hello();
  if (connection.auth_required()) connection.auth(token(global, connection.address()));
  return connection;
}

client::FetchOutcome wait_with_progress(client::Connection& connection, std::uint32_t job_id,
                                        const GlobalOptions& global) {
  auto mode = ProgressDisplay::choose_mode(global.quiet);
  // The trace's lines would tear a bar redrawn in place; one line per change reads well beside it.
  if (global.trace && mode == ProgressDisplay::Mode::kBar) mode = ProgressDisplay::Mode::kLines;
  ProgressDisplay display(mode);
  auto outcome = connection.wait_for_result(
      job_id, [&display](const protocol::JobProgress& progress) { display.update(progress); });
  display.finish();
  return outcome;
}

namespace {

/// How often a job is sent again when the connection breaks before its id comes back.
constexpr int kSubmitAttempts = 3;

/// 32 random hex digits: unique enough that two clients never share a key by chance.
std::string random_idempotency_key() {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::random_device random;
  std::string key;
  for (int i = 0; i < 32; ++i)
    key += kDigits[random() % 16];
  return key;
}

bool is_connection_error(const client::ClientError& e) {
  return e.kind() == client::ErrorKind::kConnection;
}

}  // namespace

std::optional<protocol::JobResult> run_job(const GlobalOptions& global,
                                           protocol::SubmitRequest request) {
  const SubmitOptions& submit = global.submit;
  request.options.chunk_bytes = submit.chunk_bytes;
  request.options.partitions = submit.partitions;
  request.options.task_timeout_ms = submit.task_timeout_ms;
  request.options.memory_limit_mib = submit.memory_limit_mib;
  request.idempotency_key =
      submit.idempotency_key.empty() ? random_idempotency_key() : submit.idempotency_key;

  // The key makes resending safe: if the first SUBMIT got through and only its reply was lost,
  // the server answers with the job it already has instead of running it twice.
  std::optional<client::Connection> connection;
  std::uint32_t job_id = 0;
  for (int attempt = 1;; ++attempt) {
    try {
      connection.emplace(open_connection(global));
      job_id = connection->submit(request);
      break;
    } catch (const client::ClientError& e) {
      if (!is_connection_error(e) || attempt == kSubmitAttempts) throw;
      std::fprintf(stderr, "mrctl: %s; sending the job again (attempt %d of %d)\n", e.what(),
                   attempt + 1, kSubmitAttempts);
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
    }
  }
  if (submit.no_wait) {
    print(std::to_string(job_id) + "\n");
    return std::nullopt;
  }
  // Polling is safe to repeat too: on a broken connection, reconnect and keep polling.
  for (int attempt = 1;; ++attempt) {
    try {
      return client::result_or_throw(wait_with_progress(*connection, job_id, global), job_id);
    } catch (const client::ClientError& e) {
      if (!is_connection_error(e) || attempt == kSubmitAttempts) throw;
      std::fprintf(stderr, "mrctl: %s; reconnecting to wait for job %u\n", e.what(), job_id);
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
      connection.emplace(open_connection(global));
    }
  }
}

void print(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    throw client::ClientError(client::ErrorKind::kInput, "cannot write the output");
  }
}

}  // namespace mrd::mrctl
