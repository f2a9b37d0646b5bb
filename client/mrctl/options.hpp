// The option groups several mrctl commands share, and how each is added to a command.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "client/server_address.hpp"
#include "client/text_output.hpp"
#include "client/tls_session.hpp"

namespace mrd::mrctl {

/// What the chosen command will do once the command line has been parsed; returns the exit code.
using Runner = std::function<int()>;

/// Options of every command that submits a job.
struct SubmitOptions {
  bool no_wait = false;                ///< print the job id and exit instead of waiting
  std::uint64_t chunk_bytes = 0;       ///< JobOptions::chunk_bytes; 0 lets the server choose
  std::uint32_t partitions = 0;        ///< JobOptions::partitions; 0 lets the server choose
  std::uint32_t task_timeout_ms = 0;   ///< JobOptions::task_timeout_ms; 0: the server's default
  std::uint32_t memory_limit_mib = 0;  ///< JobOptions::memory_limit_mib; 0: the server's default
  std::string idempotency_key;         ///< empty: a random one, so resending is safe
};

/// Options of mrctl itself, valid before or after the command name.
struct GlobalOptions {
  std::string server{client::kDefaultServer};
  double timeout_seconds = 60;  ///< stall timeout per send/receive; 0 waits forever
  bool quiet = false;           ///< no progress display
  bool trace = false;           ///< describe every frame sent and received on stderr
  client::TlsOptions tls;       ///< --tls and its files; keylog_file from SSLKEYLOGFILE
  std::string token_file;       ///< --token-file; MRD_TOKEN when empty
  SubmitOptions submit;         ///< for the job commands only
};

/// How a result is printed.
struct OutputOptions {
  bool json = false;
  std::size_t top = 10;  ///< entries of a counts result to print
  bool all = false;      ///< print every entry of a counts result

  std::size_t entries() const { return all ? client::kAllEntries : top; }
};

/// --server, --timeout, --quiet, --trace, the TLS options, and the submit options in groups of
/// their own.
void add_global_options(CLI::App& app, GlobalOptions& options);

/// --no-wait, --chunk-bytes, --partitions.
void add_submit_options(CLI::App& command, SubmitOptions& options);

/// --json, and with `counts` also --top and --all.
void add_output_options(CLI::App& command, OutputOptions& options, bool counts);

}  // namespace mrd::mrctl
