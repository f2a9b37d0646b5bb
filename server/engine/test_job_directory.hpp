// TestJobDirectory: the one place the test-* jobs (test_jobs.cpp) may write. mrd creates it at
// start when test jobs are enabled, private to it (mkdtemp, mode 0700), names it to the workers in
// the environment, and removes it, with everything in it, when it stops.
#pragma once

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace mrd::engine {

/// The environment variable that names the directory to the worker processes.
inline constexpr const char* kTestJobDirectoryVariable = "MRD_TEST_JOB_DIR";

/// A fresh private directory, named in kTestJobDirectoryVariable while this object lives.
/// Create it before any thread or worker starts (setenv is not thread-safe).
class TestJobDirectory {
 public:
  /// Creates TMPDIR/mrd-test-jobs-XXXXXX; throws std::runtime_error if it cannot.
  TestJobDirectory() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "mrd-test-jobs-XXXXXX").string();
    if (!mkdtemp(pattern.data())) {
      throw std::runtime_error("cannot create a directory for test jobs: " +
                               std::string(std::strerror(errno)));
    }
    path_ = pattern;
    setenv(kTestJobDirectoryVariable, path_.c_str(), 1);
  }
  ~TestJobDirectory() {
    unsetenv(kTestJobDirectoryVariable);
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TestJobDirectory(const TestJobDirectory&) = delete;
  TestJobDirectory& operator=(const TestJobDirectory&) = delete;

  /// Where it is.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace mrd::engine
