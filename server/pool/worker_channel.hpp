// WorkerChannel: the scheduler's end of one worker's socketpair, read and written without ever
// blocking.
//
// The scheduler thread serves every worker from one poll() loop, so no worker may make it wait: a
// worker that stops reading (SIGSTOP, a slow machine) or answers slowly stalls only its own task.
// A message goes out in as many writes as the socket takes; an answer comes in as its bytes
// arrive, its length checked against the limit and charged to the memory budget before the
// buffer grows, and the buffer grows only with bytes that actually arrived.
#pragma once

#include <cstdint>
#include <string>

#include "server/memory_budget.hpp"
#include "server/pool/task_message.hpp"

namespace mrd::server {

class WorkerChannel {
 public:
  /// Takes `fd` (made non-blocking here); `budget` (may be null) pays for answers being received.
  WorkerChannel(int fd, MemoryBudget* budget);
  ~WorkerChannel();
  WorkerChannel(const WorkerChannel&) = delete;
  WorkerChannel& operator=(const WorkerChannel&) = delete;

  int fd() const { return fd_; }

  /// Starts sending a message; the bytes go out with flush(). Only one message at a time.
  /// `charge` pays for the encoded body while it is held. A copy of `attached`, then one of
  /// `also_attached` (each if >= 0) go with the message's first byte, so the caller may close
  /// its own at once.
  void start_send(TaskMessageType type, std::string body, MemoryCharge charge, int attached = -1,
                  int also_attached = -1);

  /// True while part of the outgoing message has not been written yet.
  bool sending() const { return sent_ < outgoing_.size(); }

  /// Writes what the socket takes now. False if the worker is gone.
  bool flush();

  enum class Read {
    kMore,        ///< nothing complete yet
    kMessage,     ///< a whole message: take it with take_message()
    kClosed,      ///< EOF or a read error: the worker is gone
    kBroken,      ///< the worker broke the framing (unknown type, oversized length)
    kOverBudget,  ///< the answer does not fit in the server's memory budget
  };

  /// Reads what has arrived, up to the end of one message.
  Read read_available();

  /// The message read_available() completed, and the charge that pays for its body. (Answers
  /// carry no descriptors: a worker has none to give.)
  TaskMessage take_message(MemoryCharge& charge);

  /// The declared length of the message being read (for error messages), 0 before its header.
  std::uint64_t incoming_length() const { return length_; }

 private:
  int fd_;
  MemoryBudget* budget_;
  std::string outgoing_;  ///< header and body of the message being sent
  std::size_t sent_ = 0;  ///< bytes of outgoing_ already written
  MemoryCharge outgoing_charge_;
  OwnedFd attached_;              ///< to send with the first byte of outgoing_, then closed
  OwnedFd also_attached_;         ///< likewise, after attached_
  unsigned char header_[9];       ///< the incoming header, as it arrives
  std::size_t header_bytes_ = 0;  ///< bytes of header_ received
  std::uint64_t length_ = 0;      ///< declared body length, once the header is complete
  TaskMessage incoming_;          ///< the message being read
  MemoryCharge incoming_charge_;  ///< pays for incoming_.body's capacity
};

}  // namespace mrd::server
