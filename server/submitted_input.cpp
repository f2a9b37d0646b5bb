#include "server/submitted_input.hpp"

namespace mrd::server {
namespace {

/// Bytes before the body so that its values start on an 8-byte boundary (segments start on one).
std::uint64_t alignment_padding(const protocol::SubmitLayout& layout) {
  return (alignof(double) - layout.values_offset % alignof(double)) % alignof(double);
}

}  // namespace

SubmittedInput::SubmittedInput(std::string_view body, protocol::SubmitLayout layout, bool shared)
    : offset_(alignment_padding(layout)), layout_(std::move(layout)) {
  segment_ = Segment::create(offset_, body, shared);
  view_ = engine::view_in(layout_.input, segment_->data() + offset_);
}

std::string_view SubmittedInput::body() const {
  return {segment_->data() + offset_, static_cast<std::size_t>(segment_->size() - offset_)};
}

std::string_view SubmittedInput::bytes() const {
  return {segment_->data(), static_cast<std::size_t>(segment_->size())};
}

std::uint64_t SubmittedInput::held_bytes() const {
  return held_bytes(segment_->size(), layout_.input.documents.size());
}

std::uint64_t SubmittedInput::held_bytes(std::uint64_t body_bytes, std::uint64_t documents) {
  // The body (and its padding), and per document its offsets and its views.
  return body_bytes + alignof(double) + sizeof(SubmittedInput) +
         documents * (sizeof(protocol::DocumentLayout) + sizeof(engine::DocumentView));
}

}  // namespace mrd::server
