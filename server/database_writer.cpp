#include "server/database_writer.hpp"

#include <asio/post.hpp>

#include <algorithm>
#include <exception>
#include <unordered_set>
#include <vector>

#include "server/log.hpp"

namespace mrd::server {

DatabaseWriter::DatabaseWriter(JobDatabase& database, asio::io_context& io)
    : database_(database), io_(io), thread_([this] { run(); }) {}

DatabaseWriter::~DatabaseWriter() {
  stop();
}

void DatabaseWriter::enqueue(std::uint32_t job, Write write, Done done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(Item{job, std::move(write), std::move(done)});
  }
  wake_.notify_one();
}

void DatabaseWriter::enqueue_prepared(std::uint32_t job, Prepare prepare, Write write, Done done) {
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mutex_);
    ticket = next_ticket_++;
    Item item{job, std::move(write), std::move(done)};
    item.ready = false;
    item.ticket = ticket;
    queue_.push_back(std::move(item));
  }
  preparer_.post([this, ticket, prepare = std::move(prepare)] {
    std::string error;
    try {
      prepare();
    } catch (const std::exception& e) {
      error = e.what();
    }
    {
      std::lock_guard lock(mutex_);
      const auto it = std::find_if(queue_.begin(), queue_.end(),
                                   [ticket](const Item& item) { return item.ticket == ticket; });
      it->ready = true;  // still queued: nothing takes an item that is not ready
      it->error = std::move(error);
    }
    wake_.notify_one();
  });
}

void DatabaseWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool DatabaseWriter::may_take(const Item& item, std::unordered_set<std::uint32_t>& waiting) {
  if (item.ready && !waiting.count(item.job)) return true;
  waiting.insert(item.job);  // its job's later writes wait for it
  return false;
}

bool DatabaseWriter::any_ready() const {
  std::unordered_set<std::uint32_t> waiting;
  return std::any_of(queue_.begin(), queue_.end(),
                     [&waiting](const Item& item) { return may_take(item, waiting); });
}

void DatabaseWriter::take_ready(std::vector<Item>& batch) {
  std::unordered_set<std::uint32_t> waiting;
  for (auto it = queue_.begin(); it != queue_.end() && batch.size() < kMaxBatch;) {
    if (!may_take(*it, waiting)) {
      ++it;
      continue;
    }
    batch.push_back(std::move(*it));
    it = queue_.erase(it);
  }
}

void DatabaseWriter::run() {
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return any_ready() || (stopping_ && queue_.empty()); });
      if (queue_.empty()) return;  // stopping, and everything queued is written
      // Everything that may go, queued meanwhile, up to a bound: one commit for all of it.
      take_ready(batch);
    }
    // A write whose preparation failed is not run: it fails with that reason (its `error`).
    std::vector<Item*> to_write;
    for (auto& item : batch)
      if (item.error.empty()) to_write.push_back(&item);
    try {
      if (to_write.size() == 1) {
        to_write[0]->write(database_);
      } else if (!to_write.empty()) {
        database_.in_one_transaction([&] {
          for (auto* item : to_write)
            item->write(database_);
        });
      }
    } catch (const std::exception& e) {
      if (to_write.size() == 1) {
        to_write[0]->error = e.what();
      } else {
        // Nothing of the batch was written: each write again on its own, so that only the one
        // that fails (a full disk, say) fails.
        for (auto* item : to_write) {
          try {
            item->write(database_);
          } catch (const std::exception& alone) {
            item->error = alone.what();
          }
        }
      }
    }
    for (auto& item : batch) {
      if (item.done) {
        asio::post(io_,
                   [done = std::move(item.done), error = std::move(item.error)] { done(error); });
      } else if (!item.error.empty()) {
        log(Level::kError, "cannot write to the data directory: ", item.error);
      }
    }
  }
}

}  // namespace mrd::server
