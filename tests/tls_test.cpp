// TLS: the real mrd with --tls-listen, certificates made by the openssl command at test time, and
// the client library and the real mrctl speaking TLS to it. Good paths with and without client
// certificates, and every way a handshake can go wrong: the wrong CA, the wrong name, an expired
// certificate, plain bytes on the TLS port and TLS on the plain port, a missing client
// certificate, a handshake that never finishes. After each, the server still serves.
#include <gtest/gtest.h>

#include <cstdio>

#include "client/client_error.hpp"
#include "client/connection.hpp"
#include "client/input_file.hpp"
#include "client/npy.hpp"
#include "tests/raw_jobs.hpp"
#include "tests/server_process.hpp"

namespace {

using namespace mrd::testing;
using mrd::client::ClientError;
using mrd::client::Connection;
using mrd::client::ErrorKind;
using mrd::client::TlsOptions;
using mrd::protocol::Status;

/// Two CAs, and certificates they sign, made with the openssl command in a temporary directory:
///   ca.pem         the CA the server and clients trust
///   other-ca.pem   a CA nobody here trusts
///   server         for localhost and 127.0.0.1, signed by ca
///   elsewhere      for elsewhere.invalid only, signed by ca
///   expired        for localhost and 127.0.0.1, signed by ca, valid for a day in 2020
///   client         a client certificate signed by ca
///   stranger       a client certificate signed by other-ca
class Certificates {
 public:
  Certificates() {
    make_ca("ca");
    make_ca("other-ca");
    issue("server", "ca", "DNS:localhost,IP:127.0.0.1");
    issue("elsewhere", "ca", "DNS:elsewhere.invalid");
    issue("client", "ca", "");
    issue("stranger", "other-ca", "");
    issue_expired("expired", "ca", "DNS:localhost,IP:127.0.0.1");
  }

  /// A file of the directory: "ca.pem", "server.key", ...
  std::string operator[](const std::string& file) const { return (dir_.path() / file).string(); }

 private:
  void sh(const std::string& command) {
    std::string output;
    if (run_command("cd '" + dir_.path().string() + "' && " + command, &output) != 0) {
      throw std::runtime_error("openssl failed: " + command + "\n" + output);
    }
  }
  /// A new P-256 key in NAME.key and a request for CN=NAME in NAME.csr.
  void request(const std::string& name) {
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name +
       ".key -out " + name + ".csr -subj /CN=" + name);
  }
  void make_ca(const std::string& name) {
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name +
       ".key -out " + name + ".pem -days 2 -subj '/CN=" + name + "'");
  }
  std::string extensions(const std::string& name, const std::string& names) {
    if (names.empty()) return "";
    sh("printf 'subjectAltName=" + names + "\\n' > " + name + ".ext");
    return " -extfile " + name + ".ext";
  }
  void issue(const std::string& name, const std::string& ca, const std::string& names) {
    request(name);
    sh("openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
       ".key -CAcreateserial -days 2 -out " + name + ".pem" + extensions(name, names));
  }
  /// `openssl x509` cannot date a certificate in the past; `openssl ca` can.
  void issue_expired(const std::string& name, const std::string& ca, const std::string& names) {
    request(name);
    sh("printf '[ca]\\ndefault_ca=test\\n[test]\\ndatabase=index.txt\\nnew_certs_dir=.\\n"
       "serial=serial\\ndefault_md=sha256\\npolicy=any\\n[any]\\ncommonName=supplied\\n' > "
       "ca.cnf && : > index.txt && echo 01 > serial");
    sh("openssl ca -batch -notext -config ca.cnf -cert " + ca + ".pem -keyfile " + ca +
       ".key -in " + name + ".csr -out " + name +
       ".pem -startdate 20200101000000Z -enddate "
       "20200102000000Z" +
       extensions(name, names));
  }

  TempDir dir_;
};

/// Made once per test program (each test runs in its own, so this is once per test).
const Certificates& certificates() {
  static const Certificates made;
  return made;
}

/// mrd's arguments for a TLS listener on a free port with `certificate` (server, expired,
/// elsewhere), then `more`.
std::vector<std::string> tls_server(const std::string& certificate = "server",
                                    std::vector<std::string> more = {}) {
  const auto& c = certificates();
  std::vector<std::string> args{"--tls-listen",          "127.0.0.1:0",    "--tls-cert-file",
                                c[certificate + ".pem"], "--tls-key-file", c[certificate + ".key"]};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

/// TLS that trusts `ca` (a file of certificates()), with the client certificate `client` if set.
TlsOptions trusting(const std::string& ca = "ca.pem", const std::string& client = "") {
  TlsOptions tls;
  tls.enabled = true;
  tls.ca_file = certificates()[ca];
  if (!client.empty()) {
    tls.cert_file = certificates()[client + ".pem"];
    tls.key_file = certificates()[client + ".key"];
  }
  return tls;
}

/// Counts the words of a small text over `connection`, and checks the result.
void expect_word_count_works(Connection& connection) {
  const auto request = word_count_request({"the cat and the hat", "the end"});
  const auto id = connection.submit(request);
  const auto result = mrd::client::result_or_throw(connection.wait_for_result(id), id);
  const std::map<std::string, std::uint64_t> expected{
      {"the", 3}, {"cat", 1}, {"and", 1}, {"hat", 1}, {"end", 1}};
  EXPECT_EQ(as_map(result), expected);
}

/// The ClientError that connecting (and saying HELLO) with `tls` to `port` throws.
ClientError connect_error(const std::string& host, std::uint16_t port, const TlsOptions& tls) {
  try {
    auto connection = Connection::connect({host, port}, 10s, tls);
    connection.hello();
  } catch (const ClientError& e) {
    return e;
  }
  ADD_FAILURE() << "connecting with TLS to " << host << ":" << port << " succeeded";
  return ClientError(ErrorKind::kUsage, "");
}

/// The server still serves TLS clients (by name and by address) after whatever came before.
void expect_still_serving(const ServerProcess& server) {
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    auto connection = Connection::connect({host, server.tls_port()}, 10s, trusting());
    EXPECT_EQ(connection.hello().rfind("mrd ", 0), 0u);
  }
}

TEST(Tls, JobsRunOverTlsByNameAndByAddressBesideThePlainPort) {
  ServerProcess server(tls_server());
  ASSERT_NE(server.tls_port(), 0);
  ASSERT_NE(server.port(), server.tls_port());
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    auto connection = Connection::connect({host, server.tls_port()}, 10s, trusting());
    EXPECT_EQ(connection.hello().rfind("mrd ", 0), 0u);
    expect_word_count_works(connection);
  }
  auto plain = Connection::connect({"127.0.0.1", server.port()});
  plain.hello();
  expect_word_count_works(plain);
}

TEST(Tls, ABigSubmitAndItsResultCrossTls) {
  // Big enough to be received straight into its memory file (and mapped early), in many records.
  ServerProcess server(tls_server());
  auto connection = Connection::connect({"localhost", server.tls_port()}, 30s, trusting());
  connection.hello();
  const auto text = random_text(400000, 7);
  const auto id = connection.submit(word_count_request({text}, 256 << 10));
  const auto result = mrd::client::result_or_throw(connection.wait_for_result(id), id);
  EXPECT_EQ(as_map(result), reference_word_count({text}));
}

TEST(Tls, AServerCertificateFromAnUntrustedCaIsRefused) {
  ServerProcess server(tls_server());
  const auto error = connect_error("localhost", server.tls_port(), trusting("other-ca.pem"));
  EXPECT_EQ(error.kind(), ErrorKind::kTls);
  EXPECT_NE(std::string(error.what()).find("unable to get local issuer certificate"),
            std::string::npos)
      << error.what();
  EXPECT_NE(std::string(error.what()).find("--cacert"), std::string::npos) << error.what();
  expect_still_serving(server);
}

TEST(Tls, ACertificateForAnotherNameIsRefused) {
  ServerProcess server(tls_server("elsewhere"));
  const auto by_name = connect_error("localhost", server.tls_port(), trusting());
  EXPECT_EQ(by_name.kind(), ErrorKind::kTls);
  EXPECT_NE(std::string(by_name.what()).find("hostname mismatch"), std::string::npos)
      << by_name.what();
  const auto by_address = connect_error("127.0.0.1", server.tls_port(), trusting());
  EXPECT_NE(std::string(by_address.what()).find("IP address mismatch"), std::string::npos)
      << by_address.what();
  // Only --insecure-skip-verify gets through, and then it works.
  auto insecure = trusting();
  insecure.verify = false;
  auto connection = Connection::connect({"localhost", server.tls_port()}, 10s, insecure);
  expect_word_count_works(connection);
}

TEST(Tls, AnExpiredCertificateIsRefused) {
  ServerProcess server(tls_server("expired"));
  const auto error = connect_error("localhost", server.tls_port(), trusting());
  EXPECT_EQ(error.kind(), ErrorKind::kTls);
  EXPECT_NE(std::string(error.what()).find("certificate has expired"), std::string::npos)
      << error.what();
}

TEST(Tls, APlainClientOnTheTlsPortIsToldSoInPlainBytes) {
  ServerProcess server(tls_server());
  RawClient plain(server.tls_port());
  plain.send_message(mrd::protocol::Opcode::kHello, mrd::protocol::Hello{});
  const auto reply = plain.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, static_cast<std::uint8_t>(Status::kBadRequest));
  EXPECT_NE(error_text(*reply).find("this port speaks TLS"), std::string::npos)
      << error_text(*reply);
  EXPECT_TRUE(plain.closed_by_server());
  // And through the library: the server's words, as a rejected request.
  try {
    Connection::connect({"127.0.0.1", server.tls_port()}).hello();
    ADD_FAILURE() << "a plain HELLO on the TLS port succeeded";
  } catch (const ClientError& e) {
    EXPECT_NE(std::string(e.what()).find("this port speaks TLS"), std::string::npos) << e.what();
  }
  expect_still_serving(server);
}

TEST(Tls, ATlsClientOnThePlainPortFailsAtOnceWithAHint) {
  ServerProcess server(tls_server());
  const auto error = connect_error("127.0.0.1", server.port(), trusting());
  EXPECT_EQ(error.kind(), ErrorKind::kTls);
  EXPECT_NE(std::string(error.what()).find("--tls-listen"), std::string::npos) << error.what();
  // The plain port answered in plain bytes and closed: it still serves.
  RawClient plain(server.port());
  EXPECT_EQ(server_stats(plain).connections_open, 1u);
  expect_still_serving(server);
}

TEST(Tls, ClientCertificatesWhenRequired) {
  const auto& c = certificates();
  ServerProcess server(tls_server("server", {"--tls-ca-cert-file", c["ca.pem"]}));  // yes
  auto with =
      Connection::connect({"localhost", server.tls_port()}, 10s, trusting("ca.pem", "client"));
  with.hello();
  expect_word_count_works(with);

  // TLS 1.3 finishes the client's side of the handshake before the server has checked: the
  // refusal arrives as an alert at the first read.
  const auto without = connect_error("localhost", server.tls_port(), trusting());
  EXPECT_EQ(without.kind(), ErrorKind::kTls);
  EXPECT_NE(std::string(without.what()).find("certificate required"), std::string::npos)
      << without.what();
  EXPECT_NE(std::string(without.what()).find("--cert"), std::string::npos) << without.what();

  const auto stranger =
      connect_error("localhost", server.tls_port(), trusting("ca.pem", "stranger"));
  EXPECT_EQ(stranger.kind(), ErrorKind::kTls);
  EXPECT_NE(std::string(stranger.what()).find("unknown ca"), std::string::npos) << stranger.what();
  auto again =
      Connection::connect({"localhost", server.tls_port()}, 10s, trusting("ca.pem", "client"));
  expect_word_count_works(again);
}

TEST(Tls, ClientCertificatesWhenOptional) {
  const auto& c = certificates();
  ServerProcess server(
      tls_server("server", {"--tls-ca-cert-file", c["ca.pem"], "--tls-auth-clients", "optional"}));
  auto without = Connection::connect({"localhost", server.tls_port()}, 10s, trusting());
  expect_word_count_works(without);
  auto with =
      Connection::connect({"localhost", server.tls_port()}, 10s, trusting("ca.pem", "client"));
  expect_word_count_works(with);
  const auto stranger =
      connect_error("localhost", server.tls_port(), trusting("ca.pem", "stranger"));
  EXPECT_EQ(stranger.kind(), ErrorKind::kTls) << stranger.what();
}

TEST(Tls, AHandshakeThatNeverFinishesIsClosedWithinTheRequestTimeout) {
  ServerProcess server(tls_server("server", {"--request-timeout", "1"}));
  RawClient silent(server.tls_port());  // sends nothing at all
  RawClient slow(server.tls_port());    // starts a ClientHello, never finishes it
  slow.send(bytes({0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00}));
  // The bound is generous (a loaded machine); what matters is that it comes without our help.
  EXPECT_TRUE(silent.closed_by_server(30s));
  EXPECT_TRUE(slow.closed_by_server(30s));
  expect_still_serving(server);
}

TEST(Tls, ClosingNeverWaitsOnAClientThatDoesNotAnswerCloseNotify) {
  // A frame too large makes the server close; it says close_notify and waits a bounded time for
  // the client's, which never comes (the client keeps its socket open and silent).
  ServerProcess server(tls_server("server", {"--max-frame-mib", "1"}));
  auto stream = mrd::client::TcpStream::connect({"localhost", server.tls_port()}, 10s, trusting());
  std::string header = bytes({0x00, 0x00, 0x00, 0x00, 0x10});  // a 256 MiB SUBMIT
  ASSERT_FALSE(stream.send_all(header));
  std::string received;
  char chunk[4096];
  std::error_code error;
  while (const auto n = stream.receive_some(chunk, error))
    received.append(chunk, n);
  ASSERT_GE(received.size(), 5u);
  EXPECT_EQ(static_cast<std::uint8_t>(received[0]),
            static_cast<std::uint8_t>(Status::kFrameTooLarge));
  // The server's side of it ends without the client: only the one asking is left open.
  RawClient observer(server.port());
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (server_stats(observer).connections_open > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(server_stats(observer).connections_open, 1u);
}

TEST(Tls, TlsOnlyWithListenNone) {
  // The debug log says why each connection closed, should this fail.
  std::vector<std::string> args{"--listen", "none", "--log-level", "debug"};
  const auto tls = tls_server();
  args.insert(args.end(), tls.begin(), tls.end());
  ServerProcess server(args);
  EXPECT_EQ(server.port(), 0);
  EXPECT_NE(server.log().find("listening for TLS on 127.0.0.1:"), std::string::npos);
  EXPECT_EQ(server.log().find("listening on "), std::string::npos);
  expect_still_serving(server);
}

/// mrd's exit code and output for a command line that must not start.
int start_fails(const std::string& arguments, std::string& output) {
  return run_command(mrd_binary() + " --listen 127.0.0.1:0 " + arguments, &output);
}

TEST(Tls, OptionsThatDoNotGoTogetherAreRefusedAtStart) {
  const auto& c = certificates();
  const std::string pair =
      " --tls-cert-file " + c["server.pem"] + " --tls-key-file " + c["server.key"];
  std::string output;
  EXPECT_EQ(start_fails("--tls-listen 127.0.0.1:0", output), 2);
  EXPECT_NE(output.find("needs --tls-cert-file and --tls-key-file"), std::string::npos) << output;
  EXPECT_EQ(start_fails(pair, output), 2);
  EXPECT_NE(output.find("need --tls-listen"), std::string::npos) << output;
  EXPECT_EQ(start_fails("--tls-listen 127.0.0.1:0 --tls-auth-clients yes" + pair, output), 2);
  EXPECT_NE(output.find("needs --tls-ca-cert-file"), std::string::npos) << output;
  EXPECT_EQ(run_command(mrd_binary() + " --listen none", &output), 2);
  EXPECT_NE(output.find("nothing to listen on"), std::string::npos) << output;
  // A key that is not the certificate's, and a file that is not a certificate: exit 7.
  EXPECT_EQ(start_fails("--tls-listen 127.0.0.1:0 --tls-cert-file " + c["server.pem"] +
                            " --tls-key-file " + c["client.key"],
                        output),
            7);
  EXPECT_NE(output.find("cannot use the private key in"), std::string::npos) << output;
  EXPECT_NE(output.find("key values mismatch"), std::string::npos) << output;
  EXPECT_EQ(start_fails("--tls-listen 127.0.0.1:0 --tls-cert-file " + c["ca.cnf"] +
                            " --tls-key-file " + c["server.key"],
                        output),
            7);
  EXPECT_NE(output.find("cannot use the certificate in"), std::string::npos) << output;
}

/// The real mrctl, with `arguments` after its --server; its exit code, and its output.
int mrctl(const std::string& arguments, std::string& output) {
  return run_command(mrctl_binary() + " " + arguments, &output);
}

TEST(Tls, MrctlRunsAJobOverTlsAndSaysClearlyWhyItCannot) {
  const auto& c = certificates();
  ServerProcess server(tls_server());
  TempDir dir;
  const auto input = (dir.path() / "in.txt").string();
  std::ofstream(input) << "to be or not to be\n";
  const auto at = " --server localhost:" + std::to_string(server.tls_port());
  std::string output;
  EXPECT_EQ(mrctl(at + " --tls --cacert " + c["ca.pem"] + " wordcount --json " + input, output), 0)
      << output;
  EXPECT_NE(output.find("\"to\""), std::string::npos) << output;
  EXPECT_NE(output.find("2"), std::string::npos) << output;
  // A file of 64 KiB or more goes from the file into TLS records as it is read.
  const auto big = (dir.path() / "big.txt").string();
  {
    std::ofstream out(big);
    for (int i = 0; i < 20000; ++i)
      out << "often seldom often\n";
  }
  EXPECT_EQ(
      mrctl(at + " --tls --cacert " + c["ca.pem"] + " wordcount --json --top 1 " + big, output), 0)
      << output;
  EXPECT_NE(output.find("{\"key\": \"often\", \"count\": 40000}"), std::string::npos) << output;
  // .npy matrices go from their files too, their values read after the header.
  const auto a = (dir.path() / "a.npy").string(), b = (dir.path() / "b.npy").string(),
             product = (dir.path() / "c.npy").string();
  mrd::client::write_output_file(a, mrd::client::encode_npy({2, 2, {1, 2, 3, 4}}));
  mrd::client::write_output_file(b, mrd::client::encode_npy({2, 1, {5, 6}}));
  EXPECT_EQ(
      mrctl(at + " --tls --cacert " + c["ca.pem"] + " matmul " + a + " " + b + " --out " + product,
            output),
      0)
      << output;
  EXPECT_EQ(mrd::client::load_npy(product), (mrd::protocol::Matrix{2, 1, {17, 39}}));

  // The wrong CA: exit 3, the reason, and no pointless resending.
  EXPECT_EQ(mrctl(at + " --tls --cacert " + c["other-ca.pem"] + " wordcount " + input, output), 3);
  EXPECT_NE(output.find("certificate verify failed"), std::string::npos) << output;
  EXPECT_EQ(output.find("sending the job again"), std::string::npos) << output;
  // Plain mrctl on the TLS port: the server's own words (BAD_REQUEST: a protocol error, exit 4).
  EXPECT_EQ(mrctl(at + " server-stats", output), 4) << output;
  EXPECT_NE(output.find("this port speaks TLS"), std::string::npos) << output;
  // TLS files without --tls: a usage error.
  EXPECT_EQ(mrctl(at + " --cacert " + c["ca.pem"] + " server-stats", output), 2) << output;
  // --insecure-skip-verify works, and says what it costs.
  EXPECT_EQ(mrctl(at + " --tls --insecure-skip-verify server-stats", output), 0) << output;
  EXPECT_NE(output.find("warning: --insecure-skip-verify"), std::string::npos) << output;
  // SSLKEYLOGFILE: the session's secrets, in the NSS key log format Wireshark reads.
  const auto keylog = (dir.path() / "keys.log").string();
  EXPECT_EQ(run_command("SSLKEYLOGFILE=" + keylog + " " + mrctl_binary() + at + " --tls --cacert " +
                            c["ca.pem"] + " server-stats",
                        &output),
            0)
      << output;
  std::ifstream keys(keylog);
  const std::string logged((std::istreambuf_iterator<char>(keys)), {});
  EXPECT_NE(logged.find("CLIENT_TRAFFIC_SECRET_0 "), std::string::npos) << logged;
}

}  // namespace
