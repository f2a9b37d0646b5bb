// Tokens (mrd --auth-file): AUTH, the requests refused before it, the admin-only STATS, failed
// AUTHs slowed and cut off, SIGHUP, protected mode, and tokens kept out of logs and the database.
// Against the real binaries, in raw bytes where the exact reply matters.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/auth_file.hpp"

namespace {

using namespace mrd::testing;
using mrd::protocol::Opcode;
using mrd::protocol::Status;
namespace protocol = mrd::protocol;

/// Runs `command` in sh; its exit code, with its stdout and stderr in `output`.
int run(const std::string& command, std::string& output) {
  return run_command(command, &output);
}

/// Sends a request with an empty body (LIST, STATS) and returns the reply.
RawReply ask_empty(RawClient& client, Opcode opcode) {
  client.send(bytes({static_cast<int>(opcode), 0, 0, 0, 0}));
  auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no reply");
  return *reply;
}

TEST(Auth, HelloSaysAuthIsRequiredAndVersionOneStillGetsItsOwnLayout) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  RawClient client(server.port());
  client.send_message(Opcode::kHello, protocol::Hello{2, ""});
  auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->status, kOk);
  const auto hello = protocol::decode<protocol::HelloReply>(reply->body);
  ASSERT_TRUE(hello) << hello.error;
  EXPECT_EQ(hello.value->protocol_version, 2);
  EXPECT_EQ(hello.value->flags, protocol::kHelloAuthRequired);

  client.send_message(Opcode::kHello, protocol::Hello{1, ""});
  reply = client.read_reply();
  ASSERT_TRUE(reply);
  const auto v1 = protocol::decode<protocol::Hello>(reply->body);
  ASSERT_TRUE(v1) << v1.error;
  EXPECT_EQ(v1.value->protocol_version, 1);

  // Without --auth-file the flag is clear.
  ServerProcess open_server;
  RawClient other(open_server.port());
  other.send_message(Opcode::kHello, protocol::Hello{2, ""});
  reply = other.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(protocol::decode<protocol::HelloReply>(reply->body).value->flags, 0);
}

TEST(Auth, EveryRequestButHelloAndAuthWaitsForAuth) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  RawClient client(server.port());
  for (const auto opcode : {Opcode::kFetch, Opcode::kStatus, Opcode::kCancel}) {
    client.send_message(opcode, protocol::JobId{1});
    const auto reply = client.read_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(status_name(reply->status), "not-authenticated") << int(opcode);
    EXPECT_NE(error_text(*reply).find("--token-file"), std::string::npos) << error_text(*reply);
  }
  EXPECT_EQ(status_name(ask_empty(client, Opcode::kList).status), "not-authenticated");
  EXPECT_EQ(status_name(ask_empty(client, Opcode::kStats).status), "not-authenticated");
  // The connection is still usable: AUTH, and then everything works.
  EXPECT_EQ(authenticate(client, kAliceToken).status, kOk);
  EXPECT_EQ(ask_empty(client, Opcode::kList).status, kOk);
}

TEST(Auth, ASubmitBeforeAuthIsRefusedFromItsHeaderAndCostsNothing) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  RawClient client(server.port());
  // A header announcing 300 MiB, and a few bytes: refused at once, the body never read.
  client.send(bytes({0x00, 0x00, 0x00, 0xc0, 0x12}) + std::string(1000, 'x'));
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "not-authenticated");
  EXPECT_NE(error_text(*reply).find("closing the connection"), std::string::npos);
  EXPECT_TRUE(client.closed_by_server());
  // Nothing was accepted.
  RawClient ops(server.port());
  ASSERT_EQ(authenticate(ops, kOpsToken).status, kOk);
  ops.send(std::string("\x05\0\0\0\0", 5));
  const auto stats = ops.read_reply();
  ASSERT_TRUE(stats);
  EXPECT_EQ(protocol::decode<protocol::ServerStats>(stats->body).value->jobs_submitted, 0u);
}

TEST(Auth, AGoodTokenNamesItsTenantAndRoleAndStatsIsForAdmins) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  RawClient alice(server.port());
  auto reply = authenticate(alice, kAliceToken);
  ASSERT_EQ(reply.status, kOk) << error_text(reply);
  auto identity = protocol::decode<protocol::AuthReply>(reply.body);
  ASSERT_TRUE(identity) << identity.error;
  EXPECT_EQ(identity.value->tenant, "alice");
  EXPECT_EQ(identity.value->role, protocol::Role::kUser);
  const auto id = submit(alice, word_count_request({"a b a"}));
  EXPECT_EQ(as_map(result_of(wait_for(alice, id))),
            (std::map<std::string, std::uint64_t>{{"a", 2}, {"b", 1}}));
  reply = ask_empty(alice, Opcode::kStats);
  EXPECT_EQ(status_name(reply.status), "forbidden");
  EXPECT_NE(error_text(reply).find("admin"), std::string::npos) << error_text(reply);

  RawClient ops(server.port());
  reply = authenticate(ops, kOpsToken);
  ASSERT_EQ(reply.status, kOk);
  EXPECT_EQ(protocol::decode<protocol::AuthReply>(reply.body).value->role, protocol::Role::kAdmin);
  EXPECT_EQ(ask_empty(ops, Opcode::kStats).status, kOk);
}

TEST(Auth, WrongEmptyAndHugeTokensAreRefusedSlowlyThenCutOff) {
  AuthFile tokens;
  // Under an address-space cap: a token the server tried to hold would fail against it.
  ServerProcess server({"--auth-file", tokens.path()}, ProcessLimits{.address_space_mib = 2048});
  RawClient guesser(server.port());
  const std::string wrong = "not-" + std::string(kAliceToken);
  auto reply = authenticate(guesser, wrong);
  EXPECT_EQ(status_name(reply.status), "auth-failed");
  reply = authenticate(guesser, "");
  EXPECT_EQ(status_name(reply.status), "auth-failed");
  EXPECT_EQ(status_name(ask_empty(guesser, Opcode::kList).status), "not-authenticated");
  // The third failure on one connection is the last.
  reply = authenticate(guesser, std::string(kAliceToken) + " ");
  EXPECT_EQ(status_name(reply.status), "auth-failed");
  EXPECT_NE(error_text(reply).find("closing the connection"), std::string::npos);
  EXPECT_TRUE(guesser.closed_by_server());

  // A token over AUTH's 1 KiB limit is no token: FRAME_TOO_LARGE, from the header alone. (4 KiB:
  // sent whole before the server can refuse it, so that its closing cannot fail our send.)
  RawClient huge(server.port());
  huge.send(auth_frame(std::string(4 << 10, 't')));
  reply = *huge.read_reply();
  EXPECT_EQ(status_name(reply.status), "frame-too-large");
  EXPECT_TRUE(huge.closed_by_server());
  // So is a header that claims a 4 GiB token and sends none of it: refused before any byte of
  // the body is awaited, let alone allocated.
  RawClient liar(server.port());
  liar.send(bytes({static_cast<int>(Opcode::kAuth), 0xff, 0xff, 0xff, 0xff}));
  reply = *liar.read_reply();
  EXPECT_EQ(status_name(reply.status), "frame-too-large");
  EXPECT_TRUE(liar.closed_by_server());

  // Failures are logged with the peer, never with the token; good tokens still work.
  RawClient alice(server.port());
  EXPECT_EQ(authenticate(alice, kAliceToken).status, kOk);
  const auto log = server.log();
  EXPECT_NE(log.find("AUTH from 127.0.0.1:"), std::string::npos) << log;
  EXPECT_EQ(log.find(kAliceToken), std::string::npos);
  EXPECT_EQ(log.find("not-alice"), std::string::npos);
}

TEST(Auth, SighupRevokesForNewAuthsAndLeavesAuthenticatedConnectionsAlone) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  RawClient before(server.port());
  ASSERT_EQ(authenticate(before, kAliceToken).status, kOk);

  tokens.write({{"ops", "admin", kOpsToken}});  // alice's line is gone
  ::kill(server.pid(), SIGHUP);
  // The reload is logged; a later AUTH of alice fails (polled: the signal is asynchronous).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  RawReply reply;
  do {
    RawClient after(server.port());
    reply = authenticate(after, kAliceToken);
  } while (reply.status == kOk && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(status_name(reply.status), "auth-failed");
  EXPECT_NE(server.log().find("auth: 1 tokens from"), std::string::npos) << server.log();
  // The connection that authenticated before is still alice.
  EXPECT_EQ(ask_empty(before, Opcode::kList).status, kOk);
  RawClient ops(server.port());
  EXPECT_EQ(authenticate(ops, kOpsToken).status, kOk);

  // A file that no longer reads keeps the tokens in force.
  std::ofstream(tokens.path()) << "ops admin not-a-digest\n";
  ::kill(server.pid(), SIGHUP);
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (server.log().find("keeping the tokens read before") == std::string::npos &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  EXPECT_NE(server.log().find("keeping the tokens read before"), std::string::npos);
  RawClient still(server.port());
  EXPECT_EQ(authenticate(still, kOpsToken).status, kOk);
}

TEST(Auth, TokensAreNotStoredInTheDataDirectory) {
  AuthFile tokens;
  TempDir data;
  {
    ServerProcess server({"--auth-file", tokens.path(), "--data-dir", data.path().string()});
    RawClient alice(server.port());
    ASSERT_EQ(authenticate(alice, kAliceToken).status, kOk);
    const auto id = submit(alice, word_count_request({"kept"}));
    EXPECT_EQ(result_of(wait_for(alice, id)).index(), 0u);
  }
  for (const auto& file : std::filesystem::recursive_directory_iterator(data.path())) {
    if (!file.is_regular_file()) continue;
    std::ifstream in(file.path(), std::ios::binary);
    const std::string content((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(content.find(kAliceToken), std::string::npos) << file.path();
  }
}

TEST(Auth, ProtectedModeRefusesToListenBeyondLoopbackWithoutTokens) {
  std::string output;
  const std::string mrd = mrd_binary();
  EXPECT_EQ(run(mrd + " --listen 0.0.0.0:0", output), 8);
  EXPECT_NE(output.find("refusing to listen on 0.0.0.0 without --auth-file"), std::string::npos)
      << output;
  EXPECT_NE(output.find("--insecure"), std::string::npos) << output;
  // The TLS listener too.
  EXPECT_EQ(run(mrd + " --listen none --tls-listen 0.0.0.0:0 --tls-cert-file /dev/null "
                      "--tls-key-file /dev/null",
                output),
            8)
      << output;
  // --insecure and --auth-file each get past protected mode. Tests listen on loopback only, so
  // the address here is one no machine has (TEST-NET-1): the server gets as far as binding it,
  // and fails there (exit 3, cannot listen) instead of at protected mode (exit 8).
  AuthFile tokens;
  for (const std::string& past : {std::string(" --insecure"), " --auth-file " + tokens.path()}) {
    EXPECT_EQ(run(mrd + " --listen 192.0.2.1:0" + past, output), 3) << past << "\n" << output;
    EXPECT_NE(output.find("cannot listen on 192.0.2.1:0"), std::string::npos) << output;
  }
  // --insecure is said at every start, whatever the address.
  ServerProcess insecure({"--insecure"});
  EXPECT_NE(insecure.log().find("--insecure: no tokens are asked for"), std::string::npos)
      << insecure.log();
}

TEST(Auth, ABadAuthFileStopsTheServerWithTheLine) {
  TempDir dir;
  const auto path = (dir.path() / "tokens").string();
  std::string output;
  const std::string mrd = mrd_binary() + " --listen 127.0.0.1:0 --auth-file " + path;
  std::ofstream(path) << "# ok\nalice user " << sha256_hex("x") << "\nbob owner " << sha256_hex("y")
                      << "\n";
  EXPECT_EQ(run(mrd, output), 8);
  EXPECT_NE(output.find(path + ":3: the role is user or admin, not 'owner'"), std::string::npos)
      << output;
  std::ofstream(path) << "alice user s3cret\n";
  EXPECT_EQ(run(mrd, output), 8);
  EXPECT_NE(output.find("not the token itself"), std::string::npos) << output;
}

TEST(Auth, MrctlSendsItsTokenFromAFileOrTheEnvironment) {
  AuthFile tokens;
  ServerProcess server({"--auth-file", tokens.path()});
  TempDir dir;
  const auto token_file = (dir.path() / "alice.token").string();
  std::ofstream(token_file) << kAliceToken << "\n";
  const auto input = (dir.path() / "in.txt").string();
  std::ofstream(input) << "to be or not to be\n";
  const auto mrctl = mrctl_binary() + " --server 127.0.0.1:" + std::to_string(server.port()) + " ";
  std::string output;
  EXPECT_EQ(run(mrctl + "wordcount " + input, output), 5);
  EXPECT_NE(output.find("needs a token: give it with --token-file FILE or MRD_TOKEN"),
            std::string::npos)
      << output;
  EXPECT_EQ(run(mrctl + "--token-file " + token_file + " wordcount " + input, output), 0) << output;
  EXPECT_NE(output.find("2  be"), std::string::npos) << output;
  EXPECT_EQ(run("MRD_TOKEN=" + std::string(kOpsToken) + " " + mrctl + "server-stats", output), 0)
      << output;
  EXPECT_EQ(run("MRD_TOKEN=wrong " + mrctl + "list", output), 5);
  EXPECT_NE(output.find("does not accept this token"), std::string::npos) << output;
  // --trace shows that a token went, not what it was.
  EXPECT_EQ(run(mrctl + "--trace --token-file " + token_file + " list", output), 0) << output;
  EXPECT_NE(output.find("(not shown)"), std::string::npos) << output;
  EXPECT_EQ(output.find(kAliceToken), std::string::npos) << output;
}

}  // namespace
