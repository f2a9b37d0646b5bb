// The steps every mrctl command shares: connect, submit, wait with progress, print.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "client/connection.hpp"
#include "client/mrctl/options.hpp"
#include "protocol/messages.hpp"

namespace mrd::mrctl {

/// Connects to --server and checks with HELLO that it speaks our protocol version.
client::Connection open_connection(const GlobalOptions& global);

/// Polls until the job has finished, showing progress on stderr unless --quiet.
client::FetchOutcome wait_with_progress(client::Connection& connection, std::uint32_t job_id,
                                        const GlobalOptions& global);

/// Submits `request` with the submit options applied, then waits for its result. With --no-wait
/// it prints the job id instead and returns nullopt. A failed job is thrown as a ClientError.
std::optional<protocol::JobResult> run_job(const GlobalOptions& global,
                                           protocol::SubmitRequest request);

/// Writes to stdout; a failed write (full disk) is a ClientError (kInput).
void print(std::string_view text);

}  // namespace mrd::mrctl
