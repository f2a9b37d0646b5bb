// InputFile: with --data-dir, the big input of an unfinished job, kept as a file in DIR/inputs.
//
// A big SUBMIT body is received straight into a part file there (upload-XXXXXX.part), the way it
// goes into a memory file without a data directory (submit_upload.hpp): written once, by write(),
// and mapped by the workers. When the job's row is committed the file is renamed to <id>.input,
// and the row keeps only that name, where the body starts in the file and the body's SHA-256: the
// commit writes a few hundred bytes, not 64 MiB, so the commits of the tiny jobs queued behind it
// do not wait for it. The database removes the file once the row drops its request (the job
// finished or was cancelled). A restart runs an unfinished job from its file after checking it
// against the digest, and removes every file that no unfinished row names: the part file of an
// upload cut short by the kill, or a finished job's file whose removal it interrupted.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "server/pool/segment.hpp"
#include "server/request_digest.hpp"

namespace mrd::server {

/// DIR/inputs, for the data directory DIR.
std::string inputs_directory(const std::string& data_directory);

/// What the input file of job `id` is called in the inputs directory once its row is committed.
std::string input_file_name(std::uint32_t id);

/// A file in the inputs directory. A part file is removed when this is destroyed; once renamed
/// to a job's name it is the database's to remove (and the next start's, should no row name it).
class InputFile {
 public:
  /// A new, empty part file in `directory`; `fd` gets its descriptor, open for reading and
  /// writing, which the caller owns. Throws std::system_error if it cannot be made.
  static std::unique_ptr<InputFile> create(const std::string& directory, int& fd);

  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// Where it is now.
  const std::string& path() const { return path_; }
  /// Gives it the job's name `name` in its directory (nothing if it has that name already); from
  /// then on it stays when this is destroyed. Throws std::system_error if the rename fails.
  void rename_to(const std::string& name);
  /// Forces its bytes to the disk (fdatasync), the slow part of sync(): done before the job's
  /// row is written, off the database writer's thread. Throws std::system_error.
  void sync_data() const;
  /// Forces its bytes and its name to the disk (for --fsync). Throws std::system_error.
  void sync() const;
  /// Removes it now, whatever its name: its job's row was not written.
  void remove();

 private:
  explicit InputFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool part_ = true;  ///< still a part file, which nobody else knows of
};

/// A big body received into an input file, and what the job's row will say of it.
struct ReceivedFile {
  std::unique_ptr<InputFile> file;
  std::uint64_t offset = 0;  ///< where the body starts in the file
  RequestDigest digest{};    ///< of the body
};

/// The stored input file `path` of an unfinished job, mapped read-only, after checking that the
/// body from `offset` on has `digest`. Throws std::runtime_error saying what is wrong (missing,
/// too short, not the bytes that were stored).
std::unique_ptr<Segment> open_stored_input(const std::string& path, std::uint64_t offset,
                                           const RequestDigest& digest);

/// Removes every file in `directory` (the inputs directory, or the results one) not in `in_use`
/// (names, not paths), and returns how many it removed.
std::size_t remove_unused_files(const std::string& directory, const std::set<std::string>& in_use);

}  // namespace mrd::server
