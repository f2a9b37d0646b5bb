// ResultFile: with --data-dir, a finished job's result of 64 KiB or more, kept as a file in
// DIR/results instead of in its row.
//
// A 64 MiB word count's result is 2 MB, a product's of n = 2000 32 MB. Committed into the
// database, such a result is hundreds of pages appended to the log in one commit (tens of
// milliseconds, during which every tiny job's commit queued behind it waits), and copied again
// into the database file by the next checkpoint. Instead the database writer's preparing thread
// writes it to DIR/results/<id>.result (synced first with --fsync) while the writer goes on
// committing other jobs' rows, and the job's row keeps only that name and the result's SHA-256,
// as a big input's row does (input_file.hpp). A restart reads the file back after checking it
// against the digest: a job whose file is missing or damaged is served as failed, saying why.
// Evicting or cancelling the job removes the file once that is committed, and a start removes
// every file no row names (a result written just before a kill, before its row was).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "server/request_digest.hpp"

namespace mrd::server {

/// Results of this many bytes or more are kept as files.
inline constexpr std::uint64_t kResultFileBytes = 64 << 10;

/// DIR/results, for the data directory DIR.
std::string results_directory(const std::string& data_directory);

/// What the result file of job `id` is called in the results directory.
std::string result_file_name(std::uint32_t id);

/// Writes `bytes` to the file `name` in `directory`, replacing any file of that name, and
/// returns their digest. With `sync`, the bytes and the name reach the disk before it returns.
/// Throws std::system_error saying what failed (a full disk, say).
RequestDigest write_result_file(const std::string& directory, const std::string& name,
                                std::string_view bytes, bool sync);

/// The bytes of the result file `path`, after checking that they have `digest`. Throws
/// std::runtime_error saying what is wrong (missing, not the bytes that were stored).
std::string read_result_file(const std::string& path, const RequestDigest& digest);

}  // namespace mrd::server
