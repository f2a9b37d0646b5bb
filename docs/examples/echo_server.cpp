// Step one of the tutorial's chapter 0: an echo server written with C++20 coroutines and
// standalone Asio. Every byte a client sends comes back to it, unchanged.
//
// Usage: echo_server PORT   (listens on 127.0.0.1; PORT 0 lets the kernel choose a free port)
// The first line on stdout is the port it listens on, so that a test (or you) can find it.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <system_error>

using asio::ip::tcp;

// One connection. This coroutine's frame owns the socket and the buffer: it is the session.
asio::awaitable<void> echo(tcp::socket socket) {
  char data[4096];
  try {
    for (;;) {
      // Suspends here until bytes arrive; meanwhile the thread runs other coroutines.
      const std::size_t n =
          co_await socket.async_read_some(asio::buffer(data), asio::use_awaitable);
      co_await asio::async_write(socket, asio::buffer(data, n), asio::use_awaitable);
    }
  } catch (const std::system_error& e) {
    // The client left (EOF or a reset): the read or write throws. It must be caught here,
    // because the coroutine is detached and nobody else would see it.
    std::fprintf(stderr, "connection closed: %s\n", e.what());
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor acceptor) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    // Detached: nobody waits for it, and the loop goes back to accepting at once.
    asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
  }
}

int main(int argc, char* argv[]) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: echo_server PORT\n");
    return 2;
  }
  try {
    asio::io_context io(1);  // 1: one thread will call io.run(), as in mrd
    tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"),
                                static_cast<asio::ip::port_type>(std::stoi(argv[1]))});
    std::printf("%d\n", int(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    // Not detached: if accepting fails (out of file descriptors, say), the exception comes out
    // of io.run() below, rather than the server silently no longer accepting.
    asio::co_spawn(io, accept_loop(std::move(acceptor)), [](std::exception_ptr error) {
      if (error) std::rethrow_exception(error);
    });
    io.run();  // runs ready work, on this thread, until none is left or can come
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
