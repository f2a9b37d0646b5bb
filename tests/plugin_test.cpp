// Plugins through the real server: `mrd --plugin` with the example plugin, and the refusals.
#include <gtest/gtest.h>

#include <cctype>

#include "raw_jobs.hpp"

namespace mrd::testing {
namespace {

/// The character classes of the example plugin, computed plainly.
std::map<std::string, std::uint64_t> reference_classes(const std::vector<std::string>& texts) {
  std::map<std::string, std::uint64_t> counts;
  for (const auto& text : texts) {
    for (unsigned char c : text) {
      const char* name = c >= 0x80         ? "non-ascii"
                         : std::isalpha(c) ? "letter"
                         : std::isdigit(c) ? "digit"
                         : std::isspace(c) ? "space"
                         : std::ispunct(c) ? "punctuation"
                                           : "control";
      ++counts[name];
    }
  }
  return counts;
}

protocol::Documents documents(const std::vector<std::string>& texts) {
  protocol::Documents docs;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    docs.documents.push_back({"doc" + std::to_string(i), texts[i]});
  }
  return docs;
}

TEST(Plugins, APluginJobRunsLikeABuiltInOneWhateverTheChunking) {
  ServerProcess server({"--plugin", MRD_EXAMPLE_PLUGIN});
  RawClient client(server.port());
  const std::vector<std::string> texts{random_text(30000, 4), "Caf\xc3\xa9 42!\t\x01", ""};
  for (std::uint64_t chunk : {0ull, 100ull, 4096ull}) {
    const auto id = submit(client, {"char-classes", "sum", {chunk, 0}, documents(texts)});
    EXPECT_EQ(as_map(result_of(wait_for(client, id))), reference_classes(texts))
        << "chunk " << chunk;
  }
}

TEST(Plugins, ACombineOtherThanSumIsUsedInMapAndReduce) {
  ServerProcess server({"--plugin", MRD_EXAMPLE_PLUGIN, "--workers", "2"});
  RawClient client(server.port());
  const std::string long_word(300, 'x');
  const std::vector<std::string> texts{random_text(20000, 5) + " " + long_word + " end",
                                       "short words only", ""};
  const auto id = submit(client, {"longest-word", "max", {1000, 3}, documents(texts)});
  EXPECT_EQ(as_map(result_of(wait_for(client, id))),
            (std::map<std::string, std::uint64_t>{{"doc0", 300}, {"doc1", 5}, {"doc2", 0}}));
}

TEST(Plugins, PluginJobsAreUnknownWithoutThePlugin) {
  ServerProcess server;
  RawClient client(server.port());
  client.send_message(Opcode::kSubmit,
                      protocol::SubmitRequest{"char-classes", "sum", {}, documents({"x"})});
  const auto reply = client.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_name(reply->status), "bad-job");
}

TEST(Plugins, WorkersLoadThePluginsToo) {
  // A replacement worker must load the plugin again, or plugin jobs would fail after a crash.
  ServerProcess server({"--plugin", MRD_EXAMPLE_PLUGIN, "--workers", "1"});
  RawClient client(server.port());
  const auto before = server.worker_pids();
  ASSERT_EQ(before.size(), 1u);
  ::kill(before[0], SIGKILL);
  // The job below must run on the replacement: wait until the server has replaced the worker.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (server_stats(client).worker_restarts == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(server_stats(client).worker_restarts, 1u);
  const auto after = server.worker_pids();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after[0], before[0]);
  const auto id = submit(client, {"char-classes", "sum", {}, documents({"ab1"})});
  EXPECT_EQ(as_map(result_of(wait_for(client, id))),
            (std::map<std::string, std::uint64_t>{{"digit", 1}, {"letter", 2}}));
}

std::string run(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  char buffer[256];
  while (fgets(buffer, sizeof buffer, pipe))
    output += buffer;
  pclose(pipe);
  return output;
}

TEST(Plugins, MrctlSubmitRunsAPluginJobOnAFile) {
  ServerProcess server({"--plugin", MRD_EXAMPLE_PLUGIN});
  TempDir dir;
  const auto file = (dir.path() / "words.txt").string();
  std::ofstream(file) << "abc 12\n";
  const auto output =
      run(mrctl_binary() + " -q --server 127.0.0.1:" + std::to_string(server.port()) +
          " submit --mapper char-classes --reducer sum --documents " + file + "; echo exit=$?");
  EXPECT_EQ(output, "3  letter\n2  digit\n2  space\nexit=0\n");
}

int start_and_get_exit_status(const std::vector<std::string>& args) {
  try {
    ServerProcess server(args);
  } catch (const std::runtime_error& e) {
    return std::string(e.what()).find("exited at start-up") != std::string::npos ? 1 : 2;
  }
  return 0;
}

TEST(Plugins, AMissingFileOrAWrongSdkVersionStopsTheServerWithAClearMessage) {
  EXPECT_EQ(start_and_get_exit_status({"--plugin", "/nonexistent/libnothing.so"}), 1);
  EXPECT_EQ(start_and_get_exit_status({"--plugin", MRD_WRONG_SDK_PLUGIN}), 1);
  // The message, from the binary itself:
  const std::string command = mrd_binary() + " --plugin " + MRD_WRONG_SDK_PLUGIN +
                              " --listen 127.0.0.1:0 2>&1; echo exit=$?";
  const auto output = run(command);
  EXPECT_NE(output.find("was built for SDK version 2; this mrd loads version 1"), std::string::npos)
      << output;
  EXPECT_NE(output.find("exit=6"), std::string::npos) << output;
}

}  // namespace
}  // namespace mrd::testing
