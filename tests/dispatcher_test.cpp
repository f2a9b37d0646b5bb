// The dispatcher against a fake pool: every answer, loss and deadline is an event the test makes,
// one at a time, so fair turns, retries, deadlines, cancellation and memory admission are checked
// exactly, with no worker process and no timing.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>

#include "protocol/codec.hpp"
#include "protocol/submit_layout.hpp"
#include "server/dispatcher.hpp"
#include "server/engine/job_kind.hpp"
#include "server/pool/segment.hpp"

namespace mrd::server {
namespace {

using protocol::Status;

/// A task the fake pool was handed.
struct SentTask {
  TaskMessageType type;
  std::string body;
  OwnedFd attached;  ///< a copy, as the real channel keeps until the message is written
};

/// Runs a task as a worker process does, on the real engine, and gives its answer's body.
std::string run_like_a_worker(const SentTask& sent) {
  if (sent.type == TaskMessageType::kBatch) {
    std::vector<std::pair<TaskMessageType, std::string>> answers;
    for (const auto& task : decode_batch(sent.body)) {
      answers.emplace_back(TaskMessageType::kDone,
                           run_like_a_worker(SentTask{task.type, std::string(task.body), {}}));
    }
    return encode_batch(answers);
  }
  if (sent.type == TaskMessageType::kReduce) {
    const auto task = decode_reduce_task(sent.body);
    return engine::find_job_kind(task.job.mapper, task.job.reducer)->reduce(task.pieces);
  }
  const auto task = decode_map_task(sent.body);
  std::optional<SegmentView> mapped;
  const char* span = task.inline_bytes.data();
  if (task.in_file) {
    mapped.emplace(sent.attached.get(), task.span.offset, task.span.end());
    span = mapped->data();
  }
  const auto& kind = *engine::find_job_kind(task.job.mapper, task.job.reducer);
  auto pieces = kind.map(chunk_view(task, span), task.job.partitions);
  if (sent.type == TaskMessageType::kMapReduce) {
    for (auto& piece : pieces)
      piece = kind.reduce({std::move(piece)});
  }
  return encode_pieces(pieces);
}

class FakePool final : public TaskPool {
 public:
  explicit FakePool(unsigned slots) : slots_(slots) {}

  unsigned size() const override { return static_cast<unsigned>(slots_.size()); }
  bool idle(unsigned slot) const override { return !slots_[slot]; }
  void send(unsigned slot, std::uint32_t, TaskMessageType type, std::string body, MemoryCharge,
            int attached, int result) override {
    EXPECT_LT(result, 0) << "no job here writes its result in place";
    EXPECT_FALSE(slots_[slot]) << "a task was sent to a busy slot";
    slots_[slot] = SentTask{type, std::move(body),
                            OwnedFd(attached >= 0 ? ::fcntl(attached, F_DUPFD_CLOEXEC, 0) : -1)};
    sent.push_back(slots_[slot]->body);
    sent_types.push_back(type);
  }
  /// How many of the tasks sent were of `type`.
  std::size_t sent_of(TaskMessageType type) const {
    return static_cast<std::size_t>(std::count(sent_types.begin(), sent_types.end(), type));
  }
  std::string replace(unsigned slot) override {
    slots_[slot].reset();
    ++replaced;
    return "killed by signal 9 (Killed)";
  }

  const std::optional<SentTask>& task(unsigned slot) const { return slots_[slot]; }

  bool takes_batches() const override { return batches; }

  /// The slot's worker answers its task, as a real one would.
  PoolEvent answer(unsigned slot) {
    const auto type = slots_[slot]->type == TaskMessageType::kBatch ? TaskMessageType::kBatchDone
                                                                    : TaskMessageType::kDone;
    auto answer = run_like_a_worker(*slots_[slot]);
    return reply(slot, type, std::move(answer));
  }
  /// The slot's worker answers `body`, whatever its task was.
  PoolEvent reply(unsigned slot, TaskMessageType type, std::string body) {
    slots_[slot].reset();
    PoolEvent event;
    event.kind = PoolEvent::Kind::kAnswer;
    event.slot = slot;
    event.answer = TaskMessage{type, std::move(body), {}};
    return event;
  }
  /// The slot's worker dies (or its answer did not fit: `kind`).
  PoolEvent lose(unsigned slot, PoolEvent::Kind kind = PoolEvent::Kind::kLost) {
    slots_[slot].reset();
    PoolEvent event;
    event.kind = kind;
    event.slot = slot;
    event.how = kind == PoolEvent::Kind::kLost ? "killed by signal 9 (Killed)" : "an answer";
    return event;
  }

  std::vector<std::string> sent;            ///< every task body, in the order sent
  std::vector<TaskMessageType> sent_types;  ///< and its type
  int replaced = 0;
  bool batches = false;  ///< takes kBatch messages, as WorkerPool does

 private:
  std::vector<std::optional<SentTask>> slots_;
};

struct Harness {
  explicit Harness(unsigned workers, std::uint64_t budget_bytes = 1ull << 30,
                   std::uint32_t memory_limit_mib = 0,
                   std::chrono::milliseconds quiet_before_joining = std::chrono::milliseconds(100))
      : pool(workers),
        budget(budget_bytes),
        dispatcher(DispatcherConfig{.limits = PlanLimits{.workers = workers},
                                    .task_timeout_ms = 300000,
                                    .memory_limit_mib = memory_limit_mib,
                                    .budget = &budget,
                                    .assemble_elsewhere =
                                        [this](std::function<void()> work) {
                                          assemblies.push_back(std::move(work));
                                        },
                                    .quiet_before_joining = quiet_before_joining},
                   pool, [this](JobOutcome outcome) { outcomes[outcome.id] = outcome; }) {}

  std::shared_ptr<JobTicket> submit(std::uint32_t id, const protocol::SubmitRequest& request,
                                    const std::string& tenant = "") {
    const auto body = protocol::encode(request);
    auto layout = protocol::decode_submit_layout(body);
    EXPECT_TRUE(layout) << layout.error;
    auto ticket = std::make_shared<JobTicket>(id, tenant);
    auto input = std::make_unique<SubmittedInput>(body, std::move(*layout.value),
                                                  body.size() >= kSharedSegmentBytes);
    auto charge = MemoryCharge::force_take(budget, input->held_bytes());
    dispatcher.submit({ticket, std::move(input), std::move(charge)});
    return ticket;
  }

  /// Every worker answers its task, round after round, until none has one; then the big
  /// results handed to the assembler are assembled, unless `assemble` is false.
  void run(bool assemble = true) {
    for (int round = 0; round < 100000; ++round) {
      dispatcher.dispatch();
      std::vector<PoolEvent> events;
      for (unsigned slot = 0; slot < pool.size(); ++slot) {
        if (pool.task(slot)) events.push_back(pool.answer(slot));
      }
      if (events.empty()) {
        if (assemble) run_assemblies();
        return;
      }
      dispatcher.handle(std::move(events));
    }
    FAIL() << "the jobs never finished";
  }

  /// What the assembler's thread would run.
  void run_assemblies() {
    auto queued = std::move(assemblies);
    assemblies.clear();
    for (auto& work : queued)
      work();
  }

  /// Reports one event.
  void handle(PoolEvent event) {
    std::vector<PoolEvent> events;
    events.push_back(std::move(event));
    dispatcher.handle(std::move(events));
  }

  FakePool pool;
  MemoryBudget budget;
  Dispatcher dispatcher;
  std::map<std::uint32_t, JobOutcome> outcomes;
  std::vector<std::function<void()>> assemblies;  ///< handed to the assembler, not yet run
};

protocol::SubmitRequest word_count(std::vector<std::string> texts, std::uint64_t chunk_bytes = 0,
                                   std::uint32_t partitions = 0) {
  protocol::Documents documents;
  for (std::size_t i = 0; i < texts.size(); ++i)
    documents.documents.push_back({"doc" + std::to_string(i), std::move(texts[i])});
  return {"words", "sum", {chunk_bytes, partitions}, std::move(documents)};
}

std::map<std::string, std::uint64_t> counts_of(const JobOutcome& outcome) {
  EXPECT_EQ(outcome.status, Status::kOk) << outcome.body;
  std::map<std::string, std::uint64_t> counts;
  const auto result = protocol::decode<protocol::JobResult>(outcome.body);
  EXPECT_TRUE(result) << result.error;
  for (const auto& entry : std::get<protocol::Counts>(*result.value).entries)
    counts[entry.key] = entry.count;
  return counts;
}

/// "w0 w1 ... " with `n` distinct words, each `repeat` times.
std::string words(int n, int repeat, const std::string& prefix = "w") {
  std::string text;
  for (int r = 0; r < repeat; ++r) {
    for (int i = 0; i < n; ++i)
      text += prefix + std::to_string(i) + " ";
  }
  return text;
}

TEST(Dispatcher, RunsAJobInChunksAndPartitionsToTheRightResult) {
  for (const bool big : {false, true}) {  // inline chunks, and a memory file workers map
    Harness h(3);
    const int repeat = big ? 2000 : 20;  // 100 words of ~4 bytes: 8 KB, or 800 KB
    h.submit(1, word_count({words(100, repeat), words(50, 3)}, 1000, 4));
    h.run();
    ASSERT_EQ(h.outcomes.count(1), 1u);
    const auto counts = counts_of(h.outcomes[1]);
    ASSERT_EQ(counts.size(), 100u);
    EXPECT_EQ(counts.at("w7"), std::uint64_t(repeat + 3));
    EXPECT_EQ(counts.at("w99"), std::uint64_t(repeat));
    EXPECT_GT(h.pool.sent.size(), 4u);  // several map tasks, then four reduce tasks
  }
}

TEST(Dispatcher, ABigResultIsAssembledElsewhereAndASmallOneInPlace) {
  Harness h(2);
  h.submit(1, word_count({words(20000, 3)}, 64 << 10, 4));  // 20,000 keys: parts of ~300 KB
  h.submit(2, word_count({"small job small"}));
  h.run(false);
  // The small one is done; the big one's parts wait for the assembler.
  EXPECT_EQ(counts_of(h.outcomes.at(2)).at("small"), 2u);
  EXPECT_EQ(h.outcomes.count(1), 0u);
  ASSERT_EQ(h.assemblies.size(), 1u);
  h.run_assemblies();
  const auto counts = counts_of(h.outcomes.at(1));
  EXPECT_EQ(counts.size(), 20000u);
  EXPECT_EQ(counts.at("w19999"), 3u);

  // A job cancelled while its result is being assembled reports nothing.
  auto ticket = h.submit(3, word_count({words(20000, 1)}, 64 << 10, 4));
  h.run(false);
  ASSERT_EQ(h.assemblies.size(), 1u);
  ticket->cancelled = true;
  h.run_assemblies();
  EXPECT_EQ(h.outcomes.count(3), 0u);
}

TEST(Dispatcher, AJobAloneRunsSeveralChunksPerMapTaskAndOneEachWhileOthersRun) {
  const auto text = words(3000, 100);  // about 1.9 MB, cut by the planner into 8 chunks
  {
    Harness h(2);
    auto ticket = h.submit(1, word_count({text}));
    h.dispatcher.dispatch();
    ASSERT_GE(ticket->map_total.load(), 8u);
    // Alone: the first tasks take several chunks each. One of them is lost: its chunks run again.
    ASSERT_TRUE(h.pool.task(0));
    h.handle(h.pool.lose(0));
    h.run();
    EXPECT_LT(h.pool.sent_of(TaskMessageType::kMap), ticket->map_total.load());
    EXPECT_EQ(ticket->map_done.load(), ticket->map_total.load());
    EXPECT_EQ(counts_of(h.outcomes.at(1)).at("w2999"), 100u);
  }
  {
    // Two at once: one chunk per task, so that either job's next task is never far off.
    Harness h(2);
    auto first = h.submit(1, word_count({text}));
    auto second = h.submit(2, word_count({text}));
    h.run();
    EXPECT_EQ(h.pool.sent_of(TaskMessageType::kMap),
              first->map_total.load() + second->map_total.load());
    EXPECT_EQ(counts_of(h.outcomes.at(1)), counts_of(h.outcomes.at(2)));
    EXPECT_EQ(counts_of(h.outcomes.at(2)).at("w0"), 100u);
  }
}

TEST(Dispatcher, ASmallJobWaitsForOneTaskOfABigOneNotForAllOfThem) {
  Harness h(1);
  h.submit(1, word_count({words(1000, 10)}, 1000, 1));  // tens of map tasks
  h.submit(2, word_count({"small job"}));
  h.dispatcher.dispatch();
  h.handle(h.pool.answer(0));  // the big job's first task
  h.dispatcher.dispatch();
  // Turns alternate: the small job's only task is next, not the big job's other tasks.
  ASSERT_TRUE(h.pool.task(0));
  EXPECT_NE(h.pool.sent.back().find("small job"), std::string::npos);
  h.handle(h.pool.answer(0));
  EXPECT_EQ(counts_of(h.outcomes.at(2)),
            (std::map<std::string, std::uint64_t>{{"job", 1}, {"small", 1}}));
  EXPECT_EQ(h.outcomes.count(1), 0u);
  h.run();
  EXPECT_EQ(counts_of(h.outcomes.at(1)).at("w5"), 10u);
}

TEST(Dispatcher, TenantsTakeTurnsBeforeTheirJobsDo) {
  Harness h(1);
  // Alice's three one-task jobs come first, then Bob's one.
  for (std::uint32_t id = 1; id <= 3; ++id)
    h.submit(id, word_count({"alice " + std::to_string(id)}), "alice");
  h.submit(4, word_count({"bob"}), "bob");
  std::vector<std::uint32_t> order;
  for (int task = 0; task < 4; ++task) {
    h.dispatcher.dispatch();
    ASSERT_TRUE(h.pool.task(0));
    h.handle(h.pool.answer(0));
    for (const auto& [id, outcome] : h.outcomes)
      if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
  }
  // Bob's job has the second turn, not the fourth.
  EXPECT_EQ(order, (std::vector<std::uint32_t>{1, 4, 2, 3}));
}

TEST(Dispatcher, ALostTaskRunsAgainAndTheThirdLossFailsTheJob) {
  Harness h(1);
  h.submit(1, word_count({"one two two"}));
  h.dispatcher.dispatch();
  h.handle(h.pool.lose(0));
  h.dispatcher.dispatch();
  ASSERT_TRUE(h.pool.task(0)) << "the task is sent again";
  h.handle(h.pool.lose(0));
  h.dispatcher.dispatch();
  h.handle(h.pool.answer(0));  // the third attempt succeeds
  EXPECT_EQ(counts_of(h.outcomes.at(1)).at("two"), 2u);

  h.submit(2, word_count({"doomed"}));
  for (int attempt = 0; attempt < kMaxTaskAttempts; ++attempt) {
    ASSERT_EQ(h.outcomes.count(2), 0u);
    h.dispatcher.dispatch();
    ASSERT_TRUE(h.pool.task(0));
    h.handle(h.pool.lose(0));
  }
  ASSERT_EQ(h.outcomes.count(2), 1u);
  EXPECT_EQ(h.outcomes[2].status, Status::kJobCrashed);
  EXPECT_NE(h.outcomes[2].body.find("crashed 3 times"), std::string::npos) << h.outcomes[2].body;
}

TEST(Dispatcher, ATaskPastItsDeadlineHasItsWorkerReplacedAndCountsAsAnAttempt) {
  Harness h(1);
  auto request = word_count({"late"});
  request.options.task_timeout_ms = 1;
  h.submit(1, request);
  for (int attempt = 0; attempt < kMaxTaskAttempts; ++attempt) {
    h.dispatcher.dispatch();
    ASSERT_TRUE(h.pool.task(0));
    const auto deadline = h.dispatcher.next_deadline();
    ASSERT_TRUE(deadline);
    while (Dispatcher::Clock::now() <= *deadline) {
    }
    h.dispatcher.enforce_deadlines();
    EXPECT_EQ(h.pool.replaced, attempt + 1);
  }
  ASSERT_EQ(h.outcomes.count(1), 1u);
  EXPECT_EQ(h.outcomes[1].status, Status::kJobTimedOut);
  EXPECT_FALSE(h.dispatcher.next_deadline()) << "nothing runs any more";
}

TEST(Dispatcher, CancellingARunningJobReplacesItsWorkerAndReportsNothing) {
  Harness h(2);
  const auto ticket = h.submit(1, word_count({words(100, 50)}, 1000, 1));
  h.submit(2, word_count({"other job"}));
  h.dispatcher.dispatch();
  ASSERT_TRUE(h.pool.task(0) && h.pool.task(1));
  ticket->cancelled = true;
  h.dispatcher.drop_cancelled();
  EXPECT_EQ(h.pool.replaced, 1) << "only the cancelled job's worker";
  h.run();
  EXPECT_EQ(h.outcomes.count(1), 0u) << "a cancelled job has no outcome";
  EXPECT_EQ(counts_of(h.outcomes.at(2)).at("other"), 1u);
}

TEST(Dispatcher, WhatAWorkerAnswersDecidesTheJobsFate) {
  Harness h(1);
  h.submit(1, word_count({"a"}));
  h.dispatcher.dispatch();
  h.handle(h.pool.reply(0, TaskMessageType::kError, "the mapper refused"));
  EXPECT_EQ(h.outcomes.at(1).status, Status::kJobFailed);
  EXPECT_EQ(h.outcomes.at(1).body, "the mapper refused");

  h.submit(2, word_count({"a"}));
  h.dispatcher.dispatch();
  h.handle(h.pool.reply(0, TaskMessageType::kOutOfMemory, "out of memory"));
  EXPECT_EQ(h.outcomes.at(2).status, Status::kJobOutOfMemory);
  EXPECT_EQ(h.pool.sent.size(), 2u) << "running out of memory is not retried";

  h.submit(3, word_count({"a"}));
  h.dispatcher.dispatch();
  h.handle(h.pool.reply(0, TaskMessageType::kDone, "garbage"));
  EXPECT_EQ(h.outcomes.at(3).status, Status::kJobFailed);
  EXPECT_NE(h.outcomes.at(3).body.find("garbage"), std::string::npos);

  h.submit(4, word_count({"a"}));
  h.dispatcher.dispatch();
  h.handle(h.pool.lose(0, PoolEvent::Kind::kOverBudget));
  EXPECT_EQ(h.outcomes.at(4).status, Status::kJobOutOfMemory);

  h.submit(5, word_count({"still serving"}));
  h.run();
  EXPECT_EQ(counts_of(h.outcomes.at(5)).at("serving"), 1u);
}

/// A job whose planned working memory (views of 64 one-word chunks, 64 x 64 pieces) is a few
/// hundred KiB, and a budget that holds the inputs of `queued` such jobs but the working memory of
/// one at a time, never two.
struct OneJobAtATime {
  explicit OneJobAtATime(std::uint64_t queued) {
    const auto body = protocol::encode(request);
    const auto layout = protocol::decode_submit_layout(body);
    const SubmittedInput probe(body, *layout.value, false);
    working = planned_working_bytes(probe.view(), request.options, PlanLimits{.workers = 1});
    budget = probe.held_bytes() * queued + working * 3 / 2;
  }
  protocol::SubmitRequest request = word_count({words(4096, 1)}, 256, 64);
  std::uint64_t working = 0;
  std::uint64_t budget = 0;
};

TEST(Dispatcher, AJobWaitsForMemoryWhileOthersRunAndFailsIfNothingRunsToFreeIt) {
  const OneJobAtATime jobs(2);
  const auto& request = jobs.request;
  const auto working = jobs.working;
  Harness h(1, jobs.budget);

  const auto first = h.submit(1, request);
  const auto second = h.submit(2, request);
  h.dispatcher.dispatch();
  EXPECT_EQ(first->state, protocol::JobState::kMapping);
  EXPECT_EQ(second->state, protocol::JobState::kQueued) << "it must wait for memory";
  h.handle(h.pool.answer(0));
  h.dispatcher.dispatch();
  EXPECT_EQ(second->state, protocol::JobState::kQueued);
  h.run();  // job 2 is admitted once job 1 has finished and given its memory back
  ASSERT_EQ(h.outcomes.size(), 2u);
  EXPECT_EQ(counts_of(h.outcomes.at(1)), counts_of(h.outcomes.at(2)));

  // Something else now holds most of the budget, and no job runs that could give memory back.
  auto held = MemoryCharge::force_take(h.budget, h.budget.limit() - working / 2);
  h.submit(3, request);
  h.dispatcher.dispatch();
  ASSERT_EQ(h.outcomes.count(3), 1u);
  EXPECT_EQ(h.outcomes[3].status, Status::kJobOutOfMemory);
  EXPECT_NE(h.outcomes[3].body.find("mrd --max-memory-mib"), std::string::npos);
}

TEST(Dispatcher, TenantsTakeTurnsForMemoryToo) {
  // The budget runs one job at a time: Alice's three wait for it, and Bob's one, submitted last,
  // is admitted second.
  const OneJobAtATime jobs(4);
  Harness h(1, jobs.budget);
  for (std::uint32_t id = 1; id <= 3; ++id)
    h.submit(id, jobs.request, "alice");
  h.submit(4, jobs.request, "bob");
  std::vector<std::uint32_t> order;
  for (int round = 0; round < 100000 && h.outcomes.size() < 4; ++round) {
    h.dispatcher.dispatch();
    if (h.pool.task(0)) h.handle(h.pool.answer(0));
    h.run_assemblies();
    for (const auto& [id, outcome] : h.outcomes)
      if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
  }
  ASSERT_EQ(order, (std::vector<std::uint32_t>{1, 4, 2, 3}));
  EXPECT_EQ(h.outcomes.at(4).status, Status::kOk);
}

TEST(Dispatcher, AJobsMemoryFileGoesWhenItsMapsAreDone) {
  Harness h(2);
  const auto before = Segment::live_shared();
  h.submit(1, word_count({words(1000, 20)}, 20000, 2));  // 100 KB: a memory file
  EXPECT_EQ(Segment::live_shared(), before + 1);
  h.dispatcher.dispatch();
  while (h.pool.task(0) || h.pool.task(1)) {
    for (unsigned slot = 0; slot < 2; ++slot) {
      if (h.pool.task(slot) && h.pool.task(slot)->type != TaskMessageType::kReduce) {
        EXPECT_TRUE(h.pool.task(slot)->attached) << "a map task is sent the input's file";
      }
      if (h.pool.task(slot)) h.handle(h.pool.answer(slot));
    }
    h.dispatcher.dispatch();
    if (h.pool.task(0) && h.pool.task(0)->type == TaskMessageType::kReduce) {
      EXPECT_EQ(Segment::live_shared(), before) << "reducing needs no input";
    }
  }
  EXPECT_EQ(counts_of(h.outcomes.at(1)).at("w999"), 20u);
  EXPECT_EQ(Segment::live_shared(), before);
}

/// A big SUBMIT arriving as a connection receives it (submit_upload.hpp): its body goes into a
/// growing memory file, and the dispatcher may start its maps early (early_start.hpp).
struct ArrivingSubmit {
  explicit ArrivingSubmit(const protocol::SubmitRequest& request)
      : body(protocol::encode(request)), segment(SubmittedInput::body_offset(0)) {
    const auto head = protocol::submit_head_from_prefix(body);
    EXPECT_TRUE(head);
    input = std::make_shared<ArrivingInput>();
    input->head = head->layout;
    input->input_offset = head->input_offset;
    input->body_bytes = body.size();
    input->body_offset = SubmittedInput::body_offset(0);
    input->mapping = segment.map_ahead(input->body_offset + body.size());
  }
  /// The next `bytes` of the body arrive.
  void arrive(std::size_t bytes) {
    bytes = std::min(bytes, body.size() - arrived);
    segment.append(std::string_view(body).substr(arrived, bytes));
    arrived += bytes;
    input->arrived.store(arrived, std::memory_order_release);
  }
  /// The whole body arrived and was accepted as job `id`.
  std::shared_ptr<JobTicket> submit(Harness& h, std::uint32_t id) {
    arrive(body.size());
    auto layout = protocol::decode_submit_layout(body);
    EXPECT_TRUE(layout) << layout.error;
    auto ticket = std::make_shared<JobTicket>(id);
    auto submitted = std::make_unique<SubmittedInput>(segment.seal(), input->body_offset,
                                                      std::move(*layout.value));
    auto charge = MemoryCharge::force_take(h.budget, submitted->held_bytes());
    h.dispatcher.submit({ticket, std::move(submitted), std::move(charge), input});
    return ticket;
  }

  std::string body;
  GrowingSegment segment;
  std::shared_ptr<ArrivingInput> input;
  std::size_t arrived = 0;
};

TEST(Dispatcher, MapsStartWhileTheInputArrivesAndTheJobGoesOnFromThem) {
  const auto request = word_count({words(3000, 40), words(10, 2), words(4000, 20)}, 64 << 10);
  Harness whole(2);
  whole.submit(1, request);
  whole.run();
  const auto expected = counts_of(whole.outcomes.at(1));

  Harness h(2);
  ArrivingSubmit upload(request);
  h.dispatcher.start_early(upload.input);
  upload.arrive(upload.body.size() / 2);
  h.dispatcher.dispatch();
  // Half the body is in: both workers already map chunks of it, with no job id yet.
  EXPECT_EQ(h.pool.sent_of(TaskMessageType::kMap), 2u);
  ASSERT_TRUE(h.pool.task(0));
  h.handle(h.pool.answer(0));
  upload.submit(h, 7);
  h.run();
  EXPECT_EQ(counts_of(h.outcomes.at(7)), expected);
  // Every chunk was mapped once: the early ones were not run again.
  EXPECT_EQ(h.pool.sent_of(TaskMessageType::kMap), whole.pool.sent_of(TaskMessageType::kMap));
  EXPECT_EQ(h.outcomes.size(), 1u);
}

TEST(Dispatcher, AnUploadsEarlyMapsYieldToAcceptedJobsAndLeaveThemAWorker) {
  const auto request = word_count({words(3000, 40)}, 64 << 10);
  Harness whole(2);
  whole.submit(1, request);
  whole.run();
  const auto expected = counts_of(whole.outcomes.at(1));

  // Other jobs count as about for an hour after the last was seen, whatever the test's pace.
  Harness h(2, 1ull << 30, 0, std::chrono::hours(1));
  ArrivingSubmit upload(request);
  h.dispatcher.start_early(upload.input);
  upload.arrive(upload.body.size() / 2);
  // An accepted job's task (inline; the upload's tasks are sent its memory file) goes first,
  // though the upload started earlier; the upload has the other worker.
  h.submit(1, word_count({"accepted job"}));
  h.dispatcher.dispatch();
  ASSERT_TRUE(h.pool.task(0) && h.pool.task(1));
  EXPECT_FALSE(h.pool.task(0)->attached) << "the accepted job's task goes first";
  EXPECT_TRUE(h.pool.task(1)->attached);
  // The accepted job is done, and so recently that the next one may come any moment: its worker
  // is kept for it, not given to the upload's next map.
  h.handle(h.pool.answer(0));
  EXPECT_EQ(counts_of(h.outcomes.at(1)).at("accepted"), 1u);
  h.dispatcher.dispatch();
  EXPECT_FALSE(h.pool.task(0)) << "the upload's maps hold every worker";
  // It takes it at once.
  h.submit(2, word_count({"next job"}));
  h.dispatcher.dispatch();
  ASSERT_TRUE(h.pool.task(0));
  h.handle(h.pool.answer(0));
  EXPECT_EQ(counts_of(h.outcomes.at(2)).at("next"), 1u);
  // Accepted in turn, the upload's job has every worker again, and its result is whole.
  upload.submit(h, 3);
  h.dispatcher.dispatch();
  EXPECT_TRUE(h.pool.task(0) && h.pool.task(1));
  h.run();
  EXPECT_EQ(counts_of(h.outcomes.at(3)), expected);
}

TEST(Dispatcher, ASubmitThatNeverBecomesAJobStopsItsEarlyMapsAndLeavesNothing) {
  Harness h(2);
  const auto used_before = h.budget.used();
  {
    ArrivingSubmit upload(word_count({words(3000, 40)}, 64 << 10));
    h.dispatcher.start_early(upload.input);
    upload.arrive(upload.body.size() / 2);
    h.dispatcher.dispatch();
    ASSERT_EQ(h.pool.sent_of(TaskMessageType::kMap), 2u);
    // The connection went (or the SUBMIT was refused): its EarlyStart cancels the placeholder.
    upload.input->placeholder->cancelled = true;
    h.dispatcher.drop_cancelled();
  }
  EXPECT_EQ(h.pool.replaced, 2) << "the workers mapping its chunks are replaced";
  h.run();
  EXPECT_TRUE(h.outcomes.empty());
  EXPECT_EQ(h.budget.used(), used_before) << "its charges are released";
  // The pool serves the next job as ever.
  h.submit(1, word_count({"next job next"}));
  h.run();
  EXPECT_EQ(counts_of(h.outcomes.at(1)).at("next"), 2u);
}

TEST(Dispatcher, AJobCancelledBeforeItIsAdmittedStopsItsEarlyMapsToo) {
  // The cancel is seen first by admission, or by drop_cancelled (which the scheduler calls
  // before it dispatches when a cancel was notified).
  for (const bool cancel_notified : {false, true}) {
    Harness h(2);
    ArrivingSubmit upload(word_count({words(3000, 40)}, 64 << 10));
    h.dispatcher.start_early(upload.input);
    upload.arrive(upload.body.size() / 2);
    h.dispatcher.dispatch();
    ASSERT_EQ(h.pool.sent_of(TaskMessageType::kMap), 2u);
    // Accepted, and cancelled by its client before the dispatcher took it in.
    upload.submit(h, 5)->cancelled = true;
    if (cancel_notified) h.dispatcher.drop_cancelled();
    h.dispatcher.dispatch();
    EXPECT_EQ(h.pool.replaced, 2) << "the workers mapping its early chunks are replaced";
    h.run();
    EXPECT_TRUE(h.outcomes.empty());
    // The pool serves the next job as ever.
    h.submit(1, word_count({"next job next"}));
    h.run();
    EXPECT_EQ(counts_of(h.outcomes.at(1)).at("next"), 2u);
  }
}

TEST(Dispatcher, AnEarlyMapsFailureIsReportedUnderTheJobsIdOnceItIsAccepted) {
  Harness h(1);
  auto request = word_count({words(3000, 40)}, 64 << 10);
  ArrivingSubmit upload(request);
  h.dispatcher.start_early(upload.input);
  upload.arrive(upload.body.size() / 2);
  h.dispatcher.dispatch();
  ASSERT_TRUE(h.pool.task(0));
  h.handle(h.pool.reply(0, TaskMessageType::kError, "the mapper refused its input"));
  EXPECT_TRUE(h.outcomes.empty()) << "no id to report it under yet";
  upload.submit(h, 3);
  h.run();
  ASSERT_EQ(h.outcomes.count(3), 1u);
  EXPECT_EQ(h.outcomes[3].status, Status::kJobFailed);
  EXPECT_EQ(h.outcomes[3].body, "the mapper refused its input");
}

/// The jobs a kBatch message carries, by the words their texts start with.
std::vector<std::string> batched_texts(const std::string& batch) {
  std::vector<std::string> texts;
  for (const auto& task : decode_batch(batch)) {
    EXPECT_EQ(task.type, TaskMessageType::kMapReduce);
    const auto map = decode_map_task(task.body);
    const auto chunk = chunk_view(map, map.inline_bytes.data());
    texts.emplace_back(std::get<engine::DocumentsView>(chunk).documents.at(0).text);
  }
  return texts;
}

TEST(Dispatcher, TinyJobsWaitingTogetherGoInOneMessageWithoutSkippingATurn) {
  Harness h(1);
  h.pool.batches = true;
  for (std::uint32_t id = 1; id <= 3; ++id)
    h.submit(id, word_count({"tiny " + std::to_string(id)}));
  h.submit(4, word_count({words(100, 20)}, 1000, 2));  // many chunks: not a tiny job
  for (std::uint32_t id = 5; id <= 15; ++id)
    h.submit(id, word_count({"tiny " + std::to_string(id)}));

  h.dispatcher.dispatch();
  ASSERT_EQ(h.pool.sent_types.at(0), TaskMessageType::kBatch);
  // The big job's turn comes after the third: the batch stops there.
  EXPECT_EQ(batched_texts(h.pool.sent.at(0)),
            (std::vector<std::string>{"tiny 1", "tiny 2", "tiny 3"}));
  h.handle(h.pool.answer(0));
  for (std::uint32_t id = 1; id <= 3; ++id)
    EXPECT_EQ(counts_of(h.outcomes.at(id)).at(std::to_string(id)), 1u);
  h.dispatcher.dispatch();
  EXPECT_EQ(h.pool.sent_types.at(1), TaskMessageType::kMap) << "the big job's turn";
  h.handle(h.pool.answer(0));
  h.dispatcher.dispatch();
  ASSERT_EQ(h.pool.sent_types.at(2), TaskMessageType::kBatch);
  EXPECT_EQ(batched_texts(h.pool.sent.at(2)).size(), kMostTasksPerBatch);
  h.run();
  ASSERT_EQ(h.outcomes.size(), 15u);
  for (std::uint32_t id = 5; id <= 15; ++id)
    EXPECT_EQ(counts_of(h.outcomes.at(id)).at(std::to_string(id)), 1u);
  EXPECT_EQ(counts_of(h.outcomes.at(4)).at("w7"), 20u);
}

TEST(Dispatcher, ALostBatchCostsEachOfItsTasksAnAttemptAndEachRunsAloneAfter) {
  Harness h(1);
  h.pool.batches = true;
  for (std::uint32_t id = 1; id <= 3; ++id)
    h.submit(id, word_count({"job " + std::to_string(id)}));
  h.dispatcher.dispatch();
  ASSERT_EQ(h.pool.sent_types.at(0), TaskMessageType::kBatch);
  h.handle(h.pool.lose(0));
  // Alone now, in their turns, so that one that kills its worker takes no other job with it.
  for (std::uint32_t id = 1; id <= 3; ++id) {
    h.dispatcher.dispatch();
    ASSERT_EQ(h.pool.sent_types.back(), TaskMessageType::kMapReduce);
    h.handle(h.pool.answer(0));
    EXPECT_EQ(counts_of(h.outcomes.at(id)).at(std::to_string(id)), 1u);
  }
  EXPECT_EQ(h.pool.sent.size(), 4u);
}

TEST(Dispatcher, CancellingSomeJobsOfABatchLeavesItsWorkerToTheOthers) {
  Harness h(1);
  h.pool.batches = true;
  std::vector<std::shared_ptr<JobTicket>> tickets;
  for (std::uint32_t id = 1; id <= 3; ++id)
    tickets.push_back(h.submit(id, word_count({"job " + std::to_string(id)})));
  h.dispatcher.dispatch();
  tickets[1]->cancelled = true;
  h.dispatcher.drop_cancelled();
  EXPECT_EQ(h.pool.replaced, 0) << "jobs 1 and 3 are about done";
  h.handle(h.pool.answer(0));
  EXPECT_EQ(counts_of(h.outcomes.at(1)).at("1"), 1u);
  EXPECT_EQ(counts_of(h.outcomes.at(3)).at("3"), 1u);
  EXPECT_EQ(h.outcomes.count(2), 0u) << "a cancelled job has no outcome";

  // Every job of the batch cancelled: its worker is stopped, as for one job.
  tickets.clear();
  for (std::uint32_t id = 4; id <= 5; ++id)
    tickets.push_back(h.submit(id, word_count({"job " + std::to_string(id)})));
  h.dispatcher.dispatch();
  for (const auto& ticket : tickets)
    ticket->cancelled = true;
  h.dispatcher.drop_cancelled();
  EXPECT_EQ(h.pool.replaced, 1);
  EXPECT_FALSE(h.dispatcher.next_deadline()) << "nothing runs any more";
}

TEST(Dispatcher, EachAnswerOfABatchDecidesItsOwnJobsFate) {
  Harness h(1);
  h.pool.batches = true;
  for (std::uint32_t id = 1; id <= 3; ++id)
    h.submit(id, word_count({"job " + std::to_string(id)}));
  h.dispatcher.dispatch();
  const auto first = decode_batch(h.pool.sent.at(0)).at(0);
  const auto done = run_like_a_worker(SentTask{first.type, std::string(first.body), {}});
  h.handle(h.pool.reply(0, TaskMessageType::kBatchDone,
                        encode_batch({{TaskMessageType::kDone, done},
                                      {TaskMessageType::kError, "the mapper refused"},
                                      {TaskMessageType::kOutOfMemory, "out of memory"}})));
  EXPECT_EQ(counts_of(h.outcomes.at(1)).at("1"), 1u);
  EXPECT_EQ(h.outcomes.at(2).status, Status::kJobFailed);
  EXPECT_EQ(h.outcomes.at(2).body, "the mapper refused");
  EXPECT_EQ(h.outcomes.at(3).status, Status::kJobOutOfMemory);

  // Answers that do not add up fail every job of the batch, as garbage fails one job.
  for (std::uint32_t id = 4; id <= 5; ++id)
    h.submit(id, word_count({"job " + std::to_string(id)}));
  h.dispatcher.dispatch();
  h.handle(
      h.pool.reply(0, TaskMessageType::kBatchDone, encode_batch({{TaskMessageType::kDone, done}})));
  for (std::uint32_t id = 4; id <= 5; ++id) {
    EXPECT_EQ(h.outcomes.at(id).status, Status::kJobFailed);
    EXPECT_NE(h.outcomes.at(id).body.find("wrong number of answers"), std::string::npos)
        << h.outcomes.at(id).body;
  }
  h.submit(6, word_count({"still serving"}));
  h.run();
  EXPECT_EQ(counts_of(h.outcomes.at(6)).at("serving"), 1u);
}

}  // namespace
}  // namespace mrd::server
