// main() for the fuzz targets built without libFuzzer (-DMRD_FUZZ_REPLAY=ON): runs the target once
// on each file named, and on every file in each directory named. A crash input or the corpus can
// then be replayed under any compiler, a debugger, or valgrind.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void replay(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A copy in a buffer of exactly its size, so that ASan (if built with it) sees any overread.
  const std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(data.data(), data.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t runs = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path path = argv[i];
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::directory_iterator(path)) {
        if (entry.is_regular_file()) {
          replay(entry.path());
          ++runs;
        }
      }
    } else {
      replay(path);
      ++runs;
    }
  }
  std::printf("%zu inputs ran without a failure\n", runs);
  return 0;
}
