// A built-in job: one mapper and reducer pair, and everything the scheduler needs to run it.
//
// Every function here is pure (bytes and values in, bytes and values out) so that it runs the same
// inside a worker process and inside a unit test. The scheduler splits the input, sends each
// chunk to a worker process to map, groups the map outputs by partition, sends each partition to
// a worker process to reduce, and assembles the result.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/messages.hpp"

namespace mrd::engine {

/// A job that cannot go on: its input is wrong for it (shapes, NaN) or its code failed. The message
/// reaches the client through FETCH.
class JobError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One mapper/reducer pair. Implementations are stateless and shared by all jobs.
class JobKind {
 public:
  virtual ~JobKind() = default;

  virtual std::string_view mapper() const = 0;
  virtual std::string_view reducer() const = 0;

  /// The JobInput alternative this job takes (its variant index).
  virtual std::size_t input_kind() const = 0;

  /// False for jobs whose reduce is the identity (matrix rows): assemble() then receives partition
  /// 0 of each map output, in chunk order, and no reduce tasks run.
  virtual bool has_reduce() const { return true; }

  /// Throws JobError if the input cannot be processed (mismatched shapes, NaN, ...).
  virtual void validate(const protocol::JobInput& input) const = 0;

  /// Splits the input into chunks of about `chunk_bytes` each (at least one chunk, even for empty
  /// input). Text is cut only between words, so no word is split across chunks.
  virtual std::vector<protocol::JobInput> split(const protocol::JobInput& input,
                                                std::uint64_t chunk_bytes) const = 0;

  /// Maps (and combines) one chunk; returns one encoded piece per partition (`partitions` >= 1),
  /// or a single piece, whatever `partitions` is, when has_reduce() is false.
  virtual std::vector<std::string> map(const protocol::JobInput& chunk,
                                       std::uint32_t partitions) const = 0;

  /// Reduces one partition from its pieces (one per map task, in chunk order); returns it encoded.
  virtual std::string reduce(const std::vector<std::string>& pieces) const = 0;

  /// Builds the result from the reduced partitions (in partition order).
  virtual protocol::JobResult assemble(std::vector<std::string> partitions) const = 0;
};

/// The built-in job (or test job) with this mapper and reducer, or nullptr.
const JobKind* find_job_kind(std::string_view mapper, std::string_view reducer);

/// Why a SUBMIT cannot be run ("unknown mapper 'x'", "mapper 'words' takes documents, not
/// numbers", ...), or an empty string when it can. Test jobs count only if `allow_test_jobs`.
std::string check_submit(const protocol::SubmitRequest& request, bool allow_test_jobs = false);

/// Every built-in pair, for --help texts and the docs.
const std::vector<const JobKind*>& all_job_kinds();

/// The fault-injecting jobs (test_jobs.cpp): word counts that crash, hang, stall or run out of
/// memory on purpose. The server accepts them only when started with --enable-test-jobs.
const std::vector<const JobKind*>& test_job_kinds();

}  // namespace mrd::engine
