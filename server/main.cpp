// mrd: the MapReduce job server. Parses the command line, then runs either the server or, when
// started by the server itself with --worker-fd, a worker process.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "server/auth_tokens.hpp"
#include "server/cluster/redis_address.hpp"
#include "server/engine/hash_key.hpp"
#include "server/engine/job_kind.hpp"
#include "server/engine/plugin_jobs.hpp"
#include "server/engine/test_job_directory.hpp"
#include "server/idle_trim.hpp"
#include "server/log.hpp"
#include "server/pool/worker_process.hpp"
#include "server/server.hpp"
#include "server/tls_context.hpp"

namespace {

using namespace mrd::server;

/// Exit codes, for scripts and service managers.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,  ///< an unexpected error while running
  kExitUsage = 2,    ///< bad command line
  kExitListen = 3,   ///< cannot bind or listen
  kExitWorkers = 4,  ///< cannot start the worker processes
  kExitDataDir = 5,  ///< cannot open the data directory
  kExitPlugin = 6,   ///< cannot load a plugin
  kExitTls = 7,      ///< cannot use the TLS certificate, key or CA file
  kExitAuth = 8,     ///< cannot read the auth file, or protected mode refused to start
};

/// Splits "HOST:PORT" (or "[v6]:PORT"); false if it is not that shape.
bool parse_listen(const std::string& text, std::string& host, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  char* end = nullptr;
  const auto value = std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (host.empty() || *end != '\0' || end == text.c_str() + colon + 1 || value > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

/// Every connection is a file descriptor: lift the soft limit (often 1024) to the hard one, so
/// that --max-connections, not a default, decides how many clients are served. The server lowers
/// its connection limit itself if even the hard limit cannot hold them (Server::start).
void raise_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == limit.rlim_max) return;
  const auto soft = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  // A hard limit of "unlimited" still stops at the kernel's fs.nr_open.
  std::uint64_t nr_open = 0;
  if (std::FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
    if (std::fscanf(f, "%" SCNu64, &nr_open) != 1) nr_open = 0;
    std::fclose(f);
  }
  if (nr_open > 0 && limit.rlim_cur > nr_open) limit.rlim_cur = nr_open;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    log(Level::kWarn, "cannot raise the open-files limit from ", soft, " to ", limit.rlim_max, ": ",
        std::strerror(errno));
  }
}

/// The memory this process can count on: the least of physical RAM, the cgroup v2 limit (a
/// container's memory.max) and the address-space limit (ulimit -v), whichever are set.
std::uint64_t usable_memory_bytes() {
  std::uint64_t usable =
      std::uint64_t(sysconf(_SC_PHYS_PAGES)) * std::uint64_t(sysconf(_SC_PAGE_SIZE));
  std::ifstream cgroup_file("/proc/self/cgroup");
  std::string line;
  while (std::getline(cgroup_file, line)) {
    if (line.rfind("0::", 0) != 0) continue;  // the v2 hierarchy's line: "0::/path"
    std::ifstream max_file("/sys/fs/cgroup" + line.substr(3) + "/memory.max");
    std::uint64_t max = 0;
    if (max_file >> max && max > 0) usable = std::min(usable, max);  // "max" (no limit) fails
  }
  rlimit address_space{};
  if (getrlimit(RLIMIT_AS, &address_space) == 0 && address_space.rlim_cur != RLIM_INFINITY) {
    usable = std::min<std::uint64_t>(usable, address_space.rlim_cur);
  }
  return usable;
}

std::string own_executable() {
  char path[PATH_MAX];
  const auto n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return {};
  return std::string(path, static_cast<std::size_t>(n));
}

/// Fills config.tls from the TLS options; the problem, for the user, if they do not go together.
std::optional<std::string> check_tls_options(const std::string& tls_listen,
                                             const std::string& auth_clients,
                                             ServerConfig& config) {
  auto& tls = config.tls;
  const bool any_file = !tls.cert_file.empty() || !tls.key_file.empty() || !tls.ca_file.empty();
  if (tls_listen.empty()) {
    if (config.listen_host.empty())
      return "--listen none leaves nothing to listen on: add --tls-listen";
    if (any_file || !auth_clients.empty() || !tls.port_file.empty()) {
      return "the --tls-* options need --tls-listen HOST:PORT";
    }
    return std::nullopt;
  }
  if (!parse_listen(tls_listen, tls.listen_host, tls.listen_port)) {
    return "--tls-listen wants HOST:PORT, got '" + tls_listen + "'";
  }
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return "--tls-listen needs --tls-cert-file and --tls-key-file";
  }
  const auto mode = auth_clients.empty() ? (tls.ca_file.empty() ? "no" : "yes") : auth_clients;
  tls.client_certificates = mode == "yes"        ? ClientCertificates::kRequired
                            : mode == "optional" ? ClientCertificates::kOptional
                                                 : ClientCertificates::kNotAsked;
  if (tls.client_certificates != ClientCertificates::kNotAsked && tls.ca_file.empty()) {
    return "--tls-auth-clients " + mode + " needs --tls-ca-cert-file to check certificates with";
  }
  if (!config.listen_host.empty() && config.listen_host == tls.listen_host &&
      config.listen_port == tls.listen_port && config.listen_port != 0) {
    return "--listen and --tls-listen name the same address";
  }
  return std::nullopt;
}

/// True for 127.0.0.0/8 and ::1 (and "localhost"): addresses only this machine can reach.
bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  asio::error_code error;
  const auto address = asio::ip::make_address(host, error);
  return !error && address.is_loopback();
}

/// Protected mode, as Redis has it: a server that others can reach must know who they are.
std::optional<std::string> protected_mode_refusal(const ServerConfig& config) {
  if (!config.auth_file.empty() || config.insecure) return std::nullopt;
  for (const auto& host : {config.listen_host, config.tls.listen_host}) {
    if (host.empty() || is_loopback(host)) continue;
    return "refusing to listen on " + host +
           " without --auth-file: anyone who reaches it could read and cancel every job.\n"
           "  Give it tokens (--auth-file FILE; docs/security.md says how to write one),\n"
           "  or listen on 127.0.0.1 only, or accept the risk with --insecure.";
  }
  return std::nullopt;
}

/// Reads --auth-file; logs why not (and returns null) if it cannot.
std::shared_ptr<const AuthTokens> load_tokens(const std::string& path) {
  try {
    auto tokens = std::make_shared<const AuthTokens>(AuthTokens::load(path));
    log(Level::kInfo, "auth: ", tokens->size(), " tokens from ", path);
    return tokens;
  } catch (const std::exception& e) {
    log(Level::kError, "auth: ", e.what());
    return nullptr;
  }
}

std::string job_list_for_help() {
  std::string text = "Built-in jobs (mapper + reducer):";
  for (const auto* kind : mrd::engine::all_job_kinds()) {
    text += "\n  ";
    text += kind->mapper();
    text += " + ";
    text += kind->reducer();
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  // Worker mode comes first: a worker needs nothing of the server's set-up but its plugins and
  // the server's hash key. The server starts it as `mrd --worker-fd 3 [--plugin FILE]...` with
  // MRD_HASH_KEY in its environment.
  if (argc >= 3 && std::strcmp(argv[1], "--worker-fd") == 0) {
    try {
      if (const auto key = mrd::engine::hash_key_from_environment()) {
        mrd::engine::set_hash_key(*key);
      }
      for (int i = 3; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--plugin") == 0) mrd::engine::load_plugin(argv[i + 1]);
      }
    } catch (const std::exception& e) {
      log(Level::kError, "worker: ", e.what());
      return kExitPlugin;
    }
    return run_worker(std::atoi(argv[2]));
  }

  IdleTrim::keep_freed_memory();
  ServerConfig config;
  std::string listen = config.listen_host + ":" + std::to_string(config.listen_port);
  std::string tls_listen;
  std::string redis_url;  // --redis, parsed into config.cluster.redis
  std::string tls_auth_clients;
  std::string log_level = "info";
  std::uint64_t max_frame_mib = config.max_frame_bytes >> 20;
  std::uint64_t max_retained_mib = config.max_retained_bytes >> 20;
  // Half of what the machine (or container, or ulimit) allows: the other half is for the worker
  // processes, the allocator's slack and everything the budget does not count.
  std::uint64_t max_memory_mib = std::max<std::uint64_t>(64, usable_memory_bytes() / 2 >> 20);

  CLI::App app{"mrd " MRD_VERSION
               ": a MapReduce job server. Clients submit jobs over TCP (see docs/protocol.md);\n"
               "each job runs as chunked MapReduce on a pool of worker processes."};
  app.footer(
      job_list_for_help() +
      "\n\nExit codes: 0 stopped (SIGINT/SIGTERM, see --drain-seconds), 1 runtime error, 2 "
      "bad command"
      " line,\n3 cannot listen, 4 cannot start worker processes, 5 cannot open the data "
      "directory\n(or it is damaged: see docs/reliability.md), 6 cannot load a plugin, 7 cannot "
      "use a TLS file, 8 cannot read the auth file\n(or protected mode: see --auth-file, "
      "--insecure).");
  app.set_version_flag("--version", "mrd " MRD_VERSION);
  app.add_option("--listen", listen,
                 "Address to listen on for plain TCP, HOST:PORT (port 0 picks a free one), or "
                 "none (with --tls-listen: TLS only)")
      ->capture_default_str();
  app.add_option("--port-file", config.port_file,
                 "Write the bound port to this file once listening (for scripts and tests)");
  auto* tls_group = app.add_option_group(
      "TLS",
      "A TLS listener, beside or instead of plain TCP (TLS 1.2 and later; docs/security.md)");
  tls_group->add_option("--tls-listen", tls_listen,
                        "Address to listen on for TLS, HOST:PORT (port 0 picks a free one)");
  tls_group->add_option("--tls-port-file", config.tls.port_file,
                        "Write the bound TLS port to this file once listening");
  tls_group
      ->add_option("--tls-cert-file", config.tls.cert_file,
                   "The server's certificate (with its chain), PEM")
      ->check(CLI::ExistingFile);
  tls_group->add_option("--tls-key-file", config.tls.key_file, "The certificate's private key, PEM")
      ->check(CLI::ExistingFile);
  tls_group
      ->add_option("--tls-ca-cert-file", config.tls.ca_file,
                   "CA certificates that sign client certificates, PEM")
      ->check(CLI::ExistingFile);
  tls_group
      ->add_option("--tls-auth-clients", tls_auth_clients,
                   "Client certificates: yes (required, signed by --tls-ca-cert-file), optional "
                   "(checked if sent) or no (not asked for). Default: yes with "
                   "--tls-ca-cert-file, no without")
      ->check(CLI::IsMember({"yes", "no", "optional"}));
  app.add_option("--workers", config.workers, "Worker processes (0 = one per core)")
      ->capture_default_str();
  app.add_option("--max-frame-mib", max_frame_mib, "Largest SUBMIT body accepted, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 4095));
  app.add_option("--max-connections", config.max_connections,
                 "Connections served at once; more get SERVER_BUSY (lowered, with a warning, "
                 "if the open-files limit cannot hold them)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--max-queued-jobs", config.max_queued_jobs,
                 "Unfinished jobs accepted at once; more get QUEUE_FULL")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 24));
  app.add_option("--max-queued-jobs-per-tenant", config.max_queued_jobs_per_tenant,
                 "Unfinished jobs one tenant (--auth-file) may have at once; more get "
                 "QUEUE_FULL, and other tenants are still served (0 = no limit but "
                 "--max-queued-jobs)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 1u << 24));
  app.add_option("--idle-timeout", config.idle_timeout_seconds,
                 "Seconds a connection may stay silent (or not read replies) before it is closed")
      ->capture_default_str()
      ->check(CLI::Range(1u, 86400u));
  app.add_option("--request-timeout", config.request_timeout_seconds,
                 "Seconds a request may take to arrive once it has started (against clients that "
                 "trickle bytes)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 86400u));
  auto* retained_option =
      app.add_option(
             "--max-retained-mib", max_retained_mib,
             "Finished results kept, in MiB; the oldest are evicted (FETCH then says expired)")
          ->capture_default_str();
  app.add_option("--max-memory-mib", max_memory_mib,
                 "Memory the server may hold for clients, in MiB: requests being uploaded, queued "
                 "jobs' inputs, tasks in flight and finished results. Past it, uploads get "
                 "SERVER_BUSY and SUBMITs QUEUE_FULL. Default: half of the least of physical RAM, "
                 "the cgroup's memory.max and ulimit -v (this machine)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{16}, std::uint64_t{1} << 40));
  app.add_option("--task-timeout", config.task_timeout_seconds,
                 "Seconds one map or reduce task may run before its worker is killed and the "
                 "task retried (for jobs that set no timeout)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 4000000u));
  app.add_option("--worker-memory-mib", config.worker_memory_mib,
                 "Address space a worker may use for one task, in MiB (for jobs that set no "
                 "limit; 0 = unlimited); a task over it fails its job as out of memory")
      ->capture_default_str();
  app.add_flag("--enable-test-jobs", config.enable_test_jobs,
               "Accept the test-* mappers, which crash, hang or exhaust memory on purpose "
               "(for testing fault handling; never in production)");
  app.add_option("--data-dir", config.data_dir,
                 "Keep jobs and results in DIR/mrd.sqlite3, so that they survive a restart or a "
                 "crash (without it everything is in memory and lost when mrd stops)");
  app.add_flag("--fsync", config.fsync,
               "With --data-dir: fsync every commit, so acknowledged jobs survive a power cut too "
               "(by default they survive the server being killed, not the machine)");
  app.add_option("--drain-seconds", config.drain_seconds,
                 "On SIGTERM or SIGINT: seconds the accepted jobs may take to finish (new SUBMITs "
                 "get SHUTTING_DOWN, other requests are answered) before mrd stops and abandons "
                 "the rest; a second signal stops at once; 0 = stop at once")
      ->capture_default_str()
      ->check(CLI::Range(0u, 86400u));
  app.add_option("--plugin", config.plugins,
                 "Load the jobs of a plugin (a shared library built with server/sdk/mrd_plugin.h;"
                 " see docs/plugins.md). Repeat for several")
      ->type_name("FILE.so");
  auto* cluster_group =
      app.add_option_group("Cluster",
                           "Nodes that share one job namespace and their work through Redis "
                           "(docs/scale-out.md)");
  cluster_group->add_option(
      "--redis", redis_url,
      "Run as a node of the cluster whose jobs live in this Redis, "
      "redis://[user:password@]HOST:PORT[/DB]: any node answers for any job, and each runs the "
      "jobs it has free workers for");
  cluster_group->add_option("--node-name", config.cluster.node_name,
                            "With --redis: this node's name, unique in the cluster (HELLO shows "
                            "it). Default: HOSTNAME:PID");
  cluster_group
      ->add_option("--lease-ms", config.cluster.lease_ms,
                   "With --redis: how long a node may go without renewing its hold on a job "
                   "before another node runs the job again")
      ->capture_default_str()
      ->check(CLI::Range(200u, 3600000u));
  cluster_group
      ->add_option("--result-ttl", config.cluster.result_ttl_seconds,
                   "With --redis: seconds a finished job's record and result stay in Redis "
                   "(FETCH then says expired)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 31536000u));
  auto* auth_group = app.add_option_group("Access", "Who may use the server (docs/security.md)");
  auth_group
      ->add_option("--auth-file", config.auth_file,
                   "Tokens, one per line: 'tenant role sha256-of-token' (role user or admin). "
                   "Every request but HELLO and AUTH then needs AUTH first; re-read on SIGHUP")
      ->check(CLI::ExistingFile);
  auth_group->add_flag("--insecure", config.insecure,
                       "Listen on addresses other than loopback without --auth-file (anyone "
                       "who reaches the port can read and cancel every job)");
  app.add_option("--log-level", log_level,
                 "error, warn, info or debug (debug adds a line per connection closed: its peer, "
                 "why, and how many requests it made)")
      ->capture_default_str()
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text, or json: one JSON object per line (time, pid, level, message) for log "
                 "collectors")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  // Before anything is logged: every line in the format asked for.
  Level level = Level::kInfo;
  parse_log_level(log_level, level);
  set_log_level(level);
  set_log_format(log_format == "json" ? LogFormat::kJson : LogFormat::kText);
  if (listen == "none") {
    config.listen_host.clear();
  } else if (!parse_listen(listen, config.listen_host, config.listen_port)) {
    std::fprintf(stderr, "mrd: --listen wants HOST:PORT or none, got '%s'\n", listen.c_str());
    return kExitUsage;
  }
  if (!redis_url.empty()) {
    std::string error;
    const auto redis = mrd::server::cluster::parse_redis_url(redis_url, error);
    if (!redis) {
      std::fprintf(stderr, "mrd: --redis: %s\n", error.c_str());
      return kExitUsage;
    }
    config.cluster.redis = *redis;
    if (!config.data_dir.empty()) {
      std::fprintf(stderr,
                   "mrd: --redis and --data-dir do not go together: a cluster's jobs are kept in "
                   "Redis (docs/scale-out.md says which Redis settings make them durable)\n");
      return kExitUsage;
    }
    if (config.cluster.node_name.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      config.cluster.node_name = std::string(host) + ":" + std::to_string(getpid());
    }
  }
  if (const auto problem = check_tls_options(tls_listen, tls_auth_clients, config)) {
    std::fprintf(stderr, "mrd: %s\n", problem->c_str());
    return kExitUsage;
  }
  if (const auto refusal = protected_mode_refusal(config)) {
    std::fprintf(stderr, "mrd: %s\n", refusal->c_str());
    return kExitAuth;
  }
  std::shared_ptr<const AuthTokens> tokens;
  if (!config.auth_file.empty() && !(tokens = load_tokens(config.auth_file))) return kExitAuth;
  std::unique_ptr<asio::ssl::context> tls_context;
  if (config.tls.enabled()) {
    try {
      tls_context = std::make_unique<asio::ssl::context>(make_server_tls_context(config.tls));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mrd: %s\n", e.what());
      return kExitTls;
    }
  }
  config.max_frame_bytes = max_frame_mib << 20;
  config.max_retained_bytes = max_retained_mib << 20;
  config.max_memory_bytes = max_memory_mib << 20;
  log(Level::kInfo, "memory budget ", max_memory_mib, " MiB (--max-memory-mib)");
  // Retained results live inside the budget: a cap the budget cannot hold would evict nothing
  // while uploads and jobs are refused for want of memory.
  if (config.max_retained_bytes > config.max_memory_bytes / 2) {
    config.max_retained_bytes = config.max_memory_bytes / 2;
    log(retained_option->count() ? Level::kWarn : Level::kInfo, "--max-retained-mib ",
        max_retained_mib, " is more than half the memory budget: results are kept up to ",
        config.max_retained_bytes >> 20, " MiB");
  }
  if (config.workers == 0) config.workers = std::max(1u, std::thread::hardware_concurrency());
  config.worker_executable = own_executable();
  for (auto& plugin : config.plugins) {
    plugin = std::filesystem::absolute(plugin).string();  // workers may resolve it elsewhere
    try {
      mrd::engine::load_plugin(plugin);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mrd: %s\n", e.what());
      return kExitPlugin;
    }
  }
  for (const auto* kind : mrd::engine::plugin_job_kinds()) {
    log(Level::kInfo, "plugin job ", kind->mapper(), " + ", kind->reducer());
  }

  // A peer that goes away mid-write must be an error code, not a process-killing signal.
  signal(SIGPIPE, SIG_IGN);
  raise_file_limit();

  // Before the server starts its workers, which find it in their environment; removed at the end
  // of main, after the server (and its workers) are gone.
  std::optional<mrd::engine::TestJobDirectory> test_job_directory;
  if (config.enable_test_jobs) {
    try {
      test_job_directory.emplace();
    } catch (const std::exception& e) {
      log(Level::kError, "cannot start: ", e.what());
      return kExitFailure;
    }
    log(Level::kInfo, "test jobs write only in ", test_job_directory->path());
  }

  // A key nobody outside can know, so that no client can choose words that collide in the
  // workers' hash tables; the workers get it in their environment (see server.cpp).
  try {
    mrd::engine::set_hash_key(mrd::engine::random_hash_key());
  } catch (const std::exception& e) {
    log(Level::kError, "cannot draw a hash key: ", e.what());
    return kExitFailure;
  }

  asio::io_context io(1);
  // Caught from here on: a signal that arrives while the server starts (it may already be
  // listening) waits in the set for the handler below instead of killing the process.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::signal_set hangups(io, SIGHUP);
  std::unique_ptr<Server> server_holder;
  try {
    server_holder = std::make_unique<Server>(io, config, std::move(tls_context));
  } catch (const DatabaseError& e) {
    log(Level::kError, "refusing to start: ", e.what());
    return kExitDataDir;
  } catch (const std::exception& e) {
    log(Level::kError, "cannot start: ", e.what());
    return kExitDataDir;
  }
  Server& server = *server_holder;
  if (tokens) server.set_tokens(tokens);
  if (config.insecure) {
    log(Level::kWarn, "--insecure: no tokens are asked for; anyone who reaches ",
        config.listen_host.empty() ? config.tls.listen_host : config.listen_host,
        " can read and cancel every job");
  }
  try {
    server.start();
  } catch (const DatabaseError& e) {
    // Reading the jobs back (in start) can meet damage the check at opening did not.
    log(Level::kError, "refusing to start: ", e.what());
    return kExitDataDir;
  } catch (const std::system_error& e) {
    log(Level::kError, "cannot listen on ", listen, ": ", e.code().message());
    return kExitListen;
  } catch (const std::exception& e) {
    log(Level::kError, "cannot start: ", e.what());
    return kExitWorkers;
  }

  // The first SIGTERM or SIGINT drains (running jobs may finish, new ones are refused); the
  // second stops at once.
  bool draining = false;
  std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& error,
                                                                    int signal) {
    if (error) return;
    if (!draining) {
      draining = true;
      log(Level::kInfo, "signal ", signal, " (", strsignal(signal), "): stopping");
      server.drain([&] {
        asio::error_code ignored;
        signals.cancel(ignored);
        io.stop();
      });
      signals.async_wait(on_signal);
      return;
    }
    log(Level::kInfo, "signal ", signal, " (", strsignal(signal), ") again: stopping now");
    server.stop();
    io.stop();
  };
  signals.async_wait(on_signal);

  // SIGHUP re-reads --auth-file. A file that no longer reads keeps the tokens in force (a typo
  // must not lock everyone out); connections already authenticated stay as they are.
  std::function<void(const asio::error_code&, int)> on_hangup = [&](const asio::error_code& error,
                                                                    int) {
    if (error) return;
    if (config.auth_file.empty()) {
      log(Level::kInfo, "SIGHUP: nothing to re-read (no --auth-file)");
    } else if (auto reloaded = load_tokens(config.auth_file)) {
      server.set_tokens(std::move(reloaded));
    } else {
      log(Level::kWarn, "SIGHUP: keeping the tokens read before");
    }
    hangups.async_wait(on_hangup);
  };
  hangups.async_wait(on_hangup);

  try {
    io.run();
  } catch (const std::exception& e) {
    log(Level::kError, "stopped by an error: ", e.what());
    server.stop();
    return kExitFailure;
  }
  log(Level::kInfo, "stopped");
  return kExitOk;
}
