#include "server/submit_upload.hpp"

#include <system_error>

#include "protocol/submit_layout.hpp"
#include "server/submitted_input.hpp"

namespace mrd::server {

std::unique_ptr<SubmitUpload> SubmitUpload::start(std::string_view start, std::uint64_t body_bytes,
                                                  MemoryBudget& budget,
                                                  const std::string& inputs_directory) {
  if (Segment::live_shared() >= kMaxSharedSegments) return nullptr;
  const auto values_offset = protocol::values_offset_from_prefix(start);
  if (!values_offset) return nullptr;
  const auto offset = SubmittedInput::body_offset(*values_offset);
  auto charge = MemoryCharge::try_take(budget, offset + start.size());
  if (!charge) return nullptr;
  const auto head = protocol::submit_head_from_prefix(start);
  const bool keyed = head && !head->layout.idempotency_key.empty();
  try {
    int fd = -1;
    auto file = inputs_directory.empty() ? nullptr : InputFile::create(inputs_directory, fd);
    auto upload = std::make_unique<SubmitUpload>(offset, body_bytes, std::move(charge),
                                                 std::move(file), fd, keyed);
    if (!upload->add(start)) return nullptr;
    return upload;
  } catch (const std::system_error&) {
    return nullptr;  // no descriptor, memory or disk for a file: the buffered way may still work
  }
}

SubmitUpload::SubmitUpload(std::uint64_t offset, std::uint64_t body_bytes, MemoryCharge charge,
                           std::unique_ptr<InputFile> file, int fd, bool hash)
    : offset_(offset),
      body_bytes_(body_bytes),
      segment_(offset, fd),
      file_(std::move(file)),
      digest_(file_ || hash ? std::make_unique<DigestStream>() : nullptr),
      charge_(std::move(charge)) {}

bool SubmitUpload::add(std::string_view bytes) {
  if (!charge_.resize(segment_.size() + bytes.size())) return false;
  try {
    segment_.append(bytes);
  } catch (const std::system_error& e) {
    error_ = e.what();
    return false;
  }
  if (digest_) digest_->update(bytes);
  return true;
}

ReceivedBody SubmitUpload::finish() {
  ReceivedBody received{segment_.seal(), offset_, nullptr, nullptr, std::nullopt};
  if (digest_) received.digest = digest_->finish();
  if (file_)
    received.file =
        std::make_unique<ReceivedFile>(ReceivedFile{std::move(file_), offset_, *received.digest});
  charge_.reset();
  return received;
}

}  // namespace mrd::server
