#include "server/database_writer.hpp"

#include <asio/post.hpp>

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
    Item item;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is written
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    std::string error;
    try {
      item.write(database_);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (item.done) {
      asio::post(io_, [done = std::move(item.done), error = std::move(error)] { done(error); });
    } else if (!error.empty()) {
      log(Level::kError, "cannot write to the data directory: ", error);
    }
  }
}

}  // namespace mrd::server
