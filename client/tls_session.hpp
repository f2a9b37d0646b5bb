// TlsSession: TLS over a connected socket, for TcpStream (mrctl --tls and the client library).
//
// OpenSSL encrypts into memory and decrypts from memory; the socket itself is read and written
// here, with socket_io.hpp's calls. So TLS gets the same stall timeouts as plain TCP, and a server
// that hangs up mid-write is an error, never a SIGPIPE.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "client/server_address.hpp"

struct ssl_st;
struct bio_st;

namespace mrd::client {

/// How to speak TLS to the server.
struct TlsOptions {
  bool enabled = false;
  /// CA certificates (PEM) that sign the server's certificate; empty: the system's (Debian's
  /// /etc/ssl/certs).
  std::string ca_file;
  /// A client certificate and its key (PEM), for servers that ask for one; both or neither.
  std::string cert_file;
  std::string key_file;
  /// Check the server's certificate and that it names the host connected to. False only for
  /// --insecure-skip-verify: anyone in the middle can then read and change everything.
  bool verify = true;
  /// If set, the session keys are appended here in the NSS key log format (SSLKEYLOGFILE), so
  /// that Wireshark can decrypt a capture. Anyone with the file can read the traffic.
  std::string keylog_file;
};

class TlsSession {
 public:
  /// Makes the TLS handshake over the connected socket `fd` (which stays the caller's) with
  /// `address.host` as the name the certificate must hold. Throws ClientError: kUsage for a file
  /// that cannot be used, kTls for a failed handshake (kConnection if the socket failed), with
  /// OpenSSL's reason and a hint.
  static std::unique_ptr<TlsSession> handshake(int fd, const ServerAddress& address,
                                               const TlsOptions& options);

  /// Says close_notify (best effort, without waiting for the server's).
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  /// As TcpStream::send_all. Throws ClientError (kTls) if TLS itself fails.
  std::error_code send_all(std::string_view bytes);

  /// As TcpStream::receive_some: 0 once the server has closed, with or without close_notify.
  /// Throws ClientError (kTls) with the server's alert (a client certificate it wanted,
  /// say) if TLS itself fails.
  std::size_t receive_some(std::span<char> into, std::error_code& error);

 private:
  TlsSession(int fd, std::string peer, std::string keylog_file);
  /// Sends what OpenSSL has encrypted so far.
  std::error_code flush();
  /// Receives more encrypted bytes for OpenSSL; false (with `error` set or not) at EOF.
  bool fill(std::error_code& error);
  /// Throws the ClientError for a failed TLS call: `what` failed, OpenSSL's reason, and a hint.
  [[noreturn]] void fail(const std::string& what);
  /// Called by OpenSSL with each key log line.
  static void log_keys(const ssl_st* ssl, const char* line);

  int fd_;
  std::string peer_;               ///< "host:port", for messages
  std::string keylog_file_;        ///< TlsOptions::keylog_file
  ssl_st* ssl_ = nullptr;          ///< owns its context reference and both memory BIOs
  bio_st* network_in_ = nullptr;   ///< encrypted bytes received, for OpenSSL to read
  bio_st* network_out_ = nullptr;  ///< encrypted bytes OpenSSL wrote, to send
};

}  // namespace mrd::client
