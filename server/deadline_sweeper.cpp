#include "server/deadline_sweeper.hpp"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>

#include "server/log.hpp"

namespace mrd::server {

DeadlineSweeper::Entry::Entry(DeadlineSweeper& sweeper, ConnectionSocket& socket)
    : sweeper_(&sweeper),
      socket_(socket),
      index_(static_cast<std::uint32_t>(sweeper.slots_.size())) {
  // Grows the vector now and then (it keeps its largest size), never when a deadline moves.
  sweeper.slots_.push_back({Clock::time_point::max(), this});
}

DeadlineSweeper::Entry::~Entry() {
  if (!sweeper_) return;
  auto& slots = sweeper_->slots_;
  // The last slot takes this one's place: removal costs no search and leaves no hole.
  slots[index_] = slots.back();
  slots[index_].entry->index_ = index_;
  slots.pop_back();
}

void DeadlineSweeper::Entry::expire_at(Clock::time_point deadline) {
  if (!sweeper_) return;
  sweeper_->slots_[index_].deadline = deadline;
  sweeper_->wake_for(deadline);
}

DeadlineSweeper::DeadlineSweeper(asio::io_context& io) : timer_(io) {}

DeadlineSweeper::~DeadlineSweeper() {
  for (auto& slot : slots_)
    slot.entry->sweeper_ = nullptr;
}

void DeadlineSweeper::start() {
  asio::co_spawn(timer_.get_executor(), sweep_loop(), [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log(Level::kError, "connection deadlines are no longer enforced: ", e.what());
    }
  });
}

asio::awaitable<void> DeadlineSweeper::sweep_loop() {
  // The timer is set for the earliest deadline, but never sooner than kMinSweepInterval after
  // the last sweep: most deadlines only move later (each request pushes its connection's idle
  // deadline on), so the sweeper sleeps until one can actually have passed, and a server with
  // no connection never wakes. A deadline set earlier than the timer wakes it (wake_for).
  auto last_sweep = Clock::now();
  for (;;) {
    timer_.expires_at(std::max(next_sweep_, last_sweep + kMinSweepInterval));
    co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    const auto now = Clock::now();
    if (now < next_sweep_) continue;  // woken for an earlier deadline: wait for that one
    last_sweep = now;
    next_sweep_ = sweep(now);
  }
}

DeadlineSweeper::Clock::time_point DeadlineSweeper::sweep(Clock::time_point now) {
  auto earliest = Clock::time_point::max();
  for (auto& slot : slots_) {
    if (slot.deadline > now) {
      earliest = std::min(earliest, slot.deadline);
      continue;
    }
    // Closing (not only cancelling) frees the descriptor now, and fails whatever the connection
    // does next, even an operation whose completion was already on its way.
    slot.deadline = Clock::time_point::max();
    slot.entry->expired_ = true;
    asio::error_code ignored;
    slot.entry->socket_.close(ignored);
  }
  return earliest;
}

void DeadlineSweeper::wake_for(Clock::time_point deadline) {
  if (deadline >= next_sweep_) return;
  next_sweep_ = deadline;
  timer_.cancel();
}

static_assert(sizeof(DeadlineSweeper::Entry) <= 24);

}  // namespace mrd::server
