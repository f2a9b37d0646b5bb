// The server's TLS settings, made once at start from --tls-cert-file, --tls-key-file,
// --tls-ca-cert-file and --tls-auth-clients, and shared by every TLS connection.
#pragma once

#include <asio/ssl/context.hpp>

#include "server/server_config.hpp"

namespace mrd::server {

/// A context for the TLS listener: TLS 1.2 or later only, the certificate and key checked against
/// each other, client certificates asked for (and checked against the CA file) as `config` says,
/// and OpenSSL's buffers released while a connection is idle. Throws std::runtime_error naming
/// the file and OpenSSL's reason when a file cannot be used.
asio::ssl::context make_server_tls_context(const TlsConfig& config);

}  // namespace mrd::server
