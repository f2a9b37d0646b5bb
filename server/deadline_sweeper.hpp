// DeadlineSweeper: one timer for every connection's deadline.
//
// A connection keeps its deadline (idle, request or write timeout: connection.cpp decides which)
// in a slot here instead of owning a timer and a second coroutine to watch it. One coroutine
// sweeps the slots and closes the socket of every connection whose deadline has passed; that
// makes the connection's pending read wait or write fail, and its coroutine ends. A connection
// that ends takes its slot out.
//
// Memory: a slot is 16 bytes in one vector (moving a deadline allocates nothing; the vector keeps
// its largest size) and an Entry is 24 bytes inside the connection.
//
// Threads: network thread only (no locks); the sweeper and its connections run on one io_context.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <vector>

#include "server/connection_socket.hpp"

namespace mrd::server {

class DeadlineSweeper {
 public:
  using Clock = std::chrono::steady_clock;

  /// Sweeps happen at most this often, so a deadline is met up to this late. Timeouts are whole
  /// seconds (at least one), so a quarter of a second late is well within what they promise, and
  /// a burst of connections whose deadlines fall close together costs one sweep, not one wake-up
  /// each.
  static constexpr auto kMinSweepInterval = std::chrono::milliseconds(250);

  /// One connection's deadline, for the socket it watches. Registers on construction and leaves
  /// on destruction; neither movable nor copyable (the sweeper points at it).
  class Entry {
   public:
    /// Watches `socket` (which must outlive this), with no deadline until expire_at().
    Entry(DeadlineSweeper& sweeper, ConnectionSocket& socket);
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

    /// The socket is closed once `deadline` has passed (at most kMinSweepInterval later), unless
    /// the deadline is moved again first. Allocates nothing.
    void expire_at(Clock::time_point deadline);

    /// True once the sweeper has closed the socket: its deadline passed.
    bool expired() const { return expired_; }

   private:
    friend class DeadlineSweeper;
    DeadlineSweeper* sweeper_;  ///< null once the sweeper is gone (the server stopped first)
    ConnectionSocket& socket_;
    std::uint32_t index_ = 0;  ///< this entry's slot in sweeper_->slots_
    bool expired_ = false;
  };

  explicit DeadlineSweeper(asio::io_context& io);
  /// Lets go of the entries still registered: they outlive it when the io_context destroys the
  /// connections after the server.
  ~DeadlineSweeper();
  DeadlineSweeper(const DeadlineSweeper&) = delete;
  DeadlineSweeper& operator=(const DeadlineSweeper&) = delete;

  /// Starts the sweeping coroutine on the io_context. Once only.
  void start();

  /// Connections registered (open and not yet ended).
  std::size_t size() const { return slots_.size(); }

 private:
  struct Slot {
    Clock::time_point deadline;  ///< Clock::time_point::max(): none
    Entry* entry;
  };

  asio::awaitable<void> sweep_loop();
  /// Closes the sockets past their deadline; returns the earliest deadline left (max if none).
  Clock::time_point sweep(Clock::time_point now);
  /// Wakes the sweeper to look again if `deadline` comes before its next sweep.
  void wake_for(Clock::time_point deadline);

  asio::steady_timer timer_;
  std::vector<Slot> slots_;  ///< one per live connection, in no order
  /// When the timer is set to wake the sweeper (max: only when a deadline is set).
  Clock::time_point next_sweep_ = Clock::time_point::max();
};

}  // namespace mrd::server
