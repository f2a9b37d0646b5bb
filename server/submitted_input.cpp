#include "server/submitted_input.hpp"

namespace mrd::server {
namespace {

std::span<const double> doubles_in(const char* body, protocol::ByteRange range) {
  if (range.size == 0) return {};
  return {reinterpret_cast<const double*>(body + range.offset), range.size / sizeof(double)};
}

engine::InputView view_in(const protocol::SubmitLayout& layout, const char* body) {
  const auto text = [&](protocol::ByteRange range) {
    return std::string_view(body + range.offset, static_cast<std::size_t>(range.size));
  };
  switch (layout.input_kind) {
    case 0: {
      engine::DocumentsView docs;
      docs.documents.reserve(layout.documents.size());
      for (const auto& d : layout.documents)
        docs.documents.push_back({text(d.name), text(d.text)});
      return docs;
    }
    case 1: return engine::NumbersView{doubles_in(body, layout.numbers)};
    default:
      return engine::MatrixPairView{
          {layout.a.rows, layout.a.cols, doubles_in(body, layout.a.values)},
          {layout.b.rows, layout.b.cols, doubles_in(body, layout.b.values)}};
  }
}

/// Bytes before the body so that its values start on an 8-byte boundary (segments start on one).
std::uint64_t alignment_padding(const protocol::SubmitLayout& layout) {
  return (alignof(double) - layout.values_offset % alignof(double)) % alignof(double);
}

}  // namespace

SubmittedInput::SubmittedInput(std::string_view body, protocol::SubmitLayout layout, bool shared)
    : offset_(alignment_padding(layout)), layout_(std::move(layout)) {
  segment_ = Segment::create(offset_, body, shared);
  view_ = view_in(layout_, segment_->data() + offset_);
}

std::string_view SubmittedInput::body() const {
  return {segment_->data() + offset_, static_cast<std::size_t>(segment_->size() - offset_)};
}

std::string_view SubmittedInput::bytes() const {
  return {segment_->data(), static_cast<std::size_t>(segment_->size())};
}

std::uint64_t SubmittedInput::held_bytes() const {
  return held_bytes(segment_->size(), layout_.documents.size());
}

std::uint64_t SubmittedInput::held_bytes(std::uint64_t body_bytes, std::uint64_t documents) {
  // The body (and its padding), and per document its offsets and its views.
  return body_bytes + alignof(double) + sizeof(SubmittedInput) +
         documents * (sizeof(protocol::DocumentLayout) + sizeof(engine::DocumentView));
}

}  // namespace mrd::server
