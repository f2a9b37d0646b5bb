// Step two of the tutorial's chapter 0: the echo server of echo_server.cpp, changed in the two
// ways mrd's connections differ from it (server/connection.cpp):
//  - an idle connection holds no read buffer: it waits until the socket is readable, then reads
//    without blocking into one buffer that every connection shares;
//  - a connection that sends nothing for IDLE_SECONDS is closed by the server.
//
// Usage: echo_with_deadline PORT IDLE_SECONDS   (PORT 0: the kernel chooses; printed first)
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;  // a || b

// Completion token: like use_awaitable, but an error is returned as a value in a tuple instead
// of thrown. A cancellation is then an ordinary value (asio::error::operation_aborted).
constexpr auto as_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// Every connection reads into this one buffer (one thread runs them all, so one is enough). The
// rule that makes sharing it safe: its bytes are used before this coroutine's next co_await,
// because another connection may read into it while this one is suspended.
thread_local char scratch[64 * 1024];

// Echoes until the client leaves, or until cancelled. Every ending is a return, never a throw:
// in Asio 1.22, a || b waits for the first operand that *succeeds*. One that throws does not
// cancel the other, so the watchdog would keep the connection open until its deadline.
asio::awaitable<void> echo(tcp::socket& socket, Clock::time_point& deadline, Clock::duration idle) {
  for (;;) {
    // Waits until there is something to read, without a buffer.
    auto [waited] = co_await socket.async_wait(tcp::socket::wait_read, as_tuple);
    if (waited) co_return;  // operation_aborted: || cancelled us, the watchdog won
    asio::error_code error;
    const std::size_t n = socket.read_some(asio::buffer(scratch), error);  // never blocks
    if (error == asio::error::would_block) continue;  // readiness can be a false alarm
    if (error) co_return;                             // EOF or reset: the client left
    deadline = Clock::now() + idle;                   // the deadline moves with every read
    // Used before the next co_await: the bytes are copied into this connection's own reply.
    const std::string reply(scratch, n);
    auto [write_error, written] = co_await asio::async_write(socket, asio::buffer(reply), as_tuple);
    if (write_error) co_return;
  }
}

// Returns once `deadline` has passed. It sleeps until the deadline, and again if it moved.
asio::awaitable<void> watchdog(const Clock::time_point& deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (deadline > Clock::now()) {
    timer.expires_at(deadline);
    auto [error] = co_await timer.async_wait(as_tuple);
    if (error) co_return;  // operation_aborted: || cancelled us, the echo loop finished first
  }
}

asio::awaitable<void> session(tcp::socket socket, Clock::duration idle) {
  asio::error_code error;
  socket.non_blocking(true, error);  // read_some then answers would_block instead of waiting
  if (error) co_return;
  Clock::time_point deadline = Clock::now() + idle;  // shared by both coroutines below
  // Runs both; the first to return cancels the other. index() says which one finished.
  const auto first = co_await (echo(socket, deadline, idle) || watchdog(deadline));
  if (first.index() == 1) std::fprintf(stderr, "closing a connection idle for too long\n");
}  // the socket closes here, with the frame that owns it: the client reads EOF

asio::awaitable<void> accept_loop(tcp::acceptor acceptor, Clock::duration idle) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket), idle), asio::detached);
  }
}

int main(int argc, char* argv[]) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: echo_with_deadline PORT IDLE_SECONDS\n");
    return 2;
  }
  try {
    asio::io_context io(1);
    tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"),
                                static_cast<asio::ip::port_type>(std::stoi(argv[1]))});
    const auto idle = std::chrono::seconds(std::stoi(argv[2]));
    std::printf("%d\n", int(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    asio::co_spawn(io, accept_loop(std::move(acceptor), idle), [](std::exception_ptr error) {
      if (error) std::rethrow_exception(error);
    });
    io.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_with_deadline: %s\n", e.what());
    return 1;
  }
}
