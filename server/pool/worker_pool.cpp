#include "server/pool/worker_pool.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "server/log.hpp"

namespace mrd::server {
namespace {
constexpr std::chrono::milliseconds kFirstRetry{100};
constexpr std::chrono::milliseconds kLongestRetry{5000};
}  // namespace

WorkerPool::WorkerPool(PoolConfig config) : config_(std::move(config)) {
  slots_.resize(std::max(config_.workers, 1u));
  for (auto& slot : slots_) {
    slot.process = WorkerProcess::spawn(config_.executable, config_.plugins, config_.environment,
                                        config_.budget);
  }
}

void WorkerPool::start(unsigned index) {
  auto& slot = slots_[index];
  try {
    slot.process = WorkerProcess::spawn(config_.executable, config_.plugins, config_.environment,
                                        config_.budget);
    slot.backoff = std::chrono::milliseconds(0);
  } catch (const std::exception& e) {
    // Keep serving with one worker fewer; jobs wait for a free slot, none is lost.
    slot.backoff = std::clamp(slot.backoff * 2, kFirstRetry, kLongestRetry);
    slot.retry_at = Clock::now() + slot.backoff;
    log(Level::kError, e.what(), "; trying again in ", slot.backoff.count(), " ms");
  }
}

void WorkerPool::send(unsigned index, std::uint32_t, TaskMessageType type, std::string body,
                      MemoryCharge charge, int attached, int result) {
  auto& slot = slots_[index];
  slot.process->channel().start_send(type, std::move(body), std::move(charge), attached, result);
  slot.busy = true;
  // Most tasks fit in the socket buffer at once; the rest goes out as the worker reads.
  if (!slot.process->channel().flush()) {
    // Reported by the next wait(): the socket says EOF or error there too.
  }
}

std::string WorkerPool::lose(unsigned index) {
  auto& slot = slots_[index];
  const auto pid = slot.process ? slot.process->pid() : 0;
  const auto how = slot.process ? slot.process->reap() : std::string("not running");
  slot.process.reset();
  slot.busy = false;
  ++restarts_;
  log(Level::kDebug, "worker ", pid, " ", how, "; starting a replacement");
  start(index);
  return how;
}

std::string WorkerPool::replace(unsigned index) {
  return lose(index);
}

bool WorkerPool::retry_pending_starts() {
  const auto now = Clock::now();
  bool started = false;
  for (unsigned i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].process && slots_[i].retry_at <= now) {
      start(i);
      started = started || slots_[i].process != nullptr;
    }
  }
  return started;
}

std::vector<PoolEvent> WorkerPool::wait(int wake_fd, std::optional<Clock::time_point> until) {
  // A worker that just started is idle: return at once so that it gets a task.
  if (retry_pending_starts()) return {};
  // Wake up in time for the next pending start, too.
  for (const auto& slot : slots_) {
    if (!slot.process && (!until || slot.retry_at < *until)) until = slot.retry_at;
  }
  std::vector<pollfd> fds{{wake_fd, POLLIN, 0}};
  std::vector<unsigned> slot_of;  // fds[i + 1] belongs to slot slot_of[i]
  for (unsigned i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].process) continue;
    auto& channel = slots_[i].process->channel();
    // Idle workers are watched too: one that dies between tasks is replaced at once.
    fds.push_back(
        {channel.fd(), static_cast<short>(POLLIN | (channel.sending() ? POLLOUT : 0)), 0});
    slot_of.push_back(i);
  }
  int timeout = -1;
  if (until) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - Clock::now()).count();
    timeout = static_cast<int>(std::clamp<long long>(left, 0, 60000));
  }
  std::vector<PoolEvent> events;
  if (poll(fds.data(), fds.size(), timeout) < 0) {
    if (errno == EINTR) return events;
    throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
  }
  if (fds[0].revents) {
    std::uint64_t count = 0;
    [[maybe_unused]] auto n = ::read(wake_fd, &count, sizeof count);
  }
  for (std::size_t i = 1; i < fds.size(); ++i) {
    if (!fds[i].revents) continue;
    const unsigned index = slot_of[i - 1];
    auto& slot = slots_[index];
    auto& channel = slot.process->channel();
    if ((fds[i].revents & POLLOUT) && !channel.flush()) {
      events.push_back({PoolEvent::Kind::kLost, index, {}, {}, lose(index)});
      continue;
    }
    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    const auto read = channel.read_available();
    if (read == WorkerChannel::Read::kMore) continue;
    if (read == WorkerChannel::Read::kMessage && slot.busy) {
      PoolEvent event{PoolEvent::Kind::kAnswer, index, {}, {}, {}};
      event.answer = channel.take_message(event.charge);
      slot.busy = false;
      events.push_back(std::move(event));
      continue;
    }
    if (read == WorkerChannel::Read::kOverBudget) {
      const auto length = channel.incoming_length();
      auto how = lose(index);
      events.push_back({PoolEvent::Kind::kOverBudget,
                        index,
                        {},
                        {},
                        "an answer of " + std::to_string(length) + " bytes (worker " + how + ")"});
      continue;
    }
    // EOF, broken framing, or an answer nobody asked for: this worker cannot be trusted.
    if (read != WorkerChannel::Read::kClosed) {
      log(Level::kWarn, "worker ", slot.process->pid(), " broke the message framing");
    }
    events.push_back({PoolEvent::Kind::kLost, index, {}, {}, lose(index)});
  }
  return events;
}

}  // namespace mrd::server
