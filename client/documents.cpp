#include "client/documents.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client_error.hpp"
#include "client/input_file.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"

namespace mrd::client {

namespace {

/// Checked here because the server would only say the request did not decode.
void check_name(const std::string& path) {
  if (path.size() > protocol::kMaxDocumentNameBytes) {
    throw ClientError(ErrorKind::kInput,
                      path.substr(0, 60) + "...: a document name may be at most " +
                          std::to_string(protocol::kMaxDocumentNameBytes) + " bytes");
  }
}

}  // namespace

protocol::Documents load_documents(const std::vector<std::string>& paths) {
  protocol::Documents documents;
  documents.documents.reserve(paths.size());
  for (const auto& path : paths) {
    check_name(path);
    documents.documents.push_back({path, read_input_file(path)});
  }
  return documents;
}

OpenDocuments::OpenDocuments(const std::vector<std::string>& paths) {
  documents.documents.reserve(paths.size());
  files.reserve(paths.size());
  std::size_t kept_open = 0;
  try {
    for (const auto& path : paths) {
      check_name(path);
      // Past kMaxOpenFiles the rest are read: a word count over thousands of files must not run
      // out of descriptors.
      const int fd = kept_open < kMaxOpenFiles ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC) : -1;
      struct stat info {};
      if (fd >= 0 && ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) &&
          static_cast<std::uint64_t>(info.st_size) >= protocol::kGatherFromBytes) {
        files.push_back({fd, 0, static_cast<std::uint64_t>(info.st_size), path});
        documents.documents.push_back({path, ""});
        ++kept_open;
        continue;
      }
      if (fd >= 0) ::close(fd);
      // Read as load_documents does, which also says why a path cannot be read.
      documents.documents.push_back({path, read_input_file(path)});
      files.push_back({-1, 0, 0, path});
    }
  } catch (...) {
    for (const auto& file : files)
      if (file.fd >= 0) ::close(file.fd);
    throw;
  }
}

OpenDocuments::~OpenDocuments() {
  for (const auto& file : files)
    if (file.fd >= 0) ::close(file.fd);
}

}  // namespace mrd::client
