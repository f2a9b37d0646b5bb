// LatencyHistogram: durations counted in fixed buckets, for STATS's details (and, through
// mrd-web, Prometheus): how long tasks take, how long jobs take.
//
// One thread adds, any thread reads: every count is a relaxed atomic, so adding costs a few
// nanoseconds and never waits. A reader may see a duration in the sum a moment before its
// bucket; the figures are for watching trends, not for accounting.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

#include "protocol/messages.hpp"

namespace mrd::server {

class LatencyHistogram {
 public:
  /// The buckets' upper bounds, in microseconds (0.1 ms to a minute); one more bucket holds
  /// everything above.
  static constexpr std::array<std::uint64_t, 16> kUpperBoundsUs{
      100,   250,    500,    1000,   2500,    5000,    10000,    25000,
      50000, 100000, 250000, 500000, 1000000, 2500000, 10000000, 60000000};

  void add(std::chrono::steady_clock::duration took) {
    const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
    const auto bucket = static_cast<std::size_t>(
        std::lower_bound(kUpperBoundsUs.begin(), kUpperBoundsUs.end(), us) -
        kUpperBoundsUs.begin());
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(us, std::memory_order_relaxed);
  }

  /// As the protocol sends it: cumulative counts, the last bucket unbounded.
  protocol::Histogram snapshot() const {
    protocol::Histogram out;
    out.buckets.reserve(counts_.size());
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      below += counts_[i].load(std::memory_order_relaxed);
      out.buckets.push_back({i < kUpperBoundsUs.size() ? kUpperBoundsUs[i]
                                                       : std::numeric_limits<std::uint64_t>::max(),
                             below});
    }
    out.sum_us = sum_us_.load(std::memory_order_relaxed);
    return out;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kUpperBoundsUs.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_us_{0};
};

/// What the worker pool is doing, published by the scheduler thread for STATS.
struct PoolActivity {
  std::atomic<std::uint64_t> workers_busy{0};  ///< workers running a task now
  std::atomic<std::uint64_t> tasks_done{0};    ///< tasks whose output was taken in
  LatencyHistogram task_us;                    ///< how long those took
};

}  // namespace mrd::server
