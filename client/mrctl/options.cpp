#include "client/mrctl/options.hpp"

#include "client/client_error.hpp"
#include "client/failover_connection.hpp"
#include "protocol/limits.hpp"

namespace mrd::mrctl {

void add_global_options(CLI::App& app, GlobalOptions& options) {
  app.add_option("--server", options.server,
                 "Server address as HOST:PORT, [IPV6]:PORT or HOST (port 1936); or the nodes of a "
                 "cluster (mrd --redis) as a comma-separated list, HOST:PORT,HOST:PORT,...: "
                 "mrctl uses the first that answers, and moves a request to the next (each node "
                 "at most " +
                     std::to_string(client::FailoverPolicy{}.attempts_per_server) +
                     " times) when one cannot be reached, drops the connection, is busy or "
                     "unavailable, or is shutting down for a new job; a job sent again keeps its "
                     "idempotency key, and waiting for a job goes on on another node")
      ->envname("MRD_SERVER")
      ->type_name("HOST:PORT")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            try {
              client::parse_server_list(text);
              return "";
            } catch (const client::ClientError& e) {
              return e.what();
            }
          },
          ""));
  app.add_option("--timeout", options.timeout_seconds,
                 "Seconds a connect, send or receive may make no progress before mrctl gives up "
                 "(0: wait forever)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_flag("-q,--quiet", options.quiet, "Show no progress while waiting for a job");
  app.add_flag("--trace", options.trace,
               "Print every protocol frame sent and received on stderr, while the command runs as "
               "usual: the opcode or status, the body length, the bytes in hex (the first 64) and "
               "the decoded fields")
      ->envname("MRD_TRACE");

  auto* tls = app.add_option_group(
      "TLS",
      "For a server's TLS port (mrd --tls-listen). SSLKEYLOGFILE=FILE appends the session "
      "keys to FILE, for Wireshark");
  tls->add_flag("--tls", options.tls.enabled,
                "Speak TLS, checking the server's certificate and that it names the host in "
                "--server")
      ->envname("MRD_TLS");
  tls->add_option("--cacert", options.tls.ca_file,
                  "CA certificates (PEM) that sign the server's certificate (default: the "
                  "system's)")
      ->envname("MRD_CACERT")
      ->check(CLI::ExistingFile);
  tls->add_option("--cert", options.tls.cert_file,
                  "Client certificate (PEM), for servers that ask for one; needs --key")
      ->check(CLI::ExistingFile);
  tls->add_option("--key", options.tls.key_file, "The client certificate's private key (PEM)")
      ->check(CLI::ExistingFile);
  tls->add_flag(
      "--insecure-skip-verify", [&options](std::int64_t) { options.tls.verify = false; },
      "INSECURE: accept any certificate for any name; anyone in the middle can read "
      "and change the traffic");

  app.add_option("--token-file", options.token_file,
                 "File whose first line is the token for a server that asks for one (mrd "
                 "--auth-file); MRD_TOKEN=TOKEN in the environment does the same")
      ->check(CLI::ExistingFile);

  // Also accepted here, before the command name; the job commands list them as well.
  auto* group = app.add_option_group("Job options",
                                     "For wordcount, bigrams, index, stats, matmul and submit");
  add_submit_options(*group, options.submit);
}

void add_submit_options(CLI::App& command, SubmitOptions& options) {
  command.add_flag("--no-wait", options.no_wait,
                   "Print the job id and exit without waiting; fetch later with `mrctl result ID`");
  command.add_option("--chunk-bytes", options.chunk_bytes,
                     "Bytes of input per map task (0: the server chooses)");
  command.add_option("--partitions", options.partitions,
                     "Number of reduce partitions (0: the server chooses)");
  command.add_option("--task-timeout-ms", options.task_timeout_ms,
                     "Longest one map or reduce task may run (0: the server's --task-timeout)");
  command.add_option("--memory-limit-mib", options.memory_limit_mib,
                     "Memory a worker may use for one task (0: the server's --worker-memory-mib)");
  command
      .add_option("--idempotency-key", options.idempotency_key,
                  "Key that makes resending this job safe: the server runs one job per key "
                  "(default: a random key; mrctl resends on a lost connection)")
      ->check(
          [](const std::string& key) {
            return key.size() <= protocol::kMaxIdempotencyKeyBytes
                       ? std::string()
                       : "at most " + std::to_string(protocol::kMaxIdempotencyKeyBytes) + " bytes";
          },
          "KEY");
}

void add_output_options(CLI::App& command, OutputOptions& options, bool counts) {
  command.add_flag("--json", options.json, "Print the result as JSON");
  if (!counts) return;
  auto* all = command.add_flag("--all", options.all, "Print every entry, not only the top ones");
  command.add_option("--top", options.top, "Print the N most frequent entries")
      ->check(CLI::NonNegativeNumber)
      ->excludes(all);
}

}  // namespace mrd::mrctl
