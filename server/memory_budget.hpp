// MemoryBudget: the bytes the server process may hold for its clients, counted before they are
// allocated (mrd --max-memory-mib).
//
// Everything a client can make the server hold is charged here first: bytes of requests still
// arriving, the inputs of queued and running jobs, task messages and map outputs in flight, and
// finished results (including results that replies being written still hold). A charge that does
// not fit is refused, and the caller answers with a documented status instead of allocating, so
// the server never grows past its budget because of what clients send.
//
// Thread-safe: the network thread and the scheduler thread charge and release the same budget.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>

namespace mrd::server {

/// Bytes as whole mebibytes, rounded up: how messages about the budget speak of sizes.
constexpr std::uint64_t mebibytes(std::uint64_t bytes) {
  return (bytes + (1 << 20) - 1) >> 20;
}

class MemoryBudget {
 public:
  explicit MemoryBudget(std::uint64_t limit_bytes) : limit_(limit_bytes) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  /// Takes `bytes` from the budget if they fit; false (and nothing taken) if they do not.
  bool try_charge(std::uint64_t bytes) {
    auto used = used_.load(std::memory_order_relaxed);
    do {
      if (bytes > limit_ || used > limit_ - bytes) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
    return true;
  }

  /// Takes `bytes` whether or not they fit: for memory that already exists and must be counted
  /// (a result that was computed). May leave the budget over its limit until releases catch up.
  void force_charge(std::uint64_t bytes) { used_.fetch_add(bytes, std::memory_order_relaxed); }

  /// Gives back bytes taken by try_charge or force_charge.
  void release(std::uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

  std::uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  std::uint64_t limit() const { return limit_; }

 private:
  const std::uint64_t limit_;
  std::atomic<std::uint64_t> used_{0};
};

/// Bytes taken from a budget, given back when this is destroyed: a charge can move with the
/// memory it pays for (from the connection to the scheduler, for example) and is never leaked.
class MemoryCharge {
 public:
  MemoryCharge() = default;
  ~MemoryCharge() { reset(); }
  MemoryCharge(MemoryCharge&& other) noexcept
      : budget_(std::exchange(other.budget_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  MemoryCharge& operator=(MemoryCharge&& other) noexcept {
    if (this != &other) {
      reset();
      budget_ = std::exchange(other.budget_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  MemoryCharge(const MemoryCharge&) = delete;
  MemoryCharge& operator=(const MemoryCharge&) = delete;

  /// A charge of `bytes` on `budget`, or an empty charge (falsy) if they do not fit.
  static MemoryCharge try_take(MemoryBudget& budget, std::uint64_t bytes) {
    MemoryCharge charge;
    if (budget.try_charge(bytes)) {
      charge.budget_ = &budget;
      charge.bytes_ = bytes;
    }
    return charge;
  }

  /// A charge of `bytes` on `budget` even past its limit (memory that already exists).
  static MemoryCharge force_take(MemoryBudget& budget, std::uint64_t bytes) {
    budget.force_charge(bytes);
    MemoryCharge charge;
    charge.budget_ = &budget;
    charge.bytes_ = bytes;
    return charge;
  }

  /// Grows (or shrinks) the charge to `bytes`; false, unchanged, if the growth does not fit.
  /// An empty charge needs a budget first: use try_take.
  bool resize(std::uint64_t bytes) {
    if (!budget_) return bytes == 0;
    if (bytes > bytes_) {
      if (!budget_->try_charge(bytes - bytes_)) return false;
    } else {
      budget_->release(bytes_ - bytes);
    }
    bytes_ = bytes;
    return true;
  }

  /// Takes over `other`'s bytes (on the same budget, or `other` empty), leaving it empty: one
  /// charge for many pieces of memory that are freed together.
  void absorb(MemoryCharge&& other) {
    if (!other.budget_) return;
    if (!budget_) budget_ = other.budget_;
    bytes_ += std::exchange(other.bytes_, 0);
    other.budget_ = nullptr;
  }

  /// Moves up to `bytes` of this charge into a charge of their own: a charge for memory that is
  /// then freed in parts.
  MemoryCharge split(std::uint64_t bytes) {
    MemoryCharge part;
    if (!budget_) return part;
    part.budget_ = budget_;
    part.bytes_ = std::min(bytes, bytes_);
    bytes_ -= part.bytes_;
    return part;
  }

  /// Gives every byte back now.
  void reset() {
    if (budget_) budget_->release(bytes_);
    budget_ = nullptr;
    bytes_ = 0;
  }

  std::uint64_t bytes() const { return bytes_; }
  explicit operator bool() const { return budget_ != nullptr; }

 private:
  MemoryBudget* budget_ = nullptr;
  std::uint64_t bytes_ = 0;
};

}  // namespace mrd::server
