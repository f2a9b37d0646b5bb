// Prints the example frames of docs/protocol.md, each as a labelled hex block.
#include <cstdio>

#include "protocol_examples.hpp"

int main() {
  for (const auto& example : mrd::examples::all_examples()) {
    std::printf("<!-- example: %s -->\n```\n%s```\n\n", example.name.c_str(),
                mrd::examples::to_hex_lines(example.bytes).c_str());
  }
}
