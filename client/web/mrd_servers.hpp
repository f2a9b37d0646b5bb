// MrdServers: the mrd servers behind mrd-web, and how a route gets a connection to one.
//
// Every HTTP request gets a connection of its own (connect, HELLO, AUTH): on loopback that costs
// about a tenth of a millisecond, keeps no state shared between the HTTP threads, and means a
// restarted mrd is simply reached again by the next request.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "client/connection.hpp"
#include "client/server_address.hpp"
#include "client/tls_session.hpp"

namespace mrd::web {

class MrdServers {
 public:
  /// `own_token` is mrd-web's own (from --token-file or MRD_TOKEN; empty for none).
  MrdServers(std::vector<client::ServerAddress> addresses, client::TlsOptions tls,
             std::chrono::milliseconds io_timeout, std::string own_token);

  /// A connection to the first server that acts as the HTTP caller: AUTH with `bearer` if the
  /// server asks for a token. No bearer for such a server is a ClientError (NOT_AUTHENTICATED).
  /// mrd-web's own token is never used here.
  client::Connection for_caller(const std::optional<std::string>& bearer) const;

  /// A connection to server `index` with mrd-web's own token: for metrics and health. Its
  /// timeout is at most kScrapeTimeout.
  client::Connection for_self(std::size_t index) const;

  /// HELLO to server `index` (no AUTH; at most kScrapeTimeout): its software name. For /healthz:
  /// is it there at all?
  std::string hello(std::size_t index) const;

  const std::vector<client::ServerAddress>& addresses() const { return addresses_; }

 private:
  client::Connection connect(std::size_t index, const std::optional<std::string>& token,
                             const char* how_to_give_one, std::chrono::milliseconds timeout) const;

  std::vector<client::ServerAddress> addresses_;
  client::TlsOptions tls_;
  std::chrono::milliseconds io_timeout_;
  /// For metrics and health: Prometheus gives a scrape 10 s, so a server that does not answer
  /// must not take longer than this.
  static constexpr std::chrono::milliseconds kScrapeTimeout{5000};
  std::chrono::milliseconds scrape_timeout_;
  std::string own_token_;
};

}  // namespace mrd::web
