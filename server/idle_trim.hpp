// IdleTrim: the allocator keeps the memory the server frees while it works, and gives it back to
// the kernel once the server has been idle for a second.
//
// A word count of 64 MiB allocates and frees tens of megabytes in the server: map outputs,
// reduce messages, its result. By default glibc hands the top of its heap back to the kernel as
// soon as 128 KiB there are free, so the next job (or the next phase of this one) faults the
// same memory in again, page by page; on a virtual machine a fresh page costs more than the bytes
// written into it. Kept, the 64 MiB word count took 4 to 10 per cent less time end to end in
// alternating runs (bench/profiling.md). Given back once nothing has run for a second, an idle
// server's resident memory still falls back after a burst of big jobs.
#pragma once

#include <chrono>
#include <optional>

namespace mrd::server {

class IdleTrim {
 public:
  using Clock = std::chrono::steady_clock;
  /// How long nothing may have run before freed memory goes back to the kernel.
  static constexpr std::chrono::seconds kIdleBefore{1};

  /// Tells the allocator to keep freed memory until trim_if_due() gives it back. Call once, at
  /// start-up, before other threads exist; not in a worker process, whose address space is
  /// capped per task and must not carry one task's freed memory into the next.
  static void keep_freed_memory();

  /// Something ran at `now`.
  void busy(Clock::time_point now) {
    last_busy_ = now;
    due_ = true;
  }

  /// When trim_if_due() has something to do, if it has.
  std::optional<Clock::time_point> deadline() const {
    if (!due_) return std::nullopt;
    return last_busy_ + kIdleBefore;
  }

  /// Gives the freed memory back if nothing has run since kIdleBefore before `now`.
  void trim_if_due(Clock::time_point now);

 private:
  Clock::time_point last_busy_{};
  bool due_ = false;  ///< something ran since the last trim
};

}  // namespace mrd::server
