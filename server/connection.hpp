// One client connection, served by one coroutine whose frame holds everything the connection
// owns: its socket, buffers and reply queue.
//
// The loop: wait until the socket is readable, read what is there, answer every whole request in
// it (in order, replies appended to one buffer), write the replies, repeat. Requests are read only
// while no reply is being written, so a client that never reads its replies stalls only itself and
// costs at most one reply buffer.
//
// A reply that waits for the database (a SUBMIT or CANCEL with --data-dir, until the database
// writer has committed it) holds up this connection alone: it reads and answers nothing more
// until the reply is resolved, so replies stay in order, and every other connection goes on.
//
// Deadlines: before each wait the connection sets when it must be closed if nothing happens (the
// idle timeout; sooner the request timeout once a request has started; while a reply is written,
// the idle timeout from its last progress). The connection owns no timer: the server's
// DeadlineSweeper closes the socket once that time has passed, the pending wait or write fails,
// and the coroutine ends.
//
// Memory: the bytes of an incomplete request that a connection keeps, and the reply bytes it has
// queued, are charged to the server's MemoryBudget. The buffer grows only with bytes that arrived,
// so a header that lies about its length costs nothing; when a charge does not fit, the client is
// answered SERVER_BUSY and the connection closed. A SUBMIT of 64 KiB or more does not stay in
// that buffer: once its first bytes are in, the rest is received straight into the memory file
// its job will keep (submit_upload.hpp), charged the same way as it grows. An idle connection holds
// no buffer: its cost is the coroutine frame, the socket and the operation waiting on it
// (docs/architecture.md).
#pragma once

#include <memory>

#include "server/connection_socket.hpp"
#include "server/deadline_sweeper.hpp"
#include "server/memory_budget.hpp"
#include "server/request_handler.hpp"
#include "server/server_config.hpp"

namespace asio::ssl {
class context;  // asio/ssl/context.hpp: only the TLS path needs all of it
}  // namespace asio::ssl

namespace mrd::server {

/// Serves `socket` until the client leaves, breaks the framing, misses a deadline (closed by
/// `sweeper`) or does not fit in `budget`. Expected endings are logged at debug level, anything
/// else at error level: nothing escapes.
ConnectionAwaitable<void> serve_connection(ConnectionSocket socket, const ServerConfig& config,
                                           RequestHandler& handler,
                                           std::shared_ptr<MemoryBudget> budget,
                                           DeadlineSweeper& sweeper);

/// The same over TLS: the handshake must finish within the request timeout, a client whose first
/// byte is not a TLS handshake is answered BAD_REQUEST in plain bytes and closed, and closing
/// sends close_notify and waits a bounded time for the client's.
ConnectionAwaitable<void> serve_tls_connection(ConnectionSocket socket,
                                               asio::ssl::context& tls_context,
                                               const ServerConfig& config, RequestHandler& handler,
                                               std::shared_ptr<MemoryBudget> budget,
                                               DeadlineSweeper& sweeper);

}  // namespace mrd::server
