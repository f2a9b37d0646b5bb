// Documents for the word, bigram and index jobs: files read as they are.
#pragma once

#include <string>
#include <vector>

#include "protocol/messages.hpp"

namespace mrd::client {

/// One document per path, named by the path exactly as given and holding the file's bytes.
/// Throws ClientError (kInput) for a missing file, a directory, or a path longer than the
/// protocol allows for a document name.
protocol::Documents load_documents(const std::vector<std::string>& paths);

}  // namespace mrd::client
