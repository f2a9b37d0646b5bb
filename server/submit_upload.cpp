#include "server/submit_upload.hpp"

#include <system_error>

#include "protocol/submit_layout.hpp"
#include "server/submitted_input.hpp"

namespace mrd::server {

std::unique_ptr<SubmitUpload> SubmitUpload::start(std::string_view start, std::uint64_t body_bytes,
                                                  MemoryBudget& budget) {
  if (Segment::live_shared() >= kMaxSharedSegments) return nullptr;
  const auto values_offset = protocol::values_offset_from_prefix(start);
  if (!values_offset) return nullptr;
  const auto offset = SubmittedInput::body_offset(*values_offset);
  auto charge = MemoryCharge::try_take(budget, offset + start.size());
  if (!charge) return nullptr;
  try {
    auto upload = std::make_unique<SubmitUpload>(offset, body_bytes, std::move(charge));
    upload->segment_.append(start);
    return upload;
  } catch (const std::system_error&) {
    return nullptr;  // no descriptor or memory for a file: the buffered way may still work
  }
}

SubmitUpload::SubmitUpload(std::uint64_t offset, std::uint64_t body_bytes, MemoryCharge charge)
    : offset_(offset), body_bytes_(body_bytes), segment_(offset), charge_(std::move(charge)) {}

bool SubmitUpload::add(std::string_view bytes) {
  if (!charge_.resize(segment_.size() + bytes.size())) return false;
  try {
    segment_.append(bytes);
  } catch (const std::system_error&) {
    return false;
  }
  return true;
}

std::unique_ptr<Segment> SubmitUpload::finish() {
  auto sealed = segment_.seal();
  charge_.reset();
  return sealed;
}

}  // namespace mrd::server
