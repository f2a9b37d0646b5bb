#include "client/documents.hpp"

#include "client/client_error.hpp"
#include "client/input_file.hpp"
#include "protocol/limits.hpp"

namespace mrd::client {

protocol::Documents load_documents(const std::vector<std::string>& paths) {
  protocol::Documents documents;
  documents.documents.reserve(paths.size());
  for (const auto& path : paths) {
    // Checked here because the server would only say the request did not decode.
    if (path.size() > protocol::kMaxDocumentNameBytes) {
      throw ClientError(ErrorKind::kInput,
                        path.substr(0, 60) + "...: a document name may be at most " +
                            std::to_string(protocol::kMaxDocumentNameBytes) + " bytes");
    }
    documents.documents.push_back({path, read_input_file(path)});
  }
  return documents;
}

}  // namespace mrd::client
