// ReplyQueue: the replies a connection has yet to write, in order.
//
// Small replies are copied into owned strings. A finished job's result is not: the queue holds a
// reference to the bytes the job table keeps (a string, or the shared memory a matrix product's
// workers wrote), so a hundred FETCHes of a 50 MB result cost no more memory than one, and a
// client that never reads holds at most what it was already sent.
#pragma once

#include <asio/buffer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/result_bytes.hpp"

namespace mrd::server {

/// A reply not known yet: it waits for the database to commit what the request changed. The
/// connection writes nothing past it and answers nothing after it until it is resolved, so the
/// replies stay in the order of the requests.
struct DeferredReply {
  std::string bytes;      ///< the reply frame, once resolved
  bool resolved = false;  ///< true once `bytes` is the reply
  /// Set by the connection while it waits; called (on the network thread) by resolve().
  std::function<void()> on_resolved;

  void resolve(std::string reply) {
    bytes = std::move(reply);
    resolved = true;
    if (on_resolved) on_resolved();
  }
};

class ReplyQueue {
 public:
  /// The string to append small reply bytes to (the end of the queue).
  std::string& bytes() {
    if (segments_.empty() || segments_.back().shared) segments_.emplace_back();
    return segments_.back().owned;
  }

  /// Appends bytes owned by someone else, without copying them.
  void share(std::shared_ptr<const ResultBytes> body) {
    if (body && !body->bytes().empty()) segments_.push_back({{}, std::move(body)});
  }

  bool empty() const {
    for (const auto& s : segments_) {
      if (!s.owned.empty() || s.shared) return false;
    }
    return true;
  }

  /// Bytes copied into the queue (shared bodies do not count: they cost nothing extra).
  std::size_t owned_bytes() const {
    std::size_t total = 0;
    for (const auto& s : segments_)
      total += s.owned.size();
    return total;
  }

  /// Pieces queued: each shared result is one, and so is each run of small replies between them.
  std::size_t pieces() const { return segments_.size(); }

  /// The queue as a buffer sequence for one gathered write; valid until clear().
  std::vector<asio::const_buffer> buffers() const {
    std::vector<asio::const_buffer> out;
    for (const auto& s : segments_) {
      out.push_back(s.shared ? asio::buffer(s.shared->bytes().data(), s.shared->bytes().size())
                             : asio::buffer(s.owned));
    }
    return out;
  }

  /// A place for a reply that comes later; the request that made it is answered once it is
  /// resolved (at most one at a time: the connection answers nothing more until then).
  std::shared_ptr<DeferredReply> defer() {
    deferred_ = std::make_shared<DeferredReply>();
    return deferred_;
  }

  /// True while a deferred reply is not resolved.
  bool waiting() const { return deferred_ && !deferred_->resolved; }

  /// Appends the deferred reply, once resolved, in its place: the end of the queue, since nothing
  /// was answered after it.
  void take_resolved() {
    if (!deferred_ || !deferred_->resolved) return;
    bytes() += deferred_->bytes;
    deferred_.reset();
  }

  /// The deferred reply being waited for, if any.
  const std::shared_ptr<DeferredReply>& deferred() const { return deferred_; }

  /// Drops the deferred reply (the request turned out to need no wait).
  void forget_deferred() { deferred_.reset(); }

  /// Forgets everything (after it was written), releasing shared bodies.
  void clear() {
    segments_.clear();
    segments_.shrink_to_fit();
  }

 private:
  struct Segment {
    std::string owned;
    std::shared_ptr<const ResultBytes> shared;
  };
  std::vector<Segment> segments_;
  std::shared_ptr<DeferredReply> deferred_;  ///< shared with the write it waits for
};

}  // namespace mrd::server
