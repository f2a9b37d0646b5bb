#include "server/early_start.hpp"

#include <algorithm>

#include "server/scheduler.hpp"

namespace mrd::server {
namespace {
/// The scheduler is woken to cut chunks at most once per this many arrived bytes (the smallest
/// chunk it cuts by itself), and when the last byte is in.
constexpr std::uint64_t kWakeEveryBytes = 64 << 10;
}  // namespace

EarlyStart::EarlyStart(std::shared_ptr<ArrivingInput> input, Scheduler& scheduler)
    : input_(std::move(input)), scheduler_(scheduler) {
  ++live_;
  scheduler_.start_early(input_);
}

EarlyStart::~EarlyStart() {
  --live_;
  if (!input_) return;  // released: it became a job
  input_->placeholder->cancelled = true;
  scheduler_.notify_cancelled();
}

void EarlyStart::arrived(std::uint64_t bytes) {
  input_->arrived.store(bytes, std::memory_order_release);
  if (bytes - announced_ < kWakeEveryBytes && bytes != input_->body_bytes) return;
  announced_ = bytes;
  scheduler_.wake_for_arrival();
}

std::shared_ptr<ArrivingInput> EarlyStart::release() {
  return std::move(input_);
}

ArrivalCutter::ArrivalCutter(const ArrivingInput& input, std::uint64_t chunk_bytes,
                             engine::Overlap overlap)
    : body_(input.body()),
      documents_(input.input_offset, input.body_bytes),
      splitter_(chunk_bytes, overlap) {}

bool ArrivalCutter::cut(std::uint64_t arrived, std::vector<engine::InputView>& out) {
  if (done_) return true;
  if (!documents_.read(body_.substr(0, arrived), known_)) return false;
  const auto view = [&](protocol::ByteRange range) {
    return body_.substr(range.offset, range.size);
  };
  for (;;) {
    if (started_) {
      // The document being received: its text so far.
      const auto& text = known_[next_ - 1].text;
      const auto in = std::min(arrived - std::min(arrived, text.offset), text.size);
      splitter_.text_arrived(in, out);
      if (in < text.size) return true;
    }
    if (next_ == known_.size()) break;
    const auto& document = known_[next_++];
    splitter_.start_document({view(document.name), view(document.text)}, out);
    started_ = true;
  }
  if (documents_.complete() && arrived == body_.size()) {
    splitter_.finish(out);
    done_ = true;
  }
  return true;
}

}  // namespace mrd::server
