// Documents for the word, bigram and index jobs: files read as they are.
#pragma once

#include <string>
#include <vector>

#include "client/connection.hpp"
#include "protocol/messages.hpp"

namespace mrd::client {

/// One document per path, named by the path exactly as given and holding the file's bytes.
/// Throws ClientError (kInput) for a missing file, a directory, or a path longer than the
/// protocol allows for a document name.
protocol::Documents load_documents(const std::vector<std::string>& paths);

/// Documents whose big texts stay in their files until they are sent: a regular file of
/// protocol::kGatherFromBytes or more is opened, not read (its document's text is empty and
/// `files` holds it, for Connection::submit to send as it reads it); anything else (a small
/// file, a pipe, /dev/stdin) is read into its document. The files are closed with this.
class OpenDocuments {
 public:
  /// As load_documents, with the same errors.
  explicit OpenDocuments(const std::vector<std::string>& paths);
  ~OpenDocuments();
  OpenDocuments(const OpenDocuments&) = delete;
  OpenDocuments& operator=(const OpenDocuments&) = delete;

  /// At most this many files are kept open; the documents after them are read.
  static constexpr std::size_t kMaxOpenFiles = 256;

  protocol::Documents documents;   ///< to send: move it into the request
  std::vector<PayloadFile> files;  ///< per document: an open file, or fd -1 (its text is read)
};

}  // namespace mrd::client
