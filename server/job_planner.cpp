#include "server/job_planner.hpp"

#include <algorithm>
#include <variant>

#include "server/engine/input_kinds.hpp"

namespace mrd::server {
namespace {
/// What one chunk and one piece cost besides their bytes: a JobInput, a string, vector slots.
constexpr std::uint64_t kChunkOverhead = 256;
constexpr std::uint64_t kPieceOverhead = 48;

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) {
  return (a + b - 1) / b;
}
}  // namespace

std::uint64_t plan_chunk_bytes(std::uint64_t requested, const engine::InputView& input,
                               const PlanLimits& limits) {
  const std::uint64_t total = engine::input_bytes(input);
  const std::uint64_t workers = std::max(limits.workers, 1u);
  if (std::holds_alternative<engine::MatrixPairView>(input)) {
    // Every chunk of a product carries all of B: by default one chunk per worker sends B the
    // fewest times, and a client may cut finer only up to a few chunks per worker.
    const auto fewest_bytes = ceil_div(total, workers * limits.max_matrix_tasks_per_worker);
    const auto chunk = requested ? requested : ceil_div(total, workers);
    return std::max<std::uint64_t>({chunk, fewest_bytes, 1});
  }
  std::uint64_t chunk = requested;
  if (chunk == 0) {
    // Small enough that a worker is free again within milliseconds for other jobs' tasks (a
    // 2 MiB map takes about 10 ms), large enough that per-task costs stay small.
    constexpr std::uint64_t kMinAuto = 64 << 10, kMaxAuto = 2 << 20;
    chunk = std::clamp<std::uint64_t>(total / (4 * workers), kMinAuto, kMaxAuto);
  }
  chunk = std::min(chunk, limits.max_chunk_bytes);
  return std::max<std::uint64_t>({chunk, ceil_div(total, limits.max_map_tasks), 1});
}

std::uint32_t plan_partitions(std::uint32_t requested, std::uint64_t map_tasks,
                              const PlanLimits& limits) {
  const std::uint64_t tasks = std::max<std::uint64_t>(map_tasks, 1);
  const std::uint64_t wanted =
      requested ? requested : std::min<std::uint64_t>(tasks, limits.workers);
  const std::uint64_t most = std::max<std::uint64_t>(limits.max_pieces / tasks, 1);
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(wanted, 1, most));
}

std::uint64_t planned_working_bytes(const engine::InputView& input, std::uint64_t map_tasks,
                                    std::uint32_t partitions) {
  std::uint64_t bytes = engine::input_bytes(input) + map_tasks * kChunkOverhead +
                        map_tasks * partitions * kPieceOverhead;
  if (const auto* pair = std::get_if<engine::MatrixPairView>(&input)) {
    bytes += map_tasks * pair->b.values.size() * sizeof(double);
  }
  return bytes;
}

std::uint64_t planned_working_bytes(const protocol::SubmitRequest& request,
                                    const PlanLimits& limits) {
  const auto input = engine::view_of(request.input);
  const auto chunk_bytes = plan_chunk_bytes(request.options.chunk_bytes, input, limits);
  const auto tasks = std::max<std::uint64_t>(ceil_div(engine::input_bytes(input), chunk_bytes), 1);
  return planned_working_bytes(input, tasks,
                               plan_partitions(request.options.partitions, tasks, limits));
}

}  // namespace mrd::server
