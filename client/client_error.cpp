#include "client/client_error.hpp"

namespace mrd::client {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage: return "usage";
    case ErrorKind::kInput: return "input";
    case ErrorKind::kConnection: return "connection";
    case ErrorKind::kTls: return "tls";
    case ErrorKind::kProtocol: return "protocol";
    case ErrorKind::kRejected: return "rejected";
    case ErrorKind::kJobFailed: return "job-failed";
  }
  return "unknown";
}

}  // namespace mrd::client
