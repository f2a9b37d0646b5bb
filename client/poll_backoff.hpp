// PollBackoff: the pause between two polls of a job that is not finished yet.
//
// Short jobs finish in milliseconds, so the first polls come quickly; long jobs should not cost
// the server a request every millisecond, so the pause doubles up to a ceiling. But a doubling
// pause alone overshoots the end by up to half the job's time: a job that ends 260 ms after its
// first poll is seen done at 455 ms. So once the job's progress has moved, the pause is also at
// most half the time its progress says is left (at its pace so far): polls come closer as the end
// nears, and the job is seen done soon after it is. A job whose progress does not move until its
// end (two map tasks that finish together, as a matrix product's do) gets no such hint, so the
// pause is also at most a sixteenth of the time waited so far: such a job is seen done at most a
// sixteenth of its time late (a 0.4 s product, 25 ms at most), for more polls (each pause about
// 1.06 times the one before, instead of 2: about 100 polls in the first second, then the ceiling
// from 3.2 s on). A FETCH costs the server some microseconds; a product seen late costs its user
// the whole wait.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "protocol/messages.hpp"

namespace mrd::client {

/// How much of a job is done, 0 to 1, from a progress report: its tasks done of all it knows of.
/// Nothing while it knows none (queued).
inline std::optional<double> fraction_done(const protocol::JobProgress& progress) {
  const double total = double(progress.map_total) + double(progress.reduce_total);
  if (total == 0) return std::nullopt;
  return (double(progress.map_done) + double(progress.reduce_done)) / total;
}

class PollBackoff {
 public:
  using Clock = std::chrono::steady_clock;

  explicit PollBackoff(std::chrono::milliseconds first = std::chrono::milliseconds(1),
                       std::chrono::milliseconds longest = std::chrono::milliseconds(200))
      : first_(first), next_(first), longest_(longest) {}

  /// The pause to take now; each call doubles the next one, up to `longest`.
  std::chrono::milliseconds next() {
    const auto now = next_;
    next_ = std::min(next_ * 2, longest_);
    return now;
  }

  /// The most a pause may be, as a share of the time waited since the first call: 1/16.
  static constexpr int kShareOfTimeWaited = 16;

  /// The pause to take now for a job `done` of the way through (fraction_done) at `now`: the
  /// doubling pause, or less once the progress since the first report says the end is near; at
  /// most a sixteenth of the time since the first call, and never less than the first pause.
  std::chrono::milliseconds next(std::optional<double> done, Clock::time_point now) {
    if (!first_call_) first_call_ = now;
    const auto share_waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - *first_call_) /
        kShareOfTimeWaited;
    return std::max(first_, std::min(from_progress(done, now), share_waited));
  }

 private:
  struct Report {
    Clock::time_point at;
    double done = 0;
  };

  /// The doubling pause, or half the time the progress says is left if that is shorter.
  std::chrono::milliseconds from_progress(std::optional<double> done, Clock::time_point now) {
    const auto doubling = next();
    if (!done) return doubling;
    if (!first_report_) {
      first_report_ = Report{now, *done};
      return doubling;
    }
    const double gained = *done - first_report_->done;
    const auto elapsed = std::chrono::duration<double, std::milli>(now - first_report_->at);
    if (gained <= 0 || elapsed.count() <= 0) return doubling;
    const auto left = elapsed * ((1.0 - std::min(*done, 1.0)) / gained);
    const auto half_left = std::chrono::milliseconds(static_cast<long long>(left.count() / 2));
    return std::clamp(half_left, first_, doubling);
  }

  std::chrono::milliseconds first_;
  std::chrono::milliseconds next_;
  std::chrono::milliseconds longest_;
  std::optional<Report> first_report_;           ///< the first progress report that knew its tasks
  std::optional<Clock::time_point> first_call_;  ///< when polling began
};

/// Calls `fetch()` until what it returns is finished(), pausing as PollBackoff says between two
/// calls and telling `on_progress` (if set) each unfinished one's progress. Shared by the client's
/// single connection and its failover between nodes.
template <class Fetch, class OnProgress>
auto poll_until_finished(Fetch&& fetch, const OnProgress& on_progress) {
  PollBackoff backoff;
  for (;;) {
    auto outcome = fetch();
    if (outcome.finished()) return outcome;
    if (on_progress) on_progress(*outcome.progress);
    std::this_thread::sleep_for(
        backoff.next(fraction_done(*outcome.progress), PollBackoff::Clock::now()));
  }
}

}  // namespace mrd::client
