// Every row of docs/bad-input.md against the real server: the reply each bad input gets, and that
// the server still answers a normal job correctly afterwards.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cmath>

#include "protocol/limits.hpp"
#include "raw_jobs.hpp"

namespace mrd::testing {
namespace {

/// The check after every row: a fresh client gets a correct word count.
void expect_server_still_works(const ServerProcess& server) {
  RawClient client(server.port());
  const auto id = submit(client, word_count_request({"Still SERVING still"}));
  EXPECT_EQ(as_map(result_of(wait_for(client, id))),
            (std::map<std::string, std::uint64_t>{{"serving", 1}, {"still", 2}}));
}

/// Sends `frame`, returns the one reply.
RawReply ask(RawClient& client, const std::string& frame) {
  client.send(frame);
  auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no reply");
  return *reply;
}

std::string submit_frame(const protocol::SubmitRequest& request) {
  std::string frame;
  protocol::append_message(frame, 0, request);
  return frame;
}

/// The address-space cap of the rows' server: a lie that the server believed enough to reserve
/// memory for (8 GiB below) fails against it, instead of reserving pages it never touches,
/// which its resident memory would not show.
constexpr std::uint64_t kAddressSpaceMib = 4096;

class BadInput : public ::testing::Test {
 protected:
  ServerProcess server{{"--enable-test-jobs", "--idle-timeout", "2", "--request-timeout", "2",
                        "--max-frame-mib", "16"},
                       ProcessLimits{.address_space_mib = kAddressSpaceMib}};
  void TearDown() override { expect_server_still_works(server); }

  /// Checks the rows that promise "nothing queued": no job was accepted since the last call,
  /// by the server's own count.
  void expect_nothing_queued() {
    RawClient stats(server.port());
    const auto now = server_stats(stats).jobs_submitted;
    EXPECT_EQ(now, submitted_) << "a bad request was accepted as a job";
    submitted_ = now;
  }

 private:
  std::uint64_t submitted_ = 0;
};

TEST_F(BadInput, TruncatedHeaderThenCloseCostsNothing) {
  {
    RawClient client(server.port());
    client.send(bytes({0x01, 0x04}));
  }
  RawClient client(server.port());
  client.send(bytes({0x01, 0x04}));  // and one that stays: the request timeout closes it
  EXPECT_FALSE(client.read_reply(500ms));
  EXPECT_TRUE(client.closed_by_server(5s));
}

TEST_F(BadInput, TruncatedBodyThenCloseCostsNothing) {
  RawClient client(server.port());
  auto frame = submit_frame(word_count_request({"never finished"}));
  client.send(frame.substr(0, frame.size() / 2));
  EXPECT_FALSE(client.read_reply(300ms));
}

TEST_F(BadInput, LengthOverTheLimitIsRefusedAndClosed) {
  RawClient client(server.port());
  const auto reply = ask(client, bytes({0x00, 0x01, 0x00, 0x00, 0x01}));  // 16 MiB + 256
  EXPECT_EQ(status_name(reply.status), "frame-too-large");
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(BadInput, ALengthShorterThanTheBodyIsABadRequest) {
  RawClient client(server.port());
  // FETCH whose header says 2 bytes but 4 follow: the 2 bytes do not decode; the other 2 start
  // the next frame, which the rest of this request completes into a LIST.
  const auto reply = ask(client, bytes({0x01, 0x02, 0, 0, 0, 7, 0, 0x04, 0}));
  EXPECT_EQ(status_name(reply.status), "bad-request");
  client.send(bytes({0, 0, 0}));
  const auto next = client.read_reply();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, kOk);
}

TEST_F(BadInput, ACountThatLiesIsABadRequestWithoutAllocating) {
  RawClient client(server.port());
  const auto rss_before = server.rss_kib();
  // words/sum, default options, no key, then the document count: 2^60 (more than any machine
  // has), then 2^28 (8 GiB of document entries: what overcommit would grant, and the cap not).
  for (const std::uint64_t lie : {std::uint64_t{1} << 60, std::uint64_t{1} << 28}) {
    std::string body = bytes({5, 0, 0, 0, 0, 0, 0, 0}) + "words" + bytes({3, 0, 0, 0, 0, 0, 0, 0}) +
                       "sum" + std::string(28, '\0') + bytes({0});
    for (int i = 0; i < 8; ++i)
      body.push_back(static_cast<char>((lie >> (8 * i)) & 0xff));
    std::string frame;
    protocol::append_frame(frame, 0, body);
    const auto reply = ask(client, frame);
    EXPECT_EQ(status_name(reply.status), "bad-request") << "a count of " << lie;
    EXPECT_NE(error_text(reply).find("count larger than the body holds"), std::string::npos)
        << error_text(reply);
  }
  expect_nothing_queued();
  // The cap catches memory reserved for a lie; resident memory, memory touched for it.
  if (!kSanitized) {
    EXPECT_LT(server.rss_kib(), rss_before + 10 * 1024);
  }
}

TEST_F(BadInput, UnknownOpcodeIsAnErrorAndTheConnectionGoesOn) {
  RawClient client(server.port());
  EXPECT_EQ(status_name(ask(client, bytes({0xff, 0, 0, 0, 0})).status), "unknown-opcode");
  EXPECT_EQ(ask(client, bytes({0x04, 0, 0, 0, 0})).status, kOk);
}

TEST_F(BadInput, UndecodableBodyIsABadRequest) {
  RawClient client(server.port());
  std::string frame;
  protocol::append_frame(frame, 0, "this is not a submit body");
  EXPECT_EQ(status_name(ask(client, frame).status), "bad-request");
  expect_nothing_queued();
}

TEST_F(BadInput, UnknownMapperReducerPairOrInputIsABadJob) {
  RawClient client(server.port());
  for (const auto& request :
       std::vector<protocol::SubmitRequest>{{"grep", "sum", {}, protocol::Documents{}},
                                            {"words", "concat", {}, protocol::Documents{}},
                                            {"words", "postings", {}, protocol::Documents{}},
                                            {"numbers", "stats", {}, protocol::Documents{}},
                                            {"\xff\xfe", "sum", {}, protocol::Documents{}}}) {
    EXPECT_EQ(status_name(ask(client, submit_frame(request)).status), "bad-job") << request.mapper;
  }
  expect_nothing_queued();
}

TEST_F(BadInput, MismatchedMatrixShapesFailTheJob) {
  RawClient client(server.port());
  const auto id = submit(
      client, {"matmul",
               "rows",
               {},
               protocol::MatrixPair{{2, 3, std::vector<double>(6, 1)}, {2, 2, {1, 2, 3, 4}}}});
  const auto reply = wait_for(client, id);
  EXPECT_EQ(status_name(reply.status), "job-failed");
  EXPECT_NE(error_text(reply).find("cannot multiply 2x3 by 2x2"), std::string::npos);
}

TEST_F(BadInput, AMatrixWhoseValuesDoNotMatchItsShapeIsABadRequest) {
  RawClient client(server.port());
  const auto reply = ask(
      client, submit_frame({"matmul", "rows", {}, protocol::MatrixPair{{2, 2, {1, 2, 3}}, {}}}));
  EXPECT_EQ(status_name(reply.status), "bad-request");
  expect_nothing_queued();
}

TEST_F(BadInput, HugeDimensionsAreABadRequest) {
  RawClient client(server.port());
  const auto side = protocol::kMaxMatrixSide + 1;
  const auto reply =
      ask(client, submit_frame({"matmul", "rows", {}, protocol::MatrixPair{{side, 1, {}}, {}}}));
  EXPECT_EQ(status_name(reply.status), "bad-request");
  EXPECT_NE(error_text(reply).find("matrix side"), std::string::npos);
  // Within the side limit, declared with no values: refused by the value count. 2^15 x 2^15 is
  // 8 GiB of doubles, which the address-space cap would refuse had the server reserved it.
  for (const std::uint64_t big :
       {std::uint64_t{protocol::kMaxMatrixSide}, std::uint64_t{1} << 15}) {
    const auto refused =
        ask(client, submit_frame({"matmul", "rows", {}, protocol::MatrixPair{{big, big, {}}, {}}}));
    EXPECT_EQ(status_name(refused.status), "bad-request") << big << "x" << big;
    EXPECT_NE(error_text(refused).find("different number of values"), std::string::npos)
        << error_text(refused);
  }
  expect_nothing_queued();
}

TEST_F(BadInput, AProductFarLargerThanItsFactorsFailsBeforeAllocating) {
  RawClient client(server.port());
  const auto rss_before = server.rss_kib();
  const auto side = protocol::kMaxMatrixSide;
  auto id =
      submit(client, {"matmul", "rows", {}, protocol::MatrixPair{{side, 0, {}}, {0, side, {}}}});
  EXPECT_EQ(status_name(wait_for(client, id).status), "job-failed");
  EXPECT_EQ(error_text(wait_for(client, id)),
            "the product of 1048576x0 by 0x1048576 would hold 1099511627776 values; at most "
            "33554432 (256 MiB) are allowed");
  // A column times a row, 2^15 each: a product of 8 GiB, which the address-space cap would
  // refuse had the server reserved it before checking.
  const std::uint64_t n = 1u << 15;
  id = submit(client, {"matmul",
                       "rows",
                       {},
                       protocol::MatrixPair{{n, 1, std::vector<double>(n, 1.0)},
                                            {1, n, std::vector<double>(n, 2.0)}}});
  EXPECT_EQ(error_text(wait_for(client, id)),
            "the product of 32768x1 by 1x32768 would hold 1073741824 values; at most 33554432 "
            "(256 MiB) are allowed");
  if (!kSanitized) {
    EXPECT_LT(server.rss_kib(), rss_before + 64 * 1024);
  }
}

TEST_F(BadInput, EmptyInputsGiveEmptyResults) {
  RawClient client(server.port());
  auto id = submit(client, {"words", "sum", {}, protocol::Documents{}});
  EXPECT_TRUE(std::get<protocol::Counts>(result_of(wait_for(client, id))).entries.empty());
  id = submit(client, {"words", "sum", {}, protocol::Documents{{{"", ""}}}});
  EXPECT_TRUE(std::get<protocol::Counts>(result_of(wait_for(client, id))).entries.empty());
  id = submit(client, {"numbers", "stats", {}, protocol::Numbers{}});
  const auto stats = std::get<protocol::Statistics>(result_of(wait_for(client, id)));
  EXPECT_EQ(stats.count, 0u);
  EXPECT_TRUE(std::isnan(stats.mean));
  id = submit(client, {"matmul", "rows", {}, protocol::MatrixPair{{0, 0, {}}, {0, 0, {}}}});
  EXPECT_EQ(std::get<protocol::Matrix>(result_of(wait_for(client, id))),
            (protocol::Matrix{0, 0, {}}));
}

TEST_F(BadInput, NanFailsTheJobInfinitiesAreNumbers) {
  RawClient client(server.port());
  auto id = submit(client, {"numbers", "stats", {}, protocol::Numbers{{1, NAN, 3}}});
  auto reply = wait_for(client, id);
  EXPECT_EQ(status_name(reply.status), "job-failed");
  EXPECT_EQ(error_text(reply), "input contains NaN at position 1");
  id = submit(client, {"numbers", "stats", {}, protocol::Numbers{{1, INFINITY, 3}}});
  const auto stats = std::get<protocol::Statistics>(result_of(wait_for(client, id)));
  EXPECT_EQ(stats.max, INFINITY);
  EXPECT_EQ(stats.median, 3);
}

TEST_F(BadInput, NonUtf8BytesAreWordsAndNames) {
  RawClient client(server.port());
  const auto id = submit(
      client, {"words", "sum", {}, protocol::Documents{{{"\xff\xfe", "\xff\xfe AB\x80 ab\x80"}}}});
  EXPECT_EQ(as_map(result_of(wait_for(client, id))),
            (std::map<std::string, std::uint64_t>{{"\xff\xfe", 1}, {"ab\x80", 2}}));
}

TEST_F(BadInput, AClientThatSendsNothingIsClosedAfterTheIdleTimeout) {
  RawClient client(server.port());
  EXPECT_TRUE(client.closed_by_server(5s));
}

TEST_F(BadInput, AClientSendingAByteASecondIsClosedAfterTheRequestTimeout) {
  RawClient client(server.port());
  const auto frame = submit_frame(word_count_request({"trickle"}));
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (std::size_t i = 0; i < frame.size() && !closed; ++i) {
    try {
      client.send(frame.substr(i, 1));
    } catch (const std::runtime_error&) {
      closed = true;
    }
    closed = closed || client.closed_by_server(400ms);
  }
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

TEST(Timeouts, TheRequestTimeoutClosesATricklingClientEvenWithALongIdleTimeout) {
  ServerProcess server({"--idle-timeout", "60", "--request-timeout", "1"});
  RawClient client(server.port());
  std::this_thread::sleep_for(300ms);  // the connection now waits under the 60 s idle deadline
  const auto start = std::chrono::steady_clock::now();
  client.send(bytes({0x01, 0x04}));  // a request begins, and never ends
  EXPECT_TRUE(client.closed_by_server(10s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

// One timer sweeps every connection's deadline: each connection is closed at its own deadline,
// and only it, while a client that keeps talking is answered throughout.
TEST(Timeouts, EachConnectionIsClosedAtItsOwnDeadlineWhileOthersAreServed) {
  ServerProcess server({"--idle-timeout", "5", "--request-timeout", "1"});
  constexpr std::uint64_t kIdle = 200;
  std::vector<std::unique_ptr<RawClient>> idle;
  for (std::uint64_t i = 0; i < kIdle; ++i)
    idle.push_back(std::make_unique<RawClient>(server.port()));
  RawClient trickler(server.port());
  trickler.send(bytes({0x05, 0}));  // a STATS header begun, never finished: 1 s to finish it
  RawClient busy(server.port());
  // The busy client asks for STATS every ~200 ms, each request in two sends (two reads on the
  // server, within the request timeout), until every idle connection is gone (5 s) or 20 s pass.
  const std::string stats = bytes({0x05, 0, 0, 0, 0});
  std::optional<std::uint64_t> idle_open_when_trickler_closed;
  std::uint64_t open = 0;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  do {
    busy.send(stats.substr(0, 2));
    std::this_thread::sleep_for(100ms);
    busy.send(stats.substr(2));
    const auto reply = busy.read_reply(5s);
    ASSERT_TRUE(reply) << "the busy client was not answered";
    ASSERT_EQ(reply->status, kOk);
    open = protocol::decode<protocol::ServerStats>(reply->body).value.value().connections_open;
    if (!idle_open_when_trickler_closed && trickler.closed_by_server(5ms)) {
      idle_open_when_trickler_closed = 0;
      for (auto& client : idle)
        *idle_open_when_trickler_closed += client->closed_by_server(5ms) ? 0 : 1;
    }
    std::this_thread::sleep_for(100ms);
  } while (open > 1 && std::chrono::steady_clock::now() < give_up);

  ASSERT_TRUE(idle_open_when_trickler_closed) << "the request timeout did not close the trickler";
  // Closed 1 s after its request began, 4 s before the idle connections' deadline: they were
  // all still open then.
  EXPECT_EQ(*idle_open_when_trickler_closed, kIdle);
  EXPECT_EQ(open, 1u) << "the idle timeout did not close every idle connection";
  std::uint64_t closed = 0;
  for (auto& client : idle)
    closed += client->closed_by_server(1s) ? 1 : 0;
  EXPECT_EQ(closed, kIdle);
  EXPECT_FALSE(busy.closed_by_server(50ms));
  EXPECT_EQ(server_stats(busy).connections_open, 1u);
}

TEST(Timeouts, AClientThatResetsMidRequestIsForgottenAtOnce) {
  ServerProcess server({"--idle-timeout", "60"});
  auto open_connections = [&] {
    RawClient probe(server.port());
    probe.send(bytes({0x05, 0, 0, 0, 0}));
    return protocol::decode<protocol::ServerStats>(probe.read_reply()->body)
        .value.value()
        .connections_open;
  };
  {
    RawClient client(server.port());
    client.send(bytes({0x00, 0x10, 0, 0, 0, 1, 2, 3}));  // half a SUBMIT
    // Accepted (the probe counts itself too) before it goes.
    while (open_connections() < 2)
      std::this_thread::sleep_for(5ms);
    client.reset();  // RST instead of FIN
  }
  // Forgotten when the reset arrives: well before the 60 s idle timeout would close it.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (open_connections() > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(open_connections(), 1u) << "the reset connection is still counted";
}

TEST_F(BadInput, AClientThatNeverReadsCannotMakeTheServerBuffer) {
  // Every request this test makes besides the hog's, so that the hog's can be told from STATS.
  std::uint64_t others = 0;
  const auto stats_now = [&] {
    RawClient probe(server.port());
    ++others;
    return server_stats(probe);
  };
  RawClient setup(server.port());
  // A result of ~0.5 MB, then 5,000 FETCHes of it in one go from a client that never reads.
  const auto id = submit(setup, word_count_request({random_text(100000, 3, 30000)}));
  const auto result_bytes = wait_for(setup, id).body.size();
  ASSERT_GT(result_bytes, 300000u);
  const auto rss_before = server.rss_kib();
  const auto before = stats_now();  // counts itself
  RawClient hog(server.port());
  std::string fetches;
  for (int i = 0; i < 5000; ++i)
    protocol::append_message(fetches, 1, protocol::JobId{id});
  hog.send(fetches);  // 45 KB of requests asking for ~2.5 GB of replies

  // Others are served meanwhile: a job, submitted and fetched until it is done.
  RawClient other(server.port());
  const auto job = submit(other, word_count_request({"Still SERVING still"}));
  ++others;
  for (;;) {
    other.send_message(Opcode::kFetch, protocol::JobId{job});
    ++others;
    const auto reply = other.read_reply();
    ASSERT_TRUE(reply);
    if (reply->status == kOk) break;
    ASSERT_EQ(status_name(reply->status), "pending");
    std::this_thread::sleep_for(2ms);
  }

  // The server gives up on the stalled client after the idle timeout (2 s here), as on the idle
  // `setup` and `other`. Asked from the server's side: reading from `hog` to see the close would
  // drain the replies it must not read.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  auto after = stats_now();
  while (after.connections_open > 1 && std::chrono::steady_clock::now() < deadline)
    after = stats_now();
  EXPECT_EQ(after.connections_open, 1u) << "the idle timeout should close a client that stalls";

  // The hog's requests the server took: as many as its reply queue holds (1 MiB of bytes of its
  // own, or 1024 pieces; a FETCH result is two: its header and the shared result), not 5,000.
  const auto hog_answered = after.requests_total - before.requests_total - (others - 1);
  std::printf("[ figures ] the server took %llu of the 5000 FETCHes of a client that never reads\n",
              static_cast<unsigned long long>(hog_answered));
  EXPECT_GT(hog_answered, 0u);
  EXPECT_LE(hog_answered, 512u) << "the server kept reading from a client that does not read";
  // And it shares the result with each reply rather than copying it.
  EXPECT_LT(server.peak_rss_kib(), rss_before + 64 * 1024) << "the server buffered the replies";
}

TEST_F(BadInput, ThousandsOfIdleConnectionsDoNotStarveAWorkingClient) {
  RawClient watcher(server.port());
  const auto rss_before = server.rss_kib();
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 2000; ++i)
    idle.push_back(std::make_unique<RawClient>(server.port()));
  // Every one of them accepted (the kernel queues connections the server has not taken yet).
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (server_stats(watcher).connections_open < 2001 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(server_stats(watcher).connections_open, 2001u);
  // A working client is served while all of them stay open...
  expect_server_still_works(server);
  EXPECT_EQ(server_stats(watcher).connections_open, 2001u);
  // ...and they cost no read buffer: 2,000 buffers of the 16 KiB a read takes would be 31 MiB;
  // what they do cost (their coroutines, the kernel's sockets aside) is under 2 KiB each. (The
  // sanitizers' shadow memory makes every allocation cost several times that: the figure holds
  // for the plain build, as in budget_test.cpp.)
  if (!kSanitized) {
    EXPECT_LT(server.rss_kib(), rss_before + 2000 * 8) << "KiB, after 2,000 idle connections";
  }
}

TEST_F(BadInput, MemoryStaysFlatAcrossALongRunOfBadInput) {
  auto run_bad_input = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      RawClient client(server.port());
      std::string burst = bytes({0x2a, 0, 0, 0, 0}) + bytes({0x01, 0x03, 0, 0, 0, 1, 2, 3});
      protocol::append_frame(burst, 0, "garbage");
      protocol::append_message(burst, 0,
                               protocol::SubmitRequest{"nope", "sum", {}, protocol::Documents{}});
      client.send(burst);
      for (int r = 0; r < 4; ++r)
        ASSERT_TRUE(client.read_reply());
      client.send(bytes({0x00, 0xff, 0xff, 0xff, 0x7f}));  // too large: closes
      ASSERT_TRUE(client.read_reply());
    }
  };
  run_bad_input(300);  // warm up: allocator arenas, logs
  const auto before = server.rss_kib();
  run_bad_input(3000);
  EXPECT_LT(server.rss_kib(), before + 4 * 1024) << "grew from " << before << " KiB";
}

}  // namespace
}  // namespace mrd::testing
