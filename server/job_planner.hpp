// The job planner: how a job is cut into tasks, decided before any of it is allocated.
//
// Pure functions of the input and the server's limits, so they are tested alone. A client's
// tuning (chunk_bytes, partitions) is a wish, not an order: the planner clamps it so that no
// request makes the server hold more than a bounded amount of bookkeeping beside its input
// (65,536 one-byte chunks, or a thousand partitions per chunk), send B to the workers once for
// every row of A, or make one task the size of a whole big input (which would keep a worker from
// every other client's jobs). Clamping never changes a job's result, only how it is cut.
#pragma once

#include <cstdint>

#include "protocol/messages.hpp"
#include "server/engine/input_view.hpp"

namespace mrd::server {

/// The server's bounds on how jobs are cut.
struct PlanLimits {
  unsigned workers = 2;
  /// Most map tasks per job: a smaller chunk size is enlarged to respect it.
  std::uint64_t max_map_tasks = 4096;
  /// Largest chunk of text or numbers: a worker is free again for other jobs within about a
  /// second, whatever a client asks.
  std::uint64_t max_chunk_bytes = 4 << 20;
  /// Most matrix-product tasks per worker: every task reads the whole of B (and, for an input
  /// small enough to travel inside task messages, carries a copy of it).
  std::uint64_t max_matrix_tasks_per_worker = 4;
  /// Most map-output pieces (map tasks x partitions) per job: each costs bookkeeping in the
  /// server whatever its size.
  std::uint64_t max_pieces = 1 << 18;
  /// Most partitions a job may ask for (a request above it is refused, not clamped).
  std::uint32_t max_partitions = 1024;
};

/// The chunk size for a job: the client's choice or a default (a few chunks per worker, so the
/// pool stays busy and a big job's tasks interleave with others'), clamped to the limits.
std::uint64_t plan_chunk_bytes(std::uint64_t requested, const engine::InputView& input,
                               const PlanLimits& limits);

/// The partition count for a job cut into `map_tasks` chunks: the client's choice, or one per
/// worker or per four chunks, whichever is more (at most one per chunk); clamped to max_pieces.
std::uint32_t plan_partitions(std::uint32_t requested, std::uint64_t map_tasks,
                              const PlanLimits& limits);

/// Bytes the server holds to run a job beside its input, which is charged on its own and which
/// the chunks only view: per chunk, its view (an InputView, and for text one DocumentView per
/// document or piece of one it holds, plus the input's own view that splitting starts from); per
/// piece, the slot its map output is kept in. The bytes of map outputs are charged as they arrive
/// from the workers, and task messages as they are sent.
std::uint64_t planned_working_bytes(const engine::InputView& input, std::uint64_t map_tasks,
                                    std::uint32_t partitions);

/// plan_chunk_bytes for a text input of `text_bytes` that is still arriving: its documents are not
/// known yet, only the size its SUBMIT declared (early_start.hpp).
std::uint64_t plan_arriving_chunk_bytes(std::uint64_t requested, std::uint64_t text_bytes,
                                        const PlanLimits& limits);

/// planned_working_bytes for such an input, with its documents not counted yet (its job's charge
/// grows to planned_working_bytes once the input is whole).
std::uint64_t planned_arriving_working_bytes(std::uint64_t text_bytes,
                                             const protocol::JobOptions& options,
                                             const PlanLimits& limits);

/// planned_working_bytes for an input cut as plan_chunk_bytes and plan_partitions would cut it
/// with these options (text is cut between words, so its task count is estimated from the chunk
/// size).
std::uint64_t planned_working_bytes(const engine::InputView& input,
                                    const protocol::JobOptions& options, const PlanLimits& limits);

}  // namespace mrd::server
