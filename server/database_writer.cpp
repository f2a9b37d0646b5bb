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

bool DatabaseWriter::any_ready() const {
  // The first ready write whose job has no earlier write still waiting.
  std::unordered_set<std::uint32_t> waiting;
  for (const auto& item : queue_) {
    if (!item.ready) {
      waiting.insert(item.job);
    } else if (!waiting.count(item.job)) {
      return true;
    }
  }
  return false;
}

void DatabaseWriter::take_ready(std::vector<Item>& batch) {
  std::unordered_set<std::uint32_t> waiting;  // jobs with a write still being prepared
  for (auto it = queue_.begin(); it != queue_.end() && batch.size() < kMaxBatch;) {
    if (!it->ready || waiting.count(it->job)) {
      waiting.insert(it->job);
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
    // A write whose preparation failed is not run: it fails with that reason.
    std::vector<std::string> errors(batch.size());
    std::vector<Item*> to_write;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      errors[i] = std::move(batch[i].error);
      if (errors[i].empty()) to_write.push_back(&batch[i]);
    }
    const auto error_of = [&](const Item* item) -> std::string& {
      return errors[static_cast<std::size_t>(item - batch.data())];
    };
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
        error_of(to_write[0]) = e.what();
      } else {
        // Nothing of the batch was written: each write again on its own, so that only the one
        // that fails (a full disk, say) fails.
        for (auto* item : to_write) {
          try {
            item->write(database_);
          } catch (const std::exception& alone) {
            error_of(item) = alone.what();
          }
        }
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) {
        asio::post(
            io_, [done = std::move(batch[i].done), error = std::move(errors[i])] { done(error); });
      } else if (!errors[i].empty()) {
        log(Level::kError, "cannot write to the data directory: ", errors[i]);
      }
    }
  }
}

}  // namespace mrd::server
