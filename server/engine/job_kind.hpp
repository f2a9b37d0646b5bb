// A built-in job: one mapper and reducer pair, and everything the scheduler needs to run it.
//
// Every function here is pure (bytes and values in, bytes and values out) so that it runs the same
// inside a worker process and inside a unit test. The scheduler splits the input, sends each
// chunk to a worker process to map, groups the map outputs by partition, sends each partition to
// a worker process to reduce, and assembles the result.
//
// Inputs and chunks are views (input_view.hpp): the input's bytes live once, wherever its owner
// keeps them, and splitting only cuts views into them. Whoever calls split() keeps those bytes
// alive for as long as it uses the chunks.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/messages.hpp"
#include "server/engine/input_view.hpp"
#include "server/engine/text_split.hpp"

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

  /// The InputView (and protocol::JobInput) alternative this job takes: its variant index.
  virtual std::size_t input_kind() const = 0;

  /// False for jobs whose reduce is the identity (matrix rows): assemble() then receives partition
  /// 0 of each map output, in chunk order, and no reduce tasks run.
  virtual bool has_reduce() const { return true; }

  /// Throws JobError if the input cannot be processed (the wrong kind, mismatched shapes, NaN...).
  virtual void validate(const InputView& input) const = 0;

  /// Splits the input into chunks of about `chunk_bytes` each (at least one chunk, even for empty
  /// input). Text is cut only between words, so no word is split across chunks. Each chunk views
  /// the same bytes as `input`: texts, numbers and matrix values are never copied (a chunk of a
  /// product is a block of A's rows and the whole of B).
  virtual std::vector<InputView> split(const InputView& input, std::uint64_t chunk_bytes) const = 0;

  /// For a job whose split() is split_documents with this overlap: its chunks can be cut while
  /// its input is still arriving (DocumentSplitter), so its maps may start before the SUBMIT is
  /// complete. nullopt for any other split.
  virtual std::optional<Overlap> text_overlap() const { return std::nullopt; }

  /// Maps (and combines) one chunk; returns one encoded piece per partition (`partitions` >= 1),
  /// or a single piece, whatever `partitions` is, when has_reduce() is false.
  virtual std::vector<std::string> map(const InputView& chunk, std::uint32_t partitions) const = 0;

  /// Reduces one partition from its pieces (one per map task, in chunk order); returns it encoded.
  virtual std::string reduce(const std::vector<std::string>& pieces) const = 0;

  /// Builds the result from the reduced partitions (in partition order).
  virtual protocol::JobResult assemble(std::vector<std::string> partitions) const = 0;

  /// The result as FETCH sends it: protocol::encode(assemble(partitions)), which is what this
  /// default does. A job whose partitions already hold the result's layout overrides it to write
  /// the bytes directly, without building a JobResult (counts_job.hpp). Throws what assemble does.
  virtual std::string assemble_encoded(std::vector<std::string> partitions) const;
};

inline std::string JobKind::assemble_encoded(std::vector<std::string> partitions) const {
  return protocol::encode(assemble(std::move(partitions)));
}

/// The built-in job (or test job) with this mapper and reducer, or nullptr.
const JobKind* find_job_kind(std::string_view mapper, std::string_view reducer);

/// Why a job with this mapper, reducer and input kind (an InputView variant index) cannot be run
/// ("unknown mapper 'x'", "mapper 'words' takes documents, not numbers", ...), or an empty string
/// when it can. Test jobs count only if `allow_test_jobs`.
std::string check_submit(std::string_view mapper, std::string_view reducer, std::size_t input_kind,
                         bool allow_test_jobs = false);

/// check_submit for a decoded SUBMIT.
std::string check_submit(const protocol::SubmitRequest& request, bool allow_test_jobs = false);

/// Every built-in pair, for --help texts and the docs.
const std::vector<const JobKind*>& all_job_kinds();

/// True for a built-in pair: the server's own code, not a plugin's or a test job's.
bool is_builtin(const JobKind& kind);

/// The fault-injecting jobs (test_jobs.cpp): word counts that crash, hang, stall or run out of
/// memory on purpose. The server accepts them only when started with --enable-test-jobs.
const std::vector<const JobKind*>& test_job_kinds();

}  // namespace mrd::engine
