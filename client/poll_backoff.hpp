// PollBackoff: the growing pause between two polls of a job that is not finished yet.
//
// Short jobs finish in milliseconds, so the first polls come quickly; long jobs should not cost
// the server a request every millisecond, so the pause doubles up to a ceiling.
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

namespace mrd::client {

class PollBackoff {
 public:
  explicit PollBackoff(std::chrono::milliseconds first = std::chrono::milliseconds(1),
                       std::chrono::milliseconds longest = std::chrono::milliseconds(200))
      : next_(first), longest_(longest) {}

  /// The pause to take now; each call doubles the next one, up to `longest`.
  std::chrono::milliseconds next() {
    const auto now = next_;
    next_ = std::min(next_ * 2, longest_);
    return now;
  }

 private:
  std::chrono::milliseconds next_;
  std::chrono::milliseconds longest_;
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
    std::this_thread::sleep_for(backoff.next());
  }
}

}  // namespace mrd::client
