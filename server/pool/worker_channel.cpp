#include "server/pool/worker_channel.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace mrd::server {
namespace {
/// Most bytes one read takes from a worker: other workers get their turn in between.
constexpr std::size_t kReadStep = 4 << 20;
}  // namespace

WorkerChannel::WorkerChannel(int fd, MemoryBudget* budget) : fd_(fd), budget_(budget) {
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

WorkerChannel::~WorkerChannel() {
  if (fd_ >= 0) ::close(fd_);
}

void WorkerChannel::start_send(TaskMessageType type, std::string body, MemoryCharge charge,
                               int attached, int also_attached) {
  // Duplicates: the caller's descriptors may be closed (their job finished) before the first
  // byte goes out, and their numbers reused for other files.
  attached_ = OwnedFd(attached >= 0 ? ::fcntl(attached, F_DUPFD_CLOEXEC, 0) : -1);
  also_attached_ = OwnedFd(also_attached >= 0 ? ::fcntl(also_attached, F_DUPFD_CLOEXEC, 0) : -1);
  if ((attached >= 0 && !attached_) || (also_attached >= 0 && !also_attached_)) {
    attached_.reset();
    also_attached_.reset();
    throw std::system_error(errno, std::generic_category(), "duplicating a task's descriptor");
  }
  outgoing_.clear();
  outgoing_.reserve(kTaskHeaderBytes + body.size());
  append_task_header(outgoing_, type, body.size());
  outgoing_ += body;
  body = {};  // one copy held, not two
  sent_ = 0;
  outgoing_charge_ = std::move(charge);
}

bool WorkerChannel::flush() {
  while (sending()) {
    int fds[kMaxAttachedFds];
    std::size_t count = 0;
    for (const auto* each : {&attached_, &also_attached_}) {
      if (*each) fds[count++] = each->get();
    }
    const auto n = count > 0 ? send_with_fds(fd_, outgoing_.data() + sent_,
                                             outgoing_.size() - sent_, fds, count)
                             : ::write(fd_, outgoing_.data() + sent_, outgoing_.size() - sent_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // the socket is full
    if (n <= 0) return false;
    attached_.reset();  // they went with the bytes just written
    also_attached_.reset();
    sent_ += static_cast<std::size_t>(n);
  }
  // All written: the worker has it (in the socket), so the copy here can go.
  outgoing_ = {};
  sent_ = 0;
  outgoing_charge_.reset();
  return true;
}

WorkerChannel::Read WorkerChannel::read_available() {
  while (header_bytes_ < kTaskHeaderBytes) {
    const auto n = ::read(fd_, header_ + header_bytes_, kTaskHeaderBytes - header_bytes_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Read::kMore;
    if (n <= 0) return Read::kClosed;
    header_bytes_ += static_cast<std::size_t>(n);
    if (header_bytes_ == kTaskHeaderBytes) {
      const auto parsed = parse_task_header(header_);
      if (!parsed) return Read::kBroken;
      incoming_ = TaskMessage{parsed->first, {}, {}};
      length_ = parsed->second;
      incoming_charge_ =
          budget_ ? MemoryCharge::try_take(*budget_, 0) : MemoryCharge{};  // grows below
    }
  }
  while (incoming_.body.size() < length_) {
    // Grow with what arrives (at most doubling), each step paid for before it is allocated.
    const std::size_t have = incoming_.body.size();
    const std::size_t step =
        std::min<std::uint64_t>(length_ - have, std::clamp<std::size_t>(have, 64 << 10, kReadStep));
    if (incoming_.body.capacity() < have + step) {
      const auto capacity = std::max(have + step, std::min<std::size_t>(length_, 2 * have));
      if (budget_ && !incoming_charge_.resize(capacity)) return Read::kOverBudget;
      incoming_.body.reserve(capacity);
    }
    incoming_.body.resize(have + step);
    const auto n = ::read(fd_, incoming_.body.data() + have, step);
    if (n < 0 && errno == EINTR) {
      incoming_.body.resize(have);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      incoming_.body.resize(have);
      return Read::kMore;
    }
    if (n <= 0) return Read::kClosed;
    incoming_.body.resize(have + static_cast<std::size_t>(n));
    if (incoming_.body.size() < length_ && static_cast<std::size_t>(n) < step) {
      return Read::kMore;  // drained for now: poll again, and let other workers have a turn
    }
  }
  return Read::kMessage;
}

TaskMessage WorkerChannel::take_message(MemoryCharge& charge) {
  header_bytes_ = 0;
  length_ = 0;
  charge = std::move(incoming_charge_);
  return std::exchange(incoming_, TaskMessage{});
}

}  // namespace mrd::server
