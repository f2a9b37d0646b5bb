// Reading and writing whole local files, with errors that name the file.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace mrd::client {

/// Closes a descriptor when the function that opened it returns or throws.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser();

 private:
  int fd_;
};

/// Every byte of the file at `path`, read in binary. Works for pipes and /dev/stdin too.
/// Throws ClientError (kInput): "PATH: is a directory", "PATH: No such file or directory", ...
std::string read_input_file(const std::string& path);

/// Replaces the file at `path` with `bytes`. Throws ClientError (kInput) naming the file.
void write_output_file(const std::string& path, std::string_view bytes);
/// The same with `pieces`, one after the other (a header and what follows it, without joining).
void write_output_file(const std::string& path, std::initializer_list<std::string_view> pieces);

}  // namespace mrd::client
