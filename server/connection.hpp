// One client connection, served by one coroutine that owns its socket and buffers.
//
// The loop: wait until the socket is readable, read what is there, answer every whole request in
// it (in order, replies appended to one buffer), write the replies, repeat. Requests are read only
// while no reply is being written, so a client that never reads its replies stalls only itself and
// costs at most one reply buffer. An idle timer closes connections that go silent.
//
// Memory: the bytes of an incomplete request that a connection keeps, and the reply bytes it has
// queued, are charged to the server's MemoryBudget. The buffer grows only with bytes that arrived,
// so a header that lies about its length costs nothing; when a charge does not fit, the client is
// answered SERVER_BUSY and the connection closed.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>

#include "server/memory_budget.hpp"
#include "server/request_handler.hpp"
#include "server/server_config.hpp"

namespace mrd::server {

/// Serves `socket` until the client leaves, breaks the framing, idles out or does not fit in
/// `budget`.
asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, const ServerConfig& config,
                                       RequestHandler& handler,
                                       std::shared_ptr<MemoryBudget> budget);

}  // namespace mrd::server
