#include "server/job_planner.hpp"

#include <algorithm>
#include <variant>

#include "server/engine/input_kinds.hpp"

namespace mrd::server {
namespace {
/// What one chunk costs besides its document views: an InputView, its vector, the chunk's slots
/// in the job's per-task bookkeeping (attempts, map outputs).
constexpr std::uint64_t kChunkOverhead = 256;
/// What one piece costs besides its bytes: a std::string in its chunk's vector of map outputs.
constexpr std::uint64_t kPieceOverhead = 48;

/// A big job's default partitions: one per this many map tasks.
constexpr std::uint64_t kMapTasksPerReduce = 4;

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) {
  return (a + b - 1) / b;
}

/// What a plan depends on, read the same from an InputView or a protocol::JobInput (their
/// alternatives have the same members).
struct InputSize {
  std::uint64_t bytes = 0;      ///< engine::input_bytes
  std::uint64_t documents = 0;  ///< documents of a text input
  bool product = false;         ///< a matrix pair
};

template <class Input>
InputSize size_of(const Input& input) {
  InputSize size{engine::input_bytes(input), 0,
                 input.index() == engine::input_kind_of<engine::MatrixPairView>()};
  if (input.index() == engine::input_kind_of<engine::DocumentsView>()) {
    size.documents =
        std::get<engine::input_kind_of<engine::DocumentsView>()>(input).documents.size();
  }
  return size;
}

std::uint64_t chunk_bytes_for(std::uint64_t requested, const InputSize& input,
                              const PlanLimits& limits) {
  const std::uint64_t total = input.bytes;
  const std::uint64_t workers = std::max(limits.workers, 1u);
  if (input.product) {
    // Every task of a product reads all of B (maps it, or is sent a copy of a small one): by
    // default one chunk per worker reads B the fewest times, and a client may cut finer only up
    // to a few chunks per worker.
    const auto fewest_bytes = ceil_div(total, workers * limits.max_matrix_tasks_per_worker);
    const auto chunk = requested ? requested : ceil_div(total, workers);
    return std::max<std::uint64_t>({chunk, fewest_bytes, 1});
  }
  std::uint64_t chunk = requested;
  if (chunk == 0) {
    // Small enough that a worker is free again within milliseconds for other jobs' tasks (a
    // 512 KiB map takes 3 to 8 ms), large enough that per-task costs stay small. A job that
    // runs alone has several chunks run in one task (Dispatcher, kMaxChunksPerTask).
    constexpr std::uint64_t kMinAuto = 64 << 10, kMaxAuto = 512 << 10;
    chunk = std::clamp<std::uint64_t>(total / (4 * workers), kMinAuto, kMaxAuto);
  }
  chunk = std::min(chunk, limits.max_chunk_bytes);
  return std::max<std::uint64_t>({chunk, ceil_div(total, limits.max_map_tasks), 1});
}

std::uint64_t working_bytes_for(const InputSize& input, std::uint64_t map_tasks,
                                std::uint32_t partitions) {
  // A document lands in one chunk, or is cut into pieces that each start a chunk of their own;
  // the input's own view of every document exists too while it is split.
  const std::uint64_t document_views = 2 * input.documents + map_tasks;
  return map_tasks * kChunkOverhead + document_views * sizeof(engine::DocumentView) +
         map_tasks * partitions * kPieceOverhead;
}

}  // namespace

std::uint64_t plan_chunk_bytes(std::uint64_t requested, const engine::InputView& input,
                               const PlanLimits& limits) {
  return chunk_bytes_for(requested, size_of(input), limits);
}

std::uint32_t plan_partitions(std::uint32_t requested, std::uint64_t map_tasks,
                              const PlanLimits& limits) {
  const std::uint64_t tasks = std::max<std::uint64_t>(map_tasks, 1);
  // One partition per worker, or more for a big job: one reduce task per four map tasks, so
  // that a reduce task takes about as long as a map task and holds up a worker no longer.
  const std::uint64_t wanted =
      requested ? requested
                : std::min<std::uint64_t>(
                      tasks, std::max<std::uint64_t>(limits.workers, tasks / kMapTasksPerReduce));
  const std::uint64_t most = std::max<std::uint64_t>(limits.max_pieces / tasks, 1);
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(wanted, 1, most));
}

std::uint64_t planned_working_bytes(const engine::InputView& input, std::uint64_t map_tasks,
                                    std::uint32_t partitions) {
  return working_bytes_for(size_of(input), map_tasks, partitions);
}

std::uint64_t plan_arriving_chunk_bytes(std::uint64_t requested, std::uint64_t text_bytes,
                                        const PlanLimits& limits) {
  return chunk_bytes_for(requested, InputSize{text_bytes}, limits);
}

namespace {
std::uint64_t working_bytes_with_options(const InputSize& size, const protocol::JobOptions& options,
                                         const PlanLimits& limits) {
  const auto chunk_bytes = chunk_bytes_for(options.chunk_bytes, size, limits);
  const auto tasks = std::max<std::uint64_t>(ceil_div(size.bytes, chunk_bytes), 1);
  return working_bytes_for(size, tasks, plan_partitions(options.partitions, tasks, limits));
}
}  // namespace

std::uint64_t planned_arriving_working_bytes(std::uint64_t text_bytes,
                                             const protocol::JobOptions& options,
                                             const PlanLimits& limits) {
  return working_bytes_with_options(InputSize{text_bytes}, options, limits);
}

std::uint64_t planned_working_bytes(const engine::InputView& input,
                                    const protocol::JobOptions& options, const PlanLimits& limits) {
  return working_bytes_with_options(size_of(input), options, limits);
}

}  // namespace mrd::server
