#include "client/web/mrd_servers.hpp"

#include <algorithm>
#include <utility>

#include "client/client_error.hpp"

namespace mrd::web {

MrdServers::MrdServers(std::vector<client::ServerAddress> addresses, client::TlsOptions tls,
                       std::chrono::milliseconds io_timeout, std::string own_token)
    : addresses_(std::move(addresses)),
      tls_(std::move(tls)),
      io_timeout_(io_timeout),
      scrape_timeout_(std::min(io_timeout, kScrapeTimeout)),
      own_token_(std::move(own_token)) {}

client::Connection MrdServers::connect(std::size_t index, const std::optional<std::string>& token,
                                       const char* how_to_give_one,
                                       std::chrono::milliseconds timeout) const {
  auto connection = client::Connection::connect(addresses_.at(index), timeout, tls_);
  connection.hello();
  if (connection.auth_required()) {
    if (!token) {
      throw client::ClientError(client::ErrorKind::kRejected,
                                "the server at " + client::to_string(addresses_[index]) +
                                    " needs a token: " + how_to_give_one,
                                protocol::Status::kNotAuthenticated);
    }
    connection.auth(*token);
  }
  return connection;
}

client::Connection MrdServers::for_caller(const std::optional<std::string>& bearer) const {
  return connect(0, bearer, "send it as \"Authorization: Bearer TOKEN\"", io_timeout_);
}

client::Connection MrdServers::for_self(std::size_t index) const {
  const auto token = own_token_.empty() ? std::nullopt : std::optional<std::string>(own_token_);
  return connect(index, token, "give mrd-web one with --token-file FILE or MRD_TOKEN",
                 scrape_timeout_);
}

std::string MrdServers::hello(std::size_t index) const {
  return client::Connection::connect(addresses_.at(index), scrape_timeout_, tls_).hello();
}

}  // namespace mrd::web
