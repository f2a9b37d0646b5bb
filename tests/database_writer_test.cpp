// The database writer's order (server/database_writer.hpp): each job's writes in the order they
// were queued, and a write whose preparation (a big input's fsync) is still running holding up
// only its own job's.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "server/database_writer.hpp"
#include "server/job_database.hpp"

namespace mrd::server {
namespace {

using namespace std::chrono_literals;

/// A database in a new temporary directory, a writer to it, and what the writes did.
class DatabaseWriterTest : public ::testing::Test {
 protected:
  DatabaseWriterTest()
      : directory_(make_directory()), database_(directory_, JobDatabase::Sync::kNormal) {}
  ~DatabaseWriterTest() override {
    writer_.stop();
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  /// A write that notes `name` when the writer's thread runs it.
  DatabaseWriter::Write noting(std::string name) {
    return [this, name = std::move(name)](JobDatabase&) {
      std::lock_guard lock(mutex_);
      written_.push_back(name);
    };
  }
  /// An outcome that notes `name` and the error, on the network thread (this one, in run_until).
  DatabaseWriter::Done answering(std::string name) {
    return [this, name = std::move(name)](const std::string& error) {
      answered_.push_back(error.empty() ? name : name + ": " + error);
    };
  }
  std::vector<std::string> written() {
    std::lock_guard lock(mutex_);
    return written_;
  }
  /// Runs the outcomes posted to the io_context until `count` have been answered (at most 20 s).
  void run_until_answered(std::size_t count) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (answered_.size() < count && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(10ms);
    }
    ASSERT_EQ(answered_.size(), count);
  }

  std::string directory_;
  asio::io_context io_;
  JobDatabase database_;
  DatabaseWriter writer_{database_, io_};
  std::vector<std::string> answered_;  ///< on this thread only

 private:
  static std::string make_directory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "mrd-writer-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    return pattern;
  }
  std::mutex mutex_;
  std::vector<std::string> written_;  ///< guarded by mutex_
};

TEST_F(DatabaseWriterTest, AWriteBeingPreparedHoldsUpOnlyItsOwnJob) {
  std::promise<void> release;
  auto released = release.get_future().share();
  writer_.enqueue_prepared(
      1, [released] { released.wait(); }, noting("1 submitted"), answering("1 submitted"));
  writer_.enqueue(1, noting("1 cancelled"), answering("1 cancelled"));
  writer_.enqueue(2, noting("2 submitted"), answering("2 submitted"));
  writer_.enqueue(3, noting("3 submitted"), answering("3 submitted"));

  run_until_answered(2);
  EXPECT_EQ(answered_, (std::vector<std::string>{"2 submitted", "3 submitted"}));
  EXPECT_EQ(written(), (std::vector<std::string>{"2 submitted", "3 submitted"}));

  release.set_value();
  run_until_answered(4);
  EXPECT_EQ(written(),
            (std::vector<std::string>{"2 submitted", "3 submitted", "1 submitted", "1 cancelled"}));
}

TEST_F(DatabaseWriterTest, AFailedPreparationFailsItsWriteWithTheReason) {
  writer_.enqueue_prepared(
      7, [] { throw std::runtime_error("fdatasync: Input/output error"); }, noting("7 submitted"),
      answering("7 submitted"));
  writer_.enqueue(7, noting("7 cancelled"), answering("7 cancelled"));
  run_until_answered(2);
  EXPECT_EQ(answered_, (std::vector<std::string>{"7 submitted: fdatasync: Input/output error",
                                                 "7 cancelled"}));
  EXPECT_EQ(written(), std::vector<std::string>{"7 cancelled"});
}

TEST_F(DatabaseWriterTest, StoppingWritesWhatIsStillBeingPrepared) {
  std::promise<void> started;
  std::promise<void> release;
  auto released = release.get_future().share();
  writer_.enqueue_prepared(
      4,
      [&started, released] {
        started.set_value();
        released.wait();
      },
      noting("4 submitted"));
  writer_.enqueue(4, noting("4 finished"));
  started.get_future().wait();
  // stop() waits for the preparation, then writes both.
  auto stopping = std::async(std::launch::async, [this] { writer_.stop(); });
  release.set_value();
  stopping.get();
  EXPECT_EQ(written(), (std::vector<std::string>{"4 submitted", "4 finished"}));
}

}  // namespace
}  // namespace mrd::server
