#include "client/tls_session.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "client/client_error.hpp"
#include "client/socket_io.hpp"

namespace mrd::client {
namespace {

/// Encrypted bytes are moved between OpenSSL and the socket this many at a time, and a big
/// request is encrypted this much at a time (so it is never all held twice).
constexpr std::size_t kChunkBytes = 64 * 1024;

/// OpenSSL's reasons for the failures it queued ("certificate verify failed"), emptied.
std::string openssl_reasons() {
  std::string text;
  while (const auto code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    if (!text.empty()) text += "; ";
    text += reason ? reason : "error " + std::to_string(ERR_GET_REASON(code));
  }
  return text;
}

bool is_ip_literal(const std::string& host) {
  unsigned char address[16];
  return inet_pton(AF_INET, host.c_str(), address) == 1 ||
         inet_pton(AF_INET6, host.c_str(), address) == 1;
}

struct ContextFree {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};

/// A client context as `options` say: TLS 1.2 or later, the server's certificate checked against
/// the CA file (or the system's CAs), and a client certificate if one is given.
std::unique_ptr<SSL_CTX, ContextFree> make_context(const TlsOptions& options) {
  std::unique_ptr<SSL_CTX, ContextFree> context(SSL_CTX_new(TLS_client_method()));
  if (!context) throw ClientError(ErrorKind::kTls, "TLS: " + openssl_reasons());
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  const auto unusable = [](const std::string& what, const std::string& file) {
    return ClientError(ErrorKind::kUsage,
                       "cannot use the " + what + " in " + file + ": " + openssl_reasons());
  };
  if (options.verify) {
    if (options.ca_file.empty()) {
      SSL_CTX_set_default_verify_paths(context.get());
    } else if (SSL_CTX_load_verify_locations(context.get(), options.ca_file.c_str(), nullptr) !=
               1) {
      throw unusable("CA certificates", options.ca_file);
    }
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr);
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    throw ClientError(ErrorKind::kUsage, "a client certificate needs both --cert and --key");
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(context.get(), options.cert_file.c_str()) != 1) {
      throw unusable("certificate", options.cert_file);
    }
    if (SSL_CTX_use_PrivateKey_file(context.get(), options.key_file.c_str(), SSL_FILETYPE_PEM) !=
        1) {
      throw unusable("private key", options.key_file);
    }
    if (SSL_CTX_check_private_key(context.get()) != 1) {
      throw ClientError(ErrorKind::kUsage, "the private key in " + options.key_file +
                                               " does not belong to the certificate in " +
                                               options.cert_file);
    }
  }
  return context;
}

/// What to try next, for a handshake that failed with `reasons`.
std::string hint_for(const std::string& reasons, long verify_result) {
  switch (verify_result) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return " (connect by a name the server's certificate holds)";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return " (name the CA that signed the server's certificate with --cacert FILE)";
    default: break;
  }
  if (reasons.find("wrong version number") != std::string::npos ||
      reasons.find("packet length too long") != std::string::npos ||
      reasons.find("record layer failure") != std::string::npos) {
    return " (the server answered without TLS: is this its plain TCP port? mrd's TLS port is "
           "the one given to --tls-listen)";
  }
  if (reasons.find("certificate required") != std::string::npos ||
      reasons.find("handshake failure") != std::string::npos) {
    return " (the server may want a client certificate: --cert FILE --key FILE)";
  }
  return "";
}

}  // namespace

TlsSession::TlsSession(int fd, std::string peer, std::string keylog_file)
    : fd_(fd), peer_(std::move(peer)), keylog_file_(std::move(keylog_file)) {}

TlsSession::~TlsSession() {
  if (!ssl_) return;
  if (SSL_is_init_finished(ssl_)) {
    SSL_shutdown(ssl_);  // queues close_notify; the server's is not waited for
    flush();
  }
  SSL_free(ssl_);
  ERR_clear_error();
}

void TlsSession::log_keys(const ssl_st* ssl, const char* line) {
  const auto* session = static_cast<const TlsSession*>(SSL_get_app_data(ssl));
  if (!session) return;
  if (std::FILE* file = std::fopen(session->keylog_file_.c_str(), "a")) {
    std::fprintf(file, "%s\n", line);
    std::fclose(file);
  }
}

std::unique_ptr<TlsSession> TlsSession::handshake(int fd, const ServerAddress& address,
                                                  const TlsOptions& options) {
  ERR_clear_error();
  const auto context = make_context(options);
  if (!options.keylog_file.empty()) SSL_CTX_set_keylog_callback(context.get(), &log_keys);
  std::unique_ptr<TlsSession> session(new TlsSession(fd, to_string(address), options.keylog_file));
  session->ssl_ = SSL_new(context.get());  // holds its own reference to the context
  if (!session->ssl_) session->fail("setting up TLS");
  SSL* ssl = session->ssl_;
  SSL_set_app_data(ssl, session.get());
  session->network_in_ = BIO_new(BIO_s_mem());
  session->network_out_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, session->network_in_, session->network_out_);
  // The name the certificate must hold, and SNI for a host name (not for an address).
  const auto& host = address.host;
  if (is_ip_literal(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
  SSL_set_connect_state(ssl);
  for (;;) {
    const int done = SSL_do_handshake(ssl);
    const auto send_error = session->flush();
    if (done == 1) return session;
    if (SSL_get_error(ssl, done) != SSL_ERROR_WANT_READ) session->fail("TLS handshake");
    std::error_code error = send_error;
    if (error || !session->fill(error)) {
      throw ClientError(ErrorKind::kConnection,
                        "TLS handshake with " + session->peer_ + " failed: " +
                            (error ? error.message() : "the server closed the connection") +
                            " (is this its TLS port? mrd's TLS port is the one given to "
                            "--tls-listen)");
    }
  }
}

std::error_code TlsSession::flush() {
  char buffer[kChunkBytes];
  std::error_code error;
  while (BIO_ctrl_pending(network_out_) > 0) {
    const int n = BIO_read(network_out_, buffer, sizeof buffer);
    if (n <= 0) break;
    if (!error) error = socket_send_all(fd_, {buffer, static_cast<std::size_t>(n)});
  }
  return error;
}

bool TlsSession::fill(std::error_code& error) {
  char buffer[kChunkBytes];
  const auto n = socket_receive_some(fd_, buffer, error);
  if (n == 0) return false;
  BIO_write(network_in_, buffer, static_cast<int>(n));
  return true;
}

void TlsSession::fail(const std::string& what) {
  const long verify_result = ssl_ ? SSL_get_verify_result(ssl_) : X509_V_OK;
  std::string reasons = openssl_reasons();
  if (verify_result != X509_V_OK) {
    reasons +=
        std::string(reasons.empty() ? "" : ": ") + X509_verify_cert_error_string(verify_result);
  }
  if (reasons.empty()) reasons = "unknown TLS error";
  throw ClientError(ErrorKind::kTls, what + " with " + peer_ + " failed: " + reasons +
                                         hint_for(reasons, verify_result));
}

std::error_code TlsSession::send_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const auto piece = std::min(bytes.size(), kChunkBytes);
    const int written = SSL_write(ssl_, bytes.data(), static_cast<int>(piece));
    if (written <= 0) fail("TLS");
    if (const auto error = flush()) return error;
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  return {};
}

std::size_t TlsSession::receive_some(std::span<char> into, std::error_code& error) {
  error.clear();
  for (;;) {
    const int n = SSL_read(ssl_, into.data(), static_cast<int>(std::min(into.size(), kChunkBytes)));
    flush();  // reading may have made something to send (a key update's answer)
    if (n > 0) return static_cast<std::size_t>(n);
    switch (SSL_get_error(ssl_, n)) {
      case SSL_ERROR_ZERO_RETURN: return 0;  // close_notify
      case SSL_ERROR_WANT_READ:
        if (!fill(error)) return 0;  // closed without close_notify (or error set): the end
        continue;
      default: fail("TLS");
    }
  }
}

}  // namespace mrd::client
