// Tenants (mrd --auth-file): every job belongs to the tenant that submitted it. Another tenant's
// job answers exactly as a job that is no longer kept; LIST shows the caller's jobs (an admin's:
// everyone's, with their tenants); idempotency keys and queue limits are each tenant's own; the
// scheduler takes turns between tenants first; and all of it survives a restart. Against the real
// binaries, in raw bytes where the exact reply matters.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "tests/auth_file.hpp"

namespace {

using namespace mrd::testing;
using mrd::protocol::Opcode;
using mrd::protocol::Status;
namespace protocol = mrd::protocol;

/// LIST with tenants: the jobs `client` may see.
std::vector<protocol::TenantJobSummary> list_jobs(RawClient& client) {
  client.send_message(Opcode::kList, protocol::ListRequest{protocol::kListWithTenants});
  const auto reply = client.read_reply();
  if (!reply || reply->status != kOk) throw std::runtime_error("LIST failed");
  auto decoded = protocol::decode<protocol::TenantJobList>(reply->body);
  if (!decoded) throw std::runtime_error("LIST reply: " + decoded.error);
  return decoded.value->jobs;
}

std::vector<std::uint32_t> ids_of(const std::vector<protocol::TenantJobSummary>& jobs) {
  std::vector<std::uint32_t> ids;
  for (const auto& job : jobs)
    ids.push_back(job.id);
  return ids;
}

/// A SUBMIT's reply (any status).
RawReply submit_reply(RawClient& client, const protocol::SubmitRequest& request) {
  client.send_message(Opcode::kSubmit, request);
  const auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no reply to SUBMIT");
  return *reply;
}

protocol::SubmitRequest slow_job(int milliseconds) {
  return {"test-slow", "sum", {}, protocol::Documents{{{std::to_string(milliseconds), "slow"}}}};
}

TEST(Tenants, AnotherTenantsJobAnswersExactlyAsAJobThatIsNoLongerKept) {
  AuthFile tokens;
  // Retention of 1 MiB: a result bigger than that is evicted as soon as the next job finishes.
  ServerProcess server({"--auth-file", tokens.path(), "--max-retained-mib", "1"});
  auto alice = connect_as(server, kAliceToken);
  auto bob = connect_as(server, kBobToken);

  // Alice's first job is evicted by her second: what she hears of it is what "no longer kept"
  // sounds like.
  std::string many_words;
  for (int i = 0; i < 80000; ++i)
    many_words += "word" + std::to_string(i) + " ";
  const auto evicted = submit(*alice, word_count_request({many_words}));
  ASSERT_EQ(wait_for(*alice, evicted).status, kOk);
  const auto kept = submit(*alice, word_count_request({"to be or not to be"}));
  ASSERT_EQ(wait_for(*alice, kept).status, kOk);
  EXPECT_EQ(ask_about(*alice, Opcode::kFetch, evicted), not_kept(evicted));

  // Bob hears exactly that of Alice's job that is kept, whatever he asks, and changes nothing.
  for (const auto opcode : {Opcode::kFetch, Opcode::kStatus, Opcode::kCancel}) {
    EXPECT_EQ(ask_about(*bob, opcode, kept), not_kept(kept)) << protocol::to_string(opcode);
    EXPECT_EQ(ask_about(*bob, opcode, evicted), not_kept(evicted)) << protocol::to_string(opcode);
  }
  const auto result = wait_for(*alice, kept);
  EXPECT_EQ(as_map(result_of(result)), reference_word_count({"to be or not to be"}));
  // An id never handed out is unknown to everyone alike.
  bob->send_message(Opcode::kFetch, protocol::JobId{kept + 100});
  const auto unknown = bob->read_reply();
  ASSERT_TRUE(unknown);
  EXPECT_EQ(status_name(unknown->status), "unknown-job");
}

TEST(Tenants, AnotherTenantsRunningJobCannotBeCancelledOrWatched) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path(), "--enable-test-jobs"});
  auto alice = connect_as(server, kAliceToken);
  auto bob = connect_as(server, kBobToken);
  const auto running = submit(*alice, slow_job(300));
  EXPECT_EQ(ask_about(*bob, Opcode::kCancel, running), not_kept(running));
  EXPECT_EQ(ask_about(*bob, Opcode::kStatus, running), not_kept(running));
  // Still Alice's, and it finishes.
  EXPECT_EQ(status_name(wait_for(*alice, running).status), "ok");
}

TEST(Tenants, ListShowsTheCallersJobsAndAnAdminEveryonesWithTheirTenant) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  auto alice = connect_as(server, kAliceToken);
  auto bob = connect_as(server, kBobToken);
  auto ops = connect_as(server, kOpsToken);
  const auto a1 = submit(*alice, word_count_request({"a"}));
  const auto b1 = submit(*bob, word_count_request({"b"}));
  const auto a2 = submit(*alice, word_count_request({"c"}));
  for (const auto id : {a1, a2})
    ASSERT_EQ(wait_for(*alice, id).status, kOk);
  ASSERT_EQ(wait_for(*bob, b1).status, kOk);

  EXPECT_EQ(ids_of(list_jobs(*alice)), (std::vector<std::uint32_t>{a1, a2}));
  EXPECT_EQ(ids_of(list_jobs(*bob)), (std::vector<std::uint32_t>{b1}));
  for (const auto& job : list_jobs(*alice))
    EXPECT_EQ(job.tenant, "alice");
  const auto everyone = list_jobs(*ops);
  ASSERT_EQ(ids_of(everyone), (std::vector<std::uint32_t>{a1, b1, a2}));
  EXPECT_EQ(everyone[0].tenant, "alice");
  EXPECT_EQ(everyone[1].tenant, "bob");
  EXPECT_EQ(everyone[2].tenant, "alice");

  // Version 1's LIST (an empty body) is scoped the same way, in its own layout.
  alice->send(bytes({0x04, 0, 0, 0, 0}));
  const auto reply = alice->read_reply();
  ASSERT_TRUE(reply);
  const auto v1 = protocol::decode<protocol::JobList>(reply->body);
  ASSERT_TRUE(v1) << v1.error;
  ASSERT_EQ(v1.value->jobs.size(), 2u);
  EXPECT_EQ(v1.value->jobs[1].id, a2);

  // mrctl shows the tenants to an admin, and only the caller's jobs to a user.
  std::string output;
  const std::string mrctl =
      mrctl_binary() + " --server 127.0.0.1:" + std::to_string(server.port()) + " list";
  ASSERT_EQ(run_command("MRD_TOKEN=" + std::string(kOpsToken) + " " + mrctl, &output), 0) << output;
  EXPECT_NE(output.find("TENANT"), std::string::npos) << output;
  EXPECT_NE(output.find("bob"), std::string::npos) << output;
  ASSERT_EQ(run_command("MRD_TOKEN=" + std::string(kBobToken) + " " + mrctl + " --json", &output),
            0)
      << output;
  EXPECT_EQ(output, "[\n  {\"id\": " + std::to_string(b1) +
                        ", \"state\": \"done\", \"tenant\": \"bob\"}\n]\n");
}

TEST(Tenants, AnAdminMayFetchAndCancelAnyJob) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  auto alice = connect_as(server, kAliceToken);
  auto ops = connect_as(server, kOpsToken);
  const auto id = submit(*alice, word_count_request({"x y x"}));
  EXPECT_EQ(as_map(result_of(wait_for(*ops, id))), reference_word_count({"x y x"}));
  ops->send_message(Opcode::kCancel, protocol::JobId{id});
  const auto cancelled = ops->read_reply();
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->status, kOk);
  EXPECT_EQ(status_name(wait_for(*alice, id).status), "job-cancelled");
}

TEST(Tenants, IdempotencyKeysAreEachTenantsOwn) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  auto alice = connect_as(server, kAliceToken);
  auto bob = connect_as(server, kBobToken);
  auto alices_request = word_count_request({"alice's words"});
  alices_request.idempotency_key = "nightly-report";
  auto bobs_request = word_count_request({"bob's other words"});
  bobs_request.idempotency_key = "nightly-report";

  const auto alices = submit(*alice, alices_request);
  // The same key from Bob, with another request: his own job, not a clash with Alice's.
  const auto bobs = submit(*bob, bobs_request);
  EXPECT_NE(bobs, alices);
  // Each resend finds its own tenant's job.
  EXPECT_EQ(submit(*alice, alices_request), alices);
  EXPECT_EQ(submit(*bob, bobs_request), bobs);
  // Bob's key is bound to his request, not to Alice's: her request under it is refused.
  EXPECT_EQ(status_name(submit_reply(*bob, alices_request).status), "bad-request");
  // And Alice's very request with her key, sent by an admin, is a new job of the admin's: a key
  // tells nobody about another tenant's jobs, whatever their role.
  auto ops = connect_as(server, kOpsToken);
  const auto admins = submit(*ops, alices_request);
  EXPECT_NE(admins, alices);
  EXPECT_NE(admins, bobs);
  EXPECT_EQ(as_map(result_of(wait_for(*alice, alices))), reference_word_count({"alice's words"}));
}

TEST(Tenants, OneTenantsQueueLimitLeavesOthersServed) {
  AuthFile tokens;
  // Under an address-space cap: a tenant that floods SUBMITs cannot grow the server past it.
  ServerProcess server({"--auth-file", tokens.path(), "--enable-test-jobs",
                        "--max-queued-jobs-per-tenant", "3", "--workers", "1"},
                       ProcessLimits{.address_space_mib = 2048});
  auto alice = connect_as(server, kAliceToken);
  auto bob = connect_as(server, kBobToken);
  std::vector<std::uint32_t> alices;
  for (int i = 0; i < 3; ++i)
    alices.push_back(submit(*alice, slow_job(60000)));

  // A flood of 200 more, pipelined: every one refused, with the reason.
  std::string flood;
  for (int i = 0; i < 200; ++i)
    protocol::append_message(flood, static_cast<std::uint8_t>(Opcode::kSubmit), slow_job(60000));
  alice->send(flood);
  for (int i = 0; i < 200; ++i) {
    const auto reply = alice->read_reply();
    ASSERT_TRUE(reply) << i;
    ASSERT_EQ(status_name(reply->status), "queue-full") << i;
    if (i == 0) {
      EXPECT_EQ(error_text(*reply),
                "queue full: tenant 'alice' has 3 jobs waiting or running, its most (mrd "
                "--max-queued-jobs-per-tenant); try again once some have finished");
    }
  }
  // Bob is served meanwhile: the limit is Alice's, not the server's.
  const auto bobs = submit_reply(*bob, word_count_request({"bob"}));
  EXPECT_EQ(status_name(bobs.status), "ok") << error_text(bobs);
  // A cancelled job makes room for the next.
  ASSERT_EQ(ask_about(*alice, Opcode::kCancel, alices[0]).substr(0, 1), std::string(1, '\0'));
  const auto next = submit_reply(*alice, word_count_request({"room again"}));
  EXPECT_EQ(status_name(next.status), "ok") << error_text(next);

  auto ops = connect_as(server, kOpsToken);
  EXPECT_EQ(server_stats(*ops).jobs_submitted, 5u);  // alice's 3 and 1, bob's 1
  for (const auto id : alices)
    ask_about(*alice, Opcode::kCancel, id);  // the server stops without waiting for them
}

TEST(Tenants, OneTenantsThousandJobsDoNotStarveAnothersOne) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path(), "--enable-test-jobs", "--workers", "2",
                        "--drain-seconds", "0"});
  auto alice = connect_as(server, kAliceToken);
  auto bob = connect_as(server, kBobToken);
  // Alice: a thousand jobs of one 100 ms task each, 50 s of work for two workers, all queued
  // before Bob's one arrives.
  constexpr int kAlicesJobs = 1000;
  std::string burst;
  for (int i = 0; i < kAlicesJobs; ++i)
    protocol::append_message(burst, static_cast<std::uint8_t>(Opcode::kSubmit), slow_job(100));
  alice->send(burst);
  for (int i = 0; i < kAlicesJobs; ++i) {
    const auto reply = alice->read_reply();
    ASSERT_TRUE(reply && reply->status == kOk) << i;
  }
  const auto finished = [&] {
    const auto jobs = list_jobs(*alice);
    return std::count_if(jobs.begin(), jobs.end(),
                         [](const auto& job) { return protocol::is_finished(job.state); });
  };
  const auto before = finished();
  const auto bobs = submit(*bob, slow_job(100));
  ASSERT_EQ(status_name(wait_for(*bob, bobs).status), "ok");
  // Bob's job took the next turn: it waited for the tasks already running, not for Alice's
  // thousand. Taking turns between jobs alone, it would have come after all of them. (The margin
  // is wide: however slow the machine, Alice's jobs finish two per 100 ms at most.)
  const auto during = finished() - before;
  EXPECT_LT(during, 100) << "Alice's jobs finished while Bob's waited: " << during;
}

TEST(Tenants, JobsKeepTheirTenantAcrossARestart) {
  AuthFile tokens;
  TempDir data;
  const std::vector<std::string> args{"--auth-file", tokens.path(), "--data-dir",
                                      data.path().string()};
  std::uint32_t id = 0;
  auto request = word_count_request({"kept across a restart"});
  request.idempotency_key = "once";
  {
    ServerProcess server(args);
    auto alice = connect_as(server, kAliceToken);
    id = submit(*alice, request);
    ASSERT_EQ(wait_for(*alice, id).status, kOk);
    server.stop(SIGKILL);
  }
  ServerProcess server(args);
  auto alice = connect_as(server, kAliceToken);
  auto bob = connect_as(server, kBobToken);
  auto ops = connect_as(server, kOpsToken);
  EXPECT_EQ(ask_about(*bob, Opcode::kFetch, id), not_kept(id));
  EXPECT_EQ(as_map(result_of(wait_for(*alice, id))),
            reference_word_count({"kept across a restart"}));
  EXPECT_EQ(submit(*alice, request), id);  // her key is still hers
  EXPECT_NE(submit(*bob, request), id);    // and still not Bob's
  const auto everyone = list_jobs(*ops);
  ASSERT_FALSE(everyone.empty());
  EXPECT_EQ(everyone[0].id, id);
  EXPECT_EQ(everyone[0].tenant, "alice");
}

}  // namespace
