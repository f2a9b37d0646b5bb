// PollBackoff: the growing pause between two polls of a job that is not finished yet.
//
// Short jobs finish in milliseconds, so the first polls come quickly; long jobs should not cost
// the server a request every millisecond, so the pause doubles up to a ceiling.
#pragma once

#include <algorithm>
#include <chrono>

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

}  // namespace mrd::client
