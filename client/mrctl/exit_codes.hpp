// mrctl's exit codes: what a script can tell apart without reading stderr.
#pragma once

#include "client/client_error.hpp"

namespace mrd::mrctl {

enum ExitCode : int {
  kExitSuccess = 0,
  kExitJobFailed = 1,    ///< the job failed, was cancelled, or its result expired
  kExitUsage = 2,        ///< bad command line
  kExitConnection = 3,   ///< cannot connect, or the connection was lost
  kExitProtocol = 4,     ///< the server's reply made no sense, or its protocol version differs
  kExitRejected = 5,     ///< the server refused the request
  kExitNotFinished = 6,  ///< `result` of a job still queued or running, without --wait
  kExitInput = 7,        ///< a local file is missing or malformed, or output cannot be written
  kExitInternal = 70,    ///< a bug in mrctl (sysexits' EX_SOFTWARE)
};

/// The exit code for a ClientError of this kind.
inline ExitCode exit_code_for(client::ErrorKind kind) {
  switch (kind) {
    case client::ErrorKind::kUsage: return kExitUsage;
    case client::ErrorKind::kInput: return kExitInput;
    case client::ErrorKind::kConnection:
    case client::ErrorKind::kTls: return kExitConnection;
    case client::ErrorKind::kProtocol: return kExitProtocol;
    case client::ErrorKind::kRejected: return kExitRejected;
    case client::ErrorKind::kJobFailed: return kExitJobFailed;
  }
  return kExitProtocol;
}

/// The --help footer that documents the codes above.
inline constexpr const char* kExitCodesHelp =
    "Exit codes:\n"
    "  0  success\n"
    "  1  the job failed, was cancelled, or its result expired\n"
    "  2  usage error\n"
    "  3  cannot connect to the server, the connection was lost, or TLS failed\n"
    "  4  protocol error or protocol version mismatch\n"
    "  5  request rejected by the server (queue full, bad job, request too large, unknown job)\n"
    "  6  `result`: the job has not finished yet (and --wait was not given)\n"
    "  7  local input error (file missing, bad matrix or numbers file) or output not writable\n"
    " 70  internal error in mrctl\n"
    "Errors are reported on stderr as \"mrctl: <message>\".";

}  // namespace mrd::mrctl
