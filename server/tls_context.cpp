#include "server/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>
#include <string>

namespace mrd::server {
namespace {

/// OpenSSL's reason for the last failure, or the error code's own message if it queued none.
std::string openssl_reason(const asio::error_code& error) {
  const auto code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return error.message();
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

/// Runs `step` (an asio::ssl::context call taking an error_code); throws if it failed.
template <class Step>
void must(Step step, const std::string& what) {
  asio::error_code error;
  step(error);
  if (error) throw std::runtime_error(what + ": " + openssl_reason(error));
}

}  // namespace

asio::ssl::context make_server_tls_context(const TlsConfig& config) {
  asio::ssl::context context(asio::ssl::context::tls_server);
  // TLS 1.2 and 1.3 only; no compression (CRIME) and no renegotiation by the client.
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  context.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression |
                      SSL_OP_NO_RENEGOTIATION);
  // An idle connection then holds no 16 KiB read and write buffers of OpenSSL's.
  SSL_CTX_set_mode(context.native_handle(), SSL_MODE_RELEASE_BUFFERS);

  must([&](auto& e) { context.use_certificate_chain_file(config.cert_file, e); },
       "cannot use the certificate in " + config.cert_file);
  must([&](auto& e) { context.use_private_key_file(config.key_file, asio::ssl::context::pem, e); },
       "cannot use the private key in " + config.key_file);
  if (SSL_CTX_check_private_key(context.native_handle()) != 1) {
    throw std::runtime_error("the private key in " + config.key_file +
                             " does not belong to the certificate in " + config.cert_file);
  }
  if (!config.ca_file.empty()) {
    must([&](auto& e) { context.load_verify_file(config.ca_file, e); },
         "cannot use the CA certificates in " + config.ca_file);
  }
  switch (config.client_certificates) {
    case ClientCertificates::kNotAsked: context.set_verify_mode(asio::ssl::verify_none); break;
    case ClientCertificates::kOptional:
      // Asked for; a client without one is served, one with a bad one is refused.
      context.set_verify_mode(asio::ssl::verify_peer);
      break;
    case ClientCertificates::kRequired:
      context.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
      break;
  }
  return context;
}

}  // namespace mrd::server
