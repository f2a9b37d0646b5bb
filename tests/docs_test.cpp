// docs/protocol.md shows the bytes the codec really produces.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "protocol_examples.hpp"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ProtocolDocument, ShowsEveryExampleExactlyAsTheCodecEncodesIt) {
  const auto document = read_file(MRD_SOURCE_DIR "/docs/protocol.md");
  ASSERT_FALSE(document.empty()) << "docs/protocol.md not found";
  for (const auto& example : mrd::examples::all_examples()) {
    const auto block = "<!-- example: " + example.name + " -->\n```\n" +
                       mrd::examples::to_hex_lines(example.bytes) + "```\n";
    EXPECT_NE(document.find(block), std::string::npos)
        << "docs/protocol.md should show, for " << example.name << ":\n"
        << block << "(run build/tests/protocol_examples to print every block)";
  }
}

}  // namespace
