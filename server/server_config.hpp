// Everything mrd can be told at start-up, with its default.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/limits.hpp"
#include "protocol/wire.hpp"
#include "server/cluster/redis_address.hpp"

namespace mrd::server {

/// Whether a TLS client must show a certificate signed by the CA file (--tls-auth-clients).
enum class ClientCertificates { kNotAsked, kOptional, kRequired };

/// The TLS listener (--tls-listen) and the files it needs.
struct TlsConfig {
  std::string listen_host;  ///< empty: no TLS listener
  std::uint16_t listen_port = 0;
  std::string port_file;  ///< if set, the bound TLS port is written here once listening
  std::string cert_file;  ///< the server's certificate chain, PEM
  std::string key_file;   ///< its private key, PEM
  std::string ca_file;    ///< CAs that sign client certificates, PEM; needed to ask for them
  ClientCertificates client_certificates = ClientCertificates::kNotAsked;

  bool enabled() const { return !listen_host.empty(); }
};

/// A node of a cluster (--redis): its jobs live in Redis, shared with every other node.
struct ClusterConfig {
  /// The Redis of --redis redis://[user:password@]HOST:PORT[/DB], parsed (redis_address.hpp);
  /// no host: a single server.
  cluster::RedisAddress redis;
  std::string node_name;  ///< unique in the cluster; main.cpp defaults it to HOST:PID
  /// How long a node may go without renewing its hold on a job before another node takes it.
  std::uint32_t lease_ms = 10000;
  /// How long a finished job's result and record stay in Redis (the single server's
  /// --max-retained-mib, for a cluster).
  std::uint32_t result_ttl_seconds = 86400;
  bool enabled() const { return !redis.host.empty(); }
};

struct ServerConfig {
  std::string listen_host = "127.0.0.1";  ///< empty: no plain TCP listener (--listen none)
  std::uint16_t listen_port = protocol::kDefaultPort;  ///< 0: any free port (see port_file)
  std::string port_file;  ///< if set, the bound port is written here once listening
  TlsConfig tls;          ///< the TLS listener, if any
  std::string auth_file;  ///< tokens (auth_tokens.hpp); empty: no AUTH, every client trusted
  bool insecure = false;  ///< listen beyond loopback without --auth-file (protected mode off)
  unsigned workers = 0;   ///< worker processes; 0 = one per core
  std::uint64_t max_frame_bytes = protocol::kDefaultMaxFrameBytes;
  /// Connections served at once; lowered at start if the open-files limit cannot hold them all.
  std::uint32_t max_connections = protocol::kDefaultMaxConnections;
  std::uint32_t max_queued_jobs = protocol::kDefaultMaxQueuedJobs;
  /// Unfinished jobs one tenant may have at once (with --auth-file); 0: only max_queued_jobs.
  std::uint32_t max_queued_jobs_per_tenant = 0;
  std::uint32_t idle_timeout_seconds = protocol::kDefaultIdleTimeoutSeconds;
  std::uint32_t request_timeout_seconds = protocol::kDefaultRequestTimeoutSeconds;
  std::uint64_t max_retained_bytes = protocol::kDefaultMaxRetainedBytes;
  /// Bytes the server may hold for clients (uploads, job inputs, tasks in flight, results); see
  /// memory_budget.hpp. 0 until main.cpp chooses it from the machine's memory.
  std::uint64_t max_memory_bytes = 0;
  /// After SIGTERM or SIGINT: seconds the accepted jobs may take to finish before they are
  /// abandoned (new SUBMITs answer SHUTTING_DOWN meanwhile); 0 = stop at once.
  std::uint32_t drain_seconds = 30;
  std::uint32_t task_timeout_seconds = 300;  ///< for jobs that set no task_timeout_ms
  std::uint32_t worker_memory_mib = 4096;    ///< for jobs that set no memory_limit_mib; 0 = none
  bool enable_test_jobs = false;             ///< accept the fault-injecting test-* mappers
  std::string data_dir;   ///< where jobs and results are stored durably; empty = in memory only
  bool fsync = false;     ///< fsync every commit (survives power loss, costs an fsync per job)
  ClusterConfig cluster;  ///< with --redis: a node of a cluster sharing its jobs through Redis
  std::string worker_executable;     ///< this binary; found from /proc/self/exe
  std::vector<std::string> plugins;  ///< --plugin files, as absolute paths
};

/// Counters the network thread keeps for STATS.
struct ConnectionCounters {
  std::uint64_t open = 0;
  std::uint64_t total = 0;
  std::uint64_t requests = 0;
  std::uint64_t rejected = 0;
};

}  // namespace mrd::server
