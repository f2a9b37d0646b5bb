// One client connection, served by one coroutine that owns its socket and buffers.
//
// The loop: wait until the socket is readable, read what is there, answer every whole request in
// it (in order, replies appended to one buffer), write the replies, repeat. Requests are read only
// while no reply is being written, so a client that never reads its replies stalls only itself and
// costs at most one reply buffer. An idle timer closes connections that go silent.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include "server/request_handler.hpp"
#include "server/server_config.hpp"

namespace mrd::server {

/// Serves `socket` until the client leaves, breaks the framing, or idles out.
asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, const ServerConfig& config,
                                       RequestHandler& handler);

}  // namespace mrd::server
