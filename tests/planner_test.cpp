// The job planner alone: how requests are cut, and the clamps that stop amplification.
#include <gtest/gtest.h>

#include "server/job_planner.hpp"

#include "server/engine/input_view.hpp"

namespace mrd::server {
namespace {

using engine::view_of;

protocol::JobInput text_of(std::size_t bytes) {
  return protocol::Documents{{{"doc", std::string(bytes, 'a')}}};
}

/// A text of `mebibytes` MiB seen as one MiB many times over: the planner reads an input's size,
/// and a gibibyte need not be allocated (21 s under ASan) to have one.
engine::InputView text_view_of(std::size_t mebibytes) {
  static const std::string one_mebibyte(1 << 20, 'a');
  engine::DocumentsView view;
  view.documents.assign(mebibytes, {"doc", one_mebibyte});
  return view;
}

protocol::JobInput product(std::uint64_t n) {
  protocol::Matrix a{n, n, std::vector<double>(n * n, 1.0)};
  return protocol::MatrixPair{a, a};
}

protocol::JobInput documents(std::size_t count) {
  protocol::Documents documents;
  documents.documents.resize(count, {"name", "some text"});
  return documents;
}

TEST(Planner, TheDefaultChunkGivesAFewTasksPerWorker) {
  const PlanLimits limits{.workers = 2};
  EXPECT_EQ(plan_chunk_bytes(0, view_of(text_of(2 << 20)), limits), 256u << 10);  // 2 MiB / (4 x 2)
  EXPECT_EQ(plan_chunk_bytes(0, view_of(text_of(1000)), limits), 64u << 10);  // never below 64 KiB
  EXPECT_EQ(plan_chunk_bytes(0, text_view_of(1024), limits), 512u << 10);     // nor above 512
}

TEST(Planner, ABigJobGetsAPartitionPerFourMapTasks) {
  const PlanLimits limits{.workers = 2};
  EXPECT_EQ(plan_partitions(0, 1, limits), 1u);     // never more than the chunks
  EXPECT_EQ(plan_partitions(0, 6, limits), 2u);     // one per worker
  EXPECT_EQ(plan_partitions(0, 128, limits), 32u);  // a reduce task per four map tasks
  EXPECT_EQ(plan_partitions(5, 128, limits), 5u);   // the client's choice
}

TEST(Planner, AClientsChunkSizeIsKeptWithinTheLimits) {
  const PlanLimits limits{.workers = 2};
  EXPECT_EQ(plan_chunk_bytes(100000, view_of(text_of(1 << 20)), limits), 100000u);
  // One byte per chunk of 1 MiB would be a million tasks: at most max_map_tasks.
  EXPECT_EQ(plan_chunk_bytes(1, view_of(text_of(1 << 20)), limits),
            (1u << 20) / limits.max_map_tasks);
  // 2^40 would make one task of a whole big input: at most max_chunk_bytes.
  EXPECT_EQ(plan_chunk_bytes(1ull << 40, view_of(text_of(20 << 20)), limits),
            limits.max_chunk_bytes);
}

TEST(Planner, AProductHasAtMostAFewTasksPerWorkerEachReadingB) {
  const PlanLimits limits{.workers = 2};
  const auto input = product(256);
  const std::uint64_t a_bytes = 256 * 256 * 8;
  EXPECT_EQ(plan_chunk_bytes(0, view_of(input), limits), a_bytes / 2);  // one chunk per worker
  EXPECT_EQ(plan_chunk_bytes(1, view_of(input), limits), a_bytes / 8);  // not 65,536 copies of B
  EXPECT_EQ(plan_chunk_bytes(a_bytes, view_of(input), limits), a_bytes);
}

TEST(Planner, PartitionsDefaultToOnePerWorkerAndAreClampedByPieces) {
  const PlanLimits limits{.workers = 2};
  EXPECT_EQ(plan_partitions(0, 1, limits), 1u);
  EXPECT_EQ(plan_partitions(0, 10, limits), 2u);
  EXPECT_EQ(plan_partitions(7, 10, limits), 7u);
  // 4,096 tasks x 1,024 partitions would be 4 million pieces of bookkeeping.
  EXPECT_EQ(plan_partitions(1024, 4096, limits), limits.max_pieces / 4096);
  EXPECT_GE(plan_partitions(1024, 1u << 30, limits), 1u);
}

TEST(Planner, WorkingMemoryCountsViewsAndPiecesButNoCopyOfTheInput) {
  // Chunks view the input: 1 MiB of text cut into 16 chunks costs bookkeeping, not a MiB.
  const auto text = planned_working_bytes(view_of(text_of(1 << 20)), 16, 2);
  EXPECT_GE(text, 16 * 2 * 8u);  // at least a few bytes per chunk and piece
  EXPECT_LT(text, 16 * 1024u);
  // Nor a copy of A or of B per product task: four tasks cost what one does, plus bookkeeping.
  const std::uint64_t b_bytes = 256 * 256 * 8;
  const auto one_task = planned_working_bytes(view_of(product(256)), 1, 1);
  const auto four_tasks = planned_working_bytes(view_of(product(256)), 4, 1);
  EXPECT_LT(four_tasks, b_bytes / 64);
  EXPECT_LT(four_tasks - one_task, 4 * 1024u);
  // Every document has a view in the input's view and in its chunk's: that grows with the count.
  const auto many = planned_working_bytes(view_of(documents(100000)), 16, 2);
  const auto few = planned_working_bytes(view_of(documents(10)), 16, 2);
  EXPECT_GE(many - few, 2 * (100000 - 10) * sizeof(engine::DocumentView));
}

TEST(Planner, ARequestIsPlannedAsItsViewIs) {
  const PlanLimits limits{.workers = 2};
  for (const auto& input : {text_of(3 << 20), documents(5000), product(300)}) {
    for (const std::uint64_t chunk : {0ull, 1ull, 100000ull}) {
      for (const std::uint32_t partitions : {0u, 3u, 1024u}) {
        const protocol::JobOptions options{chunk, partitions};
        const auto chunk_bytes = plan_chunk_bytes(chunk, view_of(input), limits);
        std::uint64_t bytes = 0;
        if (const auto* text = std::get_if<protocol::Documents>(&input)) {
          for (const auto& d : text->documents)
            bytes += d.text.size();
        } else {
          bytes = std::get<protocol::MatrixPair>(input).a.values.size() * 8;
        }
        const auto tasks = std::max<std::uint64_t>((bytes + chunk_bytes - 1) / chunk_bytes, 1);
        EXPECT_EQ(planned_working_bytes(view_of(input), options, limits),
                  planned_working_bytes(view_of(input), tasks,
                                        plan_partitions(partitions, tasks, limits)))
            << "chunk " << chunk << ", partitions " << partitions;
      }
    }
  }
}

TEST(Planner, TheWorstRequestsCostAtMostBoundedBookkeeping) {
  const PlanLimits limits{.workers = 2};
  for (const auto& input : {text_of(1 << 20), text_of(20 << 20), product(512)}) {
    for (const std::uint64_t chunk : {1ull, 7ull, 1ull << 40}) {
      for (const std::uint32_t partitions : {0u, 1u, 1024u}) {
        const auto chunk_bytes = plan_chunk_bytes(chunk, view_of(input), limits);
        const auto total = std::visit(
            [](const auto& in) -> std::uint64_t {
              using T = std::decay_t<decltype(in)>;
              if constexpr (std::is_same_v<T, protocol::Documents>) {
                return in.documents[0].text.size();
              } else if constexpr (std::is_same_v<T, protocol::MatrixPair>) {
                return in.a.values.size() * 8;
              } else {
                return in.values.size() * 8;
              }
            },
            input);
        const auto tasks = (total + chunk_bytes - 1) / chunk_bytes;
        const auto working = planned_working_bytes(view_of(input), tasks,
                                                   plan_partitions(partitions, tasks, limits));
        // Chunks view the input: no copy of it, of A or of B, only 16 MiB of bookkeeping at most.
        EXPECT_LE(working, 16u << 20)
            << "chunk " << chunk << ", partitions " << partitions << ", total " << total;
      }
    }
  }
}

}  // namespace
}  // namespace mrd::server
