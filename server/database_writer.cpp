#include "server/database_writer.hpp"

#include <asio/post.hpp>

#include <vector>

#include "server/log.hpp"

namespace mrd::server {

DatabaseWriter::DatabaseWriter(JobDatabase& database, asio::io_context& io)
    : database_(database), io_(io), thread_([this] { run(); }) {}

DatabaseWriter::~DatabaseWriter() {
  stop();
}

void DatabaseWriter::enqueue(Write write, Done done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(write), std::move(done)});
  }
  wake_.notify_one();
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

void DatabaseWriter::run() {
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is written
      // Everything queued meanwhile, up to a bound: one commit for all of it.
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<std::string> errors(batch.size());
    try {
      if (batch.size() == 1) {
        batch[0].write(database_);
      } else {
        database_.in_one_transaction([&] {
          for (auto& item : batch)
            item.write(database_);
        });
      }
    } catch (const std::exception& e) {
      if (batch.size() == 1) {
        errors[0] = e.what();
      } else {
        // Nothing of the batch was written: each write again on its own, so that only the one
        // that fails (a full disk, say) fails.
        for (std::size_t i = 0; i < batch.size(); ++i) {
          try {
            batch[i].write(database_);
          } catch (const std::exception& alone) {
            errors[i] = alone.what();
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
