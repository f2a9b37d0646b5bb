// The data plane without a server: a SUBMIT body's layout, the segment it is kept in, the
// descriptor passed to a worker, and the map-task messages that name ranges of it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "protocol/body_io.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "protocol/submit_layout.hpp"
#include "server/pool/segment.hpp"
#include "server/pool/task_message.hpp"
#include "server/submitted_input.hpp"

namespace mrd::server {
namespace {

using protocol::Documents;
using protocol::Matrix;
using protocol::MatrixPair;
using protocol::Numbers;
using protocol::SubmitRequest;

std::string body_of(const SubmitRequest& request) {
  return protocol::encode(request);
}

SubmittedInput keep(const std::string& body, bool shared) {
  auto layout = protocol::decode_submit_layout(body);
  EXPECT_TRUE(layout) << layout.error;
  return SubmittedInput(body, std::move(*layout.value), shared);
}

std::string random_bytes(std::size_t n) {
  std::string bytes(n, '\0');
  std::uint32_t x = 12345;
  for (auto& b : bytes) {
    x = x * 1664525 + 1013904223;
    b = static_cast<char>(x >> 24);
  }
  return bytes;
}

bool aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % alignof(double) == 0;
}

TEST(SubmitLayout, RangesPointAtTheBodysOwnBytes) {
  const SubmitRequest request{
      "index", "postings", {}, Documents{{{"a.txt", "to be"}, {"b", "or"}}}};
  const auto body = body_of(request);
  const auto layout = protocol::decode_submit_layout(body);
  ASSERT_TRUE(layout) << layout.error;
  ASSERT_EQ(layout.value->input.documents.size(), 2u);
  const auto at = [&](protocol::ByteRange r) { return body.substr(r.offset, r.size); };
  EXPECT_EQ(at(layout.value->input.documents[0].name), "a.txt");
  EXPECT_EQ(at(layout.value->input.documents[0].text), "to be");
  EXPECT_EQ(at(layout.value->input.documents[1].name), "b");
  EXPECT_EQ(at(layout.value->input.documents[1].text), "or");
  // And the copying decoder, built on it, gives the request back.
  EXPECT_EQ(protocol::materialize(*layout.value, body), request);
}

TEST(SubmitLayout, EveryValueIsAMultipleOfEightBytesFromTheFirst) {
  // Names of odd lengths put the values at odd offsets of the body.
  const SubmitRequest request{
      "matmul", "rows", {}, MatrixPair{Matrix{1, 3, {1, 2, 3}}, Matrix{3, 1, {4, 5, 6}}}, "k"};
  const auto body = body_of(request);
  const auto layout = protocol::decode_submit_layout(body);
  ASSERT_TRUE(layout) << layout.error;
  const auto& l = *layout.value;
  EXPECT_EQ(l.values_offset, l.input.a.values.offset);
  EXPECT_EQ((l.input.b.values.offset - l.values_offset) % 8, 0u);
  double first = 0;
  std::memcpy(&first, body.data() + l.input.b.values.offset, sizeof first);
  EXPECT_EQ(first, 4.0);
}

TEST(SubmitLayout, RefusesWhatDecodeRefuses) {
  auto body = body_of({"words", "sum", {}, Documents{{{"a", "b"}}}});
  body.push_back('x');
  const auto layout = protocol::decode_submit_layout(body);
  ASSERT_FALSE(layout);
  EXPECT_EQ(layout.error, protocol::decode<SubmitRequest>(body).error);
  body.resize(body.size() - 3);  // now truncated inside the text
  EXPECT_FALSE(protocol::decode_submit_layout(body));
}

TEST(SubmitLayout, TheValuesOffsetIsKnownFromTheFirstBytes) {
  // Names and keys up to their limits, every input kind: the prefix tells what the whole says.
  const std::string longest_name(protocol::kMaxNameBytes, 'n');
  const std::string longest_key(protocol::kMaxIdempotencyKeyBytes, 'k');
  const std::vector<SubmitRequest> requests = {
      {"words", "sum", {}, Documents{{{"a", std::string(1000, 'w')}}}},
      {"n", "stats", {}, Numbers{std::vector<double>(200, 1.0)}, "k1"},
      {longest_name, longest_name, {}, Numbers{std::vector<double>(200, 1.0)}, longest_key},
      {longest_name,
       longest_name,
       {},
       MatrixPair{Matrix{10, 10, std::vector<double>(100)}, Matrix{10, 1, std::vector<double>(10)}},
       longest_key},
  };
  for (const auto& request : requests) {
    const auto body = body_of(request);
    ASSERT_GT(body.size(), protocol::kSubmitPrefixBytes);
    const auto layout = protocol::decode_submit_layout(body);
    ASSERT_TRUE(layout) << layout.error;
    const auto from_prefix = protocol::values_offset_from_prefix(
        std::string_view(body).substr(0, protocol::kSubmitPrefixBytes));
    ASSERT_TRUE(from_prefix) << request.mapper;
    EXPECT_EQ(*from_prefix, layout.value->values_offset) << request.mapper;
  }
  // A start that is no SUBMIT says so; the whole body's decode gives the reason.
  EXPECT_FALSE(
      protocol::values_offset_from_prefix(std::string(protocol::kSubmitPrefixBytes, '\xff')));
  auto body = body_of(requests[1]);
  const std::size_t kind_at =
      (8 + 1) + (8 + 5) + 20 + (8 + 2);  // after "n", "stats", options, "k1"
  ASSERT_EQ(body[kind_at], 1);
  body[kind_at] = 7;  // an input kind that is not defined
  EXPECT_FALSE(protocol::values_offset_from_prefix(body));
}

TEST(GrowingSegment, HoldsWhatWasAppendedAndSealsLikeCreate) {
  const std::string bytes = random_bytes(200000);
  const auto before = Segment::live_shared();
  GrowingSegment growing(3);
  EXPECT_EQ(Segment::live_shared(), before + 1);
  for (std::size_t at = 0; at < bytes.size(); at += 7001) {
    growing.append(std::string_view(bytes).substr(at, 7001));
    EXPECT_EQ(growing.size(), 3 + std::min(bytes.size(), at + 7001));
  }
  const auto sealed = growing.seal();
  const auto created = Segment::create(3, bytes, true);
  ASSERT_EQ(sealed->size(), created->size());
  EXPECT_EQ(std::string_view(sealed->data(), sealed->size()),
            std::string_view(created->data(), created->size()));
  EXPECT_EQ(::fcntl(sealed->fd(), F_GET_SEALS), ::fcntl(created->fd(), F_GET_SEALS));
  EXPECT_NE(::fcntl(sealed->fd(), F_GET_SEALS) & F_SEAL_WRITE, 0);
}

TEST(SubmittedInput, NumbersAndMatricesAreAlignedInTheSegmentWhateverTheNames) {
  for (const std::string name : {"m", "ma", "mat", "matm", "matmu", "matmul", "matmul7"}) {
    for (const bool shared : {false, true}) {
      const auto numbers = keep(body_of({name, "stats", {}, Numbers{{1.5, 2.5}}}), shared);
      const auto& values = std::get<engine::NumbersView>(numbers.view()).values;
      ASSERT_EQ(values.size(), 2u);
      EXPECT_TRUE(aligned(values.data())) << name;
      EXPECT_EQ(values[1], 2.5);

      const auto pair = keep(
          body_of({name, "rows", {}, MatrixPair{Matrix{1, 1, {3}}, Matrix{1, 2, {4, 5}}}}), shared);
      const auto& view = std::get<engine::MatrixPairView>(pair.view());
      EXPECT_TRUE(aligned(view.a.values.data()) && aligned(view.b.values.data())) << name;
      EXPECT_EQ(view.b.values[1], 5.0);
    }
  }
}

TEST(SubmittedInput, ASharedInputIsASealedMemoryFile) {
  const auto body = body_of({"words", "sum", {}, Documents{{{"doc", std::string(100000, 'w')}}}});
  const auto before = Segment::live_shared();
  {
    const auto input = keep(body, true);
    ASSERT_GE(input.fd(), 0);
    EXPECT_EQ(Segment::live_shared(), before + 1);
    EXPECT_EQ(input.body(), body);
    // Nobody may write it, grow it or shrink it now: not even through a new mapping.
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, input.fd(), 0), MAP_FAILED);
    EXPECT_NE(::ftruncate(input.fd(), 10), 0);
    EXPECT_NE(::ftruncate(input.fd(), 1 << 20), 0);
    EXPECT_EQ(::pwrite(input.fd(), "x", 1, 0), -1);
  }
  EXPECT_EQ(Segment::live_shared(), before);
}

TEST(SubmittedInput, ASmallInputStaysOnTheHeap) {
  const auto input = keep(body_of({"words", "sum", {}, Documents{{{"a", "b c"}}}}), false);
  EXPECT_EQ(input.fd(), -1);
  EXPECT_EQ(std::get<engine::DocumentsView>(input.view()).documents[0].text, "b c");
}

TEST(FdPassing, TheDescriptorArrivesWithTheHeaderOfItsMessage) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  const auto input =
      keep(body_of({"words", "sum", {}, Documents{{{"d", "some words here"}}}}), true);
  ASSERT_TRUE(write_task_message(pair[0], TaskMessageType::kReduce, "first"));
  ASSERT_TRUE(write_task_message(pair[0], TaskMessageType::kMap, "second", input.fd()));
  const auto first = read_task_message(pair[1]);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "first");
  EXPECT_FALSE(first->attached);
  const auto second = read_task_message(pair[1]);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "second");
  ASSERT_TRUE(second->attached);
  EXPECT_NE(second->attached.get(), input.fd());  // a descriptor of its own, to the same file
  const SegmentView mapped(second->attached.get(), 0, input.bytes().size());
  EXPECT_EQ(std::string_view(mapped.data(), input.bytes().size()), input.bytes());
  ::close(pair[0]);
  ::close(pair[1]);
}

TEST(SegmentView, RefusesRangesPastTheFile) {
  const auto input = keep(body_of({"words", "sum", {}, Documents{{{"d", "abc"}}}}), true);
  EXPECT_THROW(SegmentView(input.fd(), 0, input.bytes().size() + 1), std::runtime_error);
  EXPECT_THROW(SegmentView(input.fd(), 5, 4), std::runtime_error);
  const SegmentView tail(input.fd(), input.bytes().size() - 3, input.bytes().size());
  EXPECT_EQ(std::string_view(tail.data(), 3), "abc");
}

/// Encodes a map task for each chunk and reads it back as a worker does: the chunk a worker sees
/// must be the chunk the scheduler cut, byte for byte, with the input inline or mapped.
void expect_round_trip(const SubmittedInput& input, const engine::InputView& chunk) {
  const TaskJob job{"m", "r", 3, 64};
  for (const bool in_file : {false, true}) {
    if (in_file && input.fd() < 0) continue;
    const auto body = encode_map_task(job, chunk, input.bytes(), in_file);
    const auto task = decode_map_task(body);
    EXPECT_EQ(task.job.partitions, 3u);
    EXPECT_EQ(task.job.memory_limit_mib, 64u);
    EXPECT_EQ(task.in_file, in_file);
    std::optional<SegmentView> mapped;
    const char* span = task.inline_bytes.data();
    if (in_file) {
      mapped.emplace(input.fd(), task.span.offset, task.span.end());
      span = mapped->data();
    } else {
      // Inline, the message holds the chunk's span only, not the whole input.
      EXPECT_LE(body.size(), 128 + task.span.size + 40 * 8);
    }
    EXPECT_EQ(engine::to_owned(chunk_view(task, span)), engine::to_owned(chunk));
  }
}

TEST(MapTask, AWorkerSeesTheChunkTheSchedulerCut) {
  std::string big(300000, 'a');
  for (std::size_t i = 0; i < big.size(); i += 7)
    big[i] = ' ';
  const auto text =
      keep(body_of({"words", "sum", {}, Documents{{{"x", "one two"}, {"big.txt", big}}}}), true);
  const auto& docs = std::get<engine::DocumentsView>(text.view()).documents;
  // A chunk of the second document's middle, as splitting cuts one.
  expect_round_trip(text, engine::DocumentsView{{{docs[1].name, docs[1].text.substr(1000, 5000)}}});
  expect_round_trip(text, text.view());

  std::vector<double> values(20000);
  for (std::size_t i = 0; i < values.size(); ++i)
    values[i] = double(i) / 3;
  const auto numbers = keep(body_of({"numbers", "stats", {}, Numbers{values}}), true);
  const auto all = std::get<engine::NumbersView>(numbers.view()).values;
  expect_round_trip(numbers, engine::NumbersView{all.subspan(101, 999)});

  const Matrix a{100, 100, std::vector<double>(10000, 2.0)};
  const auto product = keep(body_of({"matmul", "rows", {}, MatrixPair{a, a}}), true);
  const auto& pair = std::get<engine::MatrixPairView>(product.view());
  // Rows 10 to 19 of A, against all of B.
  expect_round_trip(product,
                    engine::MatrixPairView{{10, 100, pair.a.values.subspan(1000, 1000)}, pair.b});
}

TEST(MapTask, AChunkOutsideItsInputIsRefusedWhenEncoding) {
  const auto input = keep(body_of({"words", "sum", {}, Documents{{{"a", "b"}}}}), false);
  const std::string elsewhere = "not in the input";
  EXPECT_THROW(encode_map_task({}, engine::DocumentsView{{{"", elsewhere}}}, input.bytes(), false),
               std::invalid_argument);
}

TEST(MapTask, RangesOutsideTheSpanAreRefusedWhenDecoding) {
  const auto input = keep(body_of({"words", "sum", {}, Documents{{{"a", "b c d"}}}}), false);
  auto body = encode_map_task({"words", "sum", 1, 0}, input.view(), input.bytes(), false);
  const auto task = decode_map_task(body);
  // The first document's text range is the second range after the job and kind: widen it by one.
  const auto text_size_at = 4 + 4 + 1 + 5 + 1 + 3 + 1 + 4 + 16 + 8;
  std::uint64_t size = 0;
  std::memcpy(&size, body.data() + text_size_at, 8);
  ASSERT_EQ(size, task.chunk.documents[0].text.size);
  ++size;
  std::memcpy(body.data() + text_size_at, &size, 8);
  EXPECT_THROW(decode_map_task(body), protocol::DecodeError);
  EXPECT_THROW(decode_map_task(body.substr(0, body.size() - 1)), protocol::DecodeError);
}

TEST(TaskPieces, RoundTripAndRefuseLies) {
  const std::vector<std::string> pieces{"", "abc", std::string(1000, 'z')};
  EXPECT_EQ(decode_pieces(encode_pieces(pieces)), pieces);
  auto lying = encode_pieces(pieces);
  lying[0] = 100;  // a hundred pieces in a few bytes
  EXPECT_THROW(decode_pieces(lying), protocol::DecodeError);

  const std::string p1 = "one", p2 = "two";
  const auto reduce = decode_reduce_task(encode_reduce_task({"words", "sum", 2, 8}, {&p1, &p2}));
  EXPECT_EQ(reduce.job.mapper, "words");
  EXPECT_EQ(reduce.job.memory_limit_mib, 8u);
  EXPECT_EQ(reduce.pieces, (std::vector<std::string>{"one", "two"}));
}

}  // namespace
}  // namespace mrd::server
