// The steps every mrctl command shares: connect, submit, wait with progress, print.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "client/connection.hpp"
#include "client/failover_connection.hpp"
#include "client/mrctl/options.hpp"
#include "protocol/messages.hpp"

namespace mrd::mrctl {

/// The server of --server, or the list of cluster nodes it names ("a:1936,b:1936"): connected
/// on the first request, which checks with HELLO that the server speaks our protocol version
/// (and sends AUTH if it asks). With a list, a request fails over to the next node when one
/// cannot answer, saying so on stderr; with one server, every error is as a Connection throws it.
/// `matrix_sink`, if set, takes matrix results (Connection::set_matrix_result_sink).
client::FailoverConnection open_servers(const GlobalOptions& global,
                                        client::MatrixResultSink matrix_sink = {});

/// Polls until the job has finished, showing progress on stderr unless --quiet.
client::FetchOutcome wait_with_progress(client::FailoverConnection& servers, std::uint32_t job_id,
                                        const GlobalOptions& global);

/// Submits `request` with the submit options applied, then waits for its result. With --no-wait
/// it prints the job id instead and returns nullopt. A failed job is thrown as a ClientError.
/// `payload_files`: payloads sent from their files (documents' texts: client::OpenDocuments; a
/// matrix pair's values: client::NpyValues). `matrix_sink` as open_servers.
std::optional<protocol::JobResult> run_job(const GlobalOptions& global,
                                           protocol::SubmitRequest request,
                                           std::span<const client::PayloadFile> payload_files = {},
                                           client::MatrixResultSink matrix_sink = {});

/// Writes to stdout; a failed write (full disk) is a ClientError (kInput).
void print(std::string_view text);

}  // namespace mrd::mrctl
