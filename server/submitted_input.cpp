#include "server/submitted_input.hpp"

namespace mrd::server {

SubmittedInput::SubmittedInput(std::string_view body, protocol::SubmitLayout layout, bool shared)
    : offset_(body_offset(layout.values_offset)), layout_(std::move(layout)) {
  segment_ = Segment::create(offset_, body, shared);
  view_ = engine::view_in(layout_.input, segment_->data() + offset_);
}

std::unique_ptr<SubmittedInput> SubmittedInput::copy_of(std::string_view body,
                                                        protocol::SubmitLayout layout) {
  const bool shared =
      body.size() >= kSharedSegmentBytes && Segment::live_shared() < kMaxSharedSegments;
  return std::make_unique<SubmittedInput>(body, std::move(layout), shared);
}

SubmittedInput::SubmittedInput(std::unique_ptr<Segment> segment, std::uint64_t offset,
                               protocol::SubmitLayout layout)
    : segment_(std::move(segment)), offset_(offset), layout_(std::move(layout)) {
  view_ = engine::view_in(layout_.input, segment_->data() + offset_);
}

std::uint64_t SubmittedInput::body_offset(std::uint64_t values_offset) {
  // Segments start on an 8-byte boundary (a page, or new[] of at least that alignment).
  return (alignof(double) - values_offset % alignof(double)) % alignof(double);
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
