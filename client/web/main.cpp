// mrd-web: HTTP, JSON and Prometheus metrics in front of one or more mrd servers (docs/http.md).
// A client of mrd like mrctl: the server keeps one protocol, and this program translates.
#include <arpa/inet.h>
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "client/client_error.hpp"
#include "client/server_address.hpp"
#include "client/token_file.hpp"
#include "client/web/http_routes.hpp"
#include "client/web/mrd_servers.hpp"

namespace {

struct Options {
  std::string servers{mrd::client::kDefaultServer};
  std::string listen = "127.0.0.1:9136";
  std::string port_file;
  std::string token_file;
  mrd::client::TlsOptions tls;
  double timeout_seconds = 30;
  std::uint64_t max_body_mib = 4;
  std::size_t threads = 8;
  bool access_log = false;
  std::string https_cert_file;  ///< with https_key_file: serve HTTPS
  std::string https_key_file;
  bool insecure = false;  ///< plain HTTP on an address other machines can reach
};

/// True for 127.0.0.0/8, ::1 and "localhost": addresses only this machine can reach.
bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/// The HTTP server: HTTPS with a certificate, plain HTTP without. As mrd does for its port,
/// plain HTTP is refused on an address others can reach unless --insecure says so: tokens and
/// results would cross the network in the clear.
std::unique_ptr<httplib::Server> make_http_server(const Options& options,
                                                  const mrd::client::ServerAddress& listen) {
  using mrd::client::ClientError;
  using mrd::client::ErrorKind;
  if (options.https_cert_file.empty() != options.https_key_file.empty()) {
    throw ClientError(ErrorKind::kUsage, "--https-cert-file and --https-key-file go together");
  }
  if (!options.https_cert_file.empty()) {
    auto https = std::make_unique<httplib::SSLServer>(options.https_cert_file.c_str(),
                                                      options.https_key_file.c_str());
    if (!https->is_valid()) {
      throw ClientError(ErrorKind::kUsage, "cannot use --https-cert-file " +
                                               options.https_cert_file + " with --https-key-file " +
                                               options.https_key_file);
    }
    return https;
  }
  if (!is_loopback(listen.host) && !options.insecure) {
    throw ClientError(ErrorKind::kUsage,
                      "refusing to serve plain HTTP on " + listen.host +
                          ": tokens and results would cross the network in the clear.\n"
                          "  Give --https-cert-file and --https-key-file, or listen on 127.0.0.1 "
                          "(behind a TLS proxy), or accept the risk with --insecure.");
  }
  return std::make_unique<httplib::Server>();
}

std::vector<mrd::client::ServerAddress> parse_servers(const std::string& list) {
  std::vector<mrd::client::ServerAddress> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    out.push_back(mrd::client::parse_server_address(item));
  if (out.empty())
    throw mrd::client::ClientError(mrd::client::ErrorKind::kUsage, "--server: empty");
  return out;
}

/// --listen: a server address, where port 0 (any free port) is allowed too.
mrd::client::ServerAddress parse_listen_address(const std::string& text) {
  if (text.ends_with(":0")) {
    auto address = mrd::client::parse_server_address(text.substr(0, text.size() - 2));
    address.port = 0;
    return address;
  }
  return mrd::client::parse_server_address(text);
}

std::string own_token(const Options& options) {
  if (!options.token_file.empty()) return mrd::client::read_token_file(options.token_file);
  if (const char* token = std::getenv("MRD_TOKEN"); token && *token) return token;
  return {};
}

/// SIGTERM and SIGINT stop the HTTP server: it stops accepting, finishes the requests in hand,
/// and listen returns. Blocked here before any thread starts, so only this thread takes them.
std::thread stop_on_signals(httplib::Server& http, sigset_t signals) {
  return std::thread([&http, signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    while (!http.is_running())  // a signal before listening began: wait for it to begin
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    http.stop();
    // A second signal, as for mrd, stops at once, without waiting for the requests in hand.
    sigwait(&signals, &signal);
    std::_Exit(1);
  });
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app(
      "mrd-web: the jobs of mrd servers over HTTP and JSON, and their counters as Prometheus "
      "metrics (docs/http.md).",
      "mrd-web");
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", "mrd-web " MRD_VERSION);
  app.add_option("--server", options.servers,
                 "The mrd servers, HOST:PORT[,HOST:PORT...]; the job routes use the first, "
                 "/metrics, /healthz and /api/stats every one")
      ->envname("MRD_SERVER")
      ->type_name("HOST:PORT,...");
  app.add_option("--listen", options.listen, "Where to serve HTTP, HOST:PORT (port 0: any free)")
      ->type_name("HOST:PORT");
  app.add_option("--port-file", options.port_file,
                 "Write the HTTP port to FILE once listening (for scripts)");
  app.add_option("--token-file", options.token_file,
                 "mrd-web's own token, for /metrics, /healthz and /api/stats (STATS needs an admin "
                 "token); MRD_TOKEN does the same. Never used for the job routes, which act as "
                 "the HTTP request's \"Authorization: Bearer TOKEN\"")
      ->check(CLI::ExistingFile);
  auto* tls = app.add_option_group("TLS", "For mrd's TLS port (mrd --tls-listen)");
  tls->add_flag("--tls", options.tls.enabled, "Speak TLS to mrd, checking its certificate");
  tls->add_option("--cacert", options.tls.ca_file,
                  "CA certificates (PEM) that sign mrd's certificate (default: the system's)")
      ->check(CLI::ExistingFile);
  tls->add_option("--cert", options.tls.cert_file, "Client certificate (PEM); needs --key")
      ->check(CLI::ExistingFile);
  tls->add_option("--key", options.tls.key_file, "The client certificate's private key (PEM)")
      ->check(CLI::ExistingFile);
  app.add_option("--timeout", options.timeout_seconds,
                 "Seconds one exchange with mrd may make no progress before it fails (503)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--max-body-mib", options.max_body_mib,
                 "Largest HTTP request body, in MiB; larger ones get 413 before they are read")
      ->check(CLI::Range(1, 1024));
  app.add_option("--threads", options.threads,
                 "HTTP requests served at once (each holds one connection to mrd)")
      ->check(CLI::Range(1, 256));
  app.add_flag("--access-log", options.access_log,
               "Print one line per HTTP request on stderr: method, path, status");
  auto* https = app.add_option_group("HTTPS", "For serving other machines (docs/http.md)");
  https
      ->add_option("--https-cert-file", options.https_cert_file,
                   "Serve HTTPS with this certificate (with its chain), PEM")
      ->check(CLI::ExistingFile);
  https
      ->add_option("--https-key-file", options.https_key_file, "The certificate's private key, PEM")
      ->check(CLI::ExistingFile);
  https->add_flag("--insecure", options.insecure,
                  "Serve plain HTTP on an address other than loopback (tokens and results cross "
                  "the network in the clear)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!options.tls.enabled && (!options.tls.ca_file.empty() || !options.tls.cert_file.empty() ||
                                 !options.tls.key_file.empty())) {
      throw mrd::client::ClientError(mrd::client::ErrorKind::kUsage,
                                     "--cacert, --cert and --key need --tls");
    }
    const auto servers_list = parse_servers(options.servers);
    const auto listen = parse_listen_address(options.listen);
    const mrd::web::MrdServers servers(
        servers_list, options.tls,
        std::chrono::milliseconds(static_cast<std::int64_t>(options.timeout_seconds * 1000)),
        own_token(options));

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const auto server = make_http_server(options, listen);
    httplib::Server& http = *server;
    const auto threads = options.threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_payload_max_length(options.max_body_mib << 20);
    mrd::web::add_routes(http, servers, options.max_body_mib << 20);
    if (options.access_log) {
      http.set_logger([](const httplib::Request& request, const httplib::Response& response) {
        std::fprintf(stderr, "mrd-web: %s %s %d\n", request.method.c_str(), request.path.c_str(),
                     response.status);
      });
    }
    const int port = listen.port == 0
                         ? http.bind_to_any_port(listen.host)
                         : (http.bind_to_port(listen.host, listen.port) ? listen.port : -1);
    if (port <= 0) {
      std::fprintf(stderr, "mrd-web: cannot listen on %s\n", options.listen.c_str());
      return 1;
    }
    if (!options.port_file.empty()) {
      std::ofstream file(options.port_file);
      if (!(file << port << "\n" << std::flush)) {
        std::fprintf(stderr, "mrd-web: cannot write --port-file %s\n", options.port_file.c_str());
        return 1;
      }
    }
    std::fprintf(stderr, "mrd-web: serving %s://%s:%d/ for mrd at %s\n",
                 options.https_cert_file.empty() ? "http" : "https", listen.host.c_str(), port,
                 options.servers.c_str());
    auto stopper = stop_on_signals(http, signals);
    stopper.detach();
    const bool clean = http.listen_after_bind();
    std::fprintf(stderr, "mrd-web: stopped\n");
    return clean ? 0 : 1;
  } catch (const mrd::client::ClientError& e) {
    std::fprintf(stderr, "mrd-web: %s\n", e.what());
    return 2;
  }
}
