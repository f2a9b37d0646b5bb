#include "client/mrctl/session.hpp"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
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

/// Says on stderr that a request goes to another node of the --server list, and why.
void print_failover(const client::ClientError& error, const client::ServerAddress& next,
                    std::chrono::milliseconds pause) {
  std::string line = "mrctl: " + std::string(error.what()) + "; trying " + client::to_string(next);
  if (pause.count() > 0) line += " in " + std::to_string(pause.count()) + " ms";
  std::fprintf(stderr, "%s\n", line.c_str());
}

/// Sets a FailoverConnection's notice for a while, and puts the one it had back.
class NoticeGuard {
 public:
  NoticeGuard(client::FailoverConnection& servers, client::FailoverConnection::Notice notice)
      : servers_(servers), saved_(servers.notice()) {
    servers_.set_notice(std::move(notice));
  }
  NoticeGuard(const NoticeGuard&) = delete;
  NoticeGuard& operator=(const NoticeGuard&) = delete;
  ~NoticeGuard() { servers_.set_notice(std::move(saved_)); }

 private:
  client::FailoverConnection& servers_;
  client::FailoverConnection::Notice saved_;
};

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

client::FailoverConnection open_servers(const GlobalOptions& global,
                                        client::MatrixResultSink matrix_sink) {
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
  auto connect = [&global, timeout, tls,
                  matrix_sink = std::move(matrix_sink)](const client::ServerAddress& server) {
    auto connection = client::Connection::connect(server, timeout, tls);
    if (global.trace) connection.set_frame_observer(print_frame);
    connection.set_matrix_result_sink(matrix_sink);
    connection.hello();
    if (connection.auth_required()) connection.auth(token(global, connection.address()));
    return connection;
  };
  client::FailoverConnection servers(client::parse_server_list(global.server), connect);
  servers.set_notice(print_failover);
  return servers;
}

client::FetchOutcome wait_with_progress(client::FailoverConnection& servers, std::uint32_t job_id,
                                        const GlobalOptions& global) {
  auto mode = ProgressDisplay::choose_mode(global.quiet);
  // The trace's lines would tear a bar redrawn in place; one line per change reads well beside it.
  if (global.trace && mode == ProgressDisplay::Mode::kBar) mode = ProgressDisplay::Mode::kLines;
  ProgressDisplay display(mode);
  // A move to another node is said on a line of its own, not over the bar.
  const NoticeGuard guard(servers,
                          [&display, notice = servers.notice()](const client::ClientError& error,
                                                                const client::ServerAddress& next,
                                                                std::chrono::milliseconds pause) {
                            display.finish();
                            if (notice) notice(error, next, pause);
                          });
  auto outcome = servers.wait_for_result(
      job_id, [&display](const protocol::JobProgress& progress) { display.update(progress); });
  display.finish();
  return outcome;
}

namespace {

/// How often a job is sent again to a single server when the connection breaks before its id
/// comes back. (A list of servers fails over instead: FailoverConnection.)
constexpr int kSubmitAttempts = 3;

bool is_connection_error(const client::ClientError& e) {
  return e.kind() == client::ErrorKind::kConnection;
}

}  // namespace

std::optional<protocol::JobResult> run_job(const GlobalOptions& global,
                                           protocol::SubmitRequest request,
                                           std::span<const client::PayloadFile> payload_files,
                                           client::MatrixResultSink matrix_sink) {
  const SubmitOptions& submit = global.submit;
  request.options.chunk_bytes = submit.chunk_bytes;
  request.options.partitions = submit.partitions;
  request.options.task_timeout_ms = submit.task_timeout_ms;
  request.options.memory_limit_mib = submit.memory_limit_mib;
  request.idempotency_key =
      submit.idempotency_key.empty() ? client::random_idempotency_key() : submit.idempotency_key;

  // The key makes resending safe: if the first SUBMIT got through and only its reply was lost,
  // the server answers with the job it already has instead of running it twice. A single server
  // is sent the job again here; a list of cluster nodes (whose keys are cluster-wide) is by
  // FailoverConnection, each resend to the next node, with this same key.
  auto servers = open_servers(global, std::move(matrix_sink));
  const int attempts = servers.servers().size() == 1 ? kSubmitAttempts : 1;
  std::uint32_t job_id = 0;
  for (int attempt = 1;; ++attempt) {
    try {
      job_id = servers.submit(request, payload_files);
      break;
    } catch (const client::ClientError& e) {
      if (!is_connection_error(e) || attempt == attempts) throw;
      std::fprintf(stderr, "mrctl: %s; sending the job again (attempt %d of %d)\n", e.what(),
                   attempt + 1, attempts);
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
    }
  }
  if (submit.no_wait) {
    print(std::to_string(job_id) + "\n");
    return std::nullopt;
  }
  // Polling is safe to repeat too: on a broken connection, reconnect and keep polling (a list
  // goes on polling on the next node, in FailoverConnection).
  for (int attempt = 1;; ++attempt) {
    try {
      return client::result_or_throw(wait_with_progress(servers, job_id, global), job_id);
    } catch (const client::ClientError& e) {
      if (!is_connection_error(e) || attempt == attempts) throw;
      std::fprintf(stderr, "mrctl: %s; reconnecting to wait for job %u\n", e.what(), job_id);
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
      servers.connection();
    }
  }
}

void print(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    throw client::ClientError(client::ErrorKind::kInput, "cannot write the output");
  }
}

}  // namespace mrd::mrctl
