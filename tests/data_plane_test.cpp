// The data plane without a server: a SUBMIT body's layout, the segment it is kept in, the
// descriptor passed to a worker, and the map-task messages that name ranges of it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmath>
#include <cstring>

#include "protocol/body_io.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "protocol/submit_layout.hpp"
#include "server/engine/builtin_jobs.hpp"
#include "server/engine/job_kind.hpp"
#include "server/engine/matrix_multiply.hpp"
#include "server/matrix_result.hpp"
#include "server/pool/segment.hpp"
#include "server/pool/task_message.hpp"
#include "server/pool/worker_process.hpp"
#include "server/result_bytes.hpp"
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

TEST(SubmitLayout, DocumentsAreKnownAsTheirBytesArriveAndLiesAreCaught) {
  const auto body = body_of(
      SubmitRequest{"words",
                    "sum",
                    {},
                    Documents{{{"a", "one two"}, {"", ""}, {"long", std::string(5000, 'w')}}}});
  const auto whole = protocol::decode_submit_layout(body);
  ASSERT_TRUE(whole) << whole.error;
  const auto head = protocol::submit_head_from_prefix(body);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->layout.mapper, "words");
  EXPECT_EQ(head->layout.input.kind, 0);
  // Byte by byte: a document is known exactly once its text's length has arrived.
  protocol::ArrivingDocuments arriving(head->input_offset, body.size());
  std::vector<protocol::DocumentLayout> known;
  for (std::size_t n = 0; n <= body.size(); ++n) {
    ASSERT_TRUE(arriving.read(std::string_view(body).substr(0, n), known)) << n;
    for (const auto& document : known)
      EXPECT_LE(document.text.offset, n);
  }
  EXPECT_TRUE(arriving.complete());
  EXPECT_EQ(known, whole.value->input.documents);

  // Counts and lengths that lie are caught as their bytes arrive, as the whole decode catches
  // them; so is a body that ends inside a field.
  const auto lying = [&](std::size_t at, std::uint64_t value) {
    auto bad = body;
    std::memcpy(bad.data() + at, &value, sizeof value);
    EXPECT_FALSE(protocol::decode_submit_layout(bad));
    protocol::ArrivingDocuments reader(head->input_offset, bad.size());
    std::vector<protocol::DocumentLayout> out;
    return reader.read(bad, out);
  };
  const auto count_at = head->input_offset;
  const auto first_name_at = count_at + 8;
  const auto first_text_at = first_name_at + 8 + 1;
  EXPECT_FALSE(lying(count_at, 1000000));
  EXPECT_FALSE(lying(first_name_at, protocol::kMaxDocumentNameBytes + 1));
  EXPECT_FALSE(lying(first_text_at, body.size()));
  protocol::ArrivingDocuments cut_short(head->input_offset, body.size() - 4000);
  std::vector<protocol::DocumentLayout> out;
  EXPECT_FALSE(cut_short.read(std::string_view(body).substr(0, body.size() - 4000), out));
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

// The kernel refuses the write seal while it holds a page of the file: here a pipe holds one
// (vmsplice), as a fault being served in a worker or a page in another core's LRU batch may for
// a moment. The input is then sealed against resizing only, and its descriptor is read-only.
TEST(GrowingSegment, AFileTheKernelHoldsAPageOfIsSealedAgainstResizingAndLeftReadOnly) {
  const std::string bytes = random_bytes(200000);
  GrowingSegment growing(0);
  growing.append(bytes);
  const auto early = growing.map_ahead(bytes.size());
  int pipe_ends[2];
  ASSERT_EQ(::pipe(pipe_ends), 0);
  iovec page{const_cast<char*>(early->data()), 4096};
  ASSERT_EQ(::vmsplice(pipe_ends[1], &page, 1, 0), 4096) << std::strerror(errno);
  const auto sealed = growing.seal();
  const int seals = ::fcntl(sealed->fd(), F_GET_SEALS);
  EXPECT_EQ(seals & F_SEAL_WRITE, 0) << "the pipe still holds a page: the write seal was refused";
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
  EXPECT_EQ(::fcntl(sealed->fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_LT(::pwrite(sealed->fd(), "x", 1, 0), 0) << "its descriptor still writes";
  EXPECT_TRUE(std::string_view(sealed->data(), sealed->size()) == bytes) << "its bytes changed";
  ::close(pipe_ends[0]);
  ::close(pipe_ends[1]);
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

TEST(WorkerProcess, HugePagesForMallocAreAddedToTheTunablesTheServerWasGiven) {
  EXPECT_EQ(worker_malloc_tunables(nullptr), "GLIBC_TUNABLES=glibc.malloc.hugetlb=1");
  EXPECT_EQ(worker_malloc_tunables(""), "GLIBC_TUNABLES=glibc.malloc.hugetlb=1");
  EXPECT_EQ(worker_malloc_tunables("glibc.malloc.check=3"),
            "GLIBC_TUNABLES=glibc.malloc.check=3:glibc.malloc.hugetlb=1");
  // An operator who chose otherwise is obeyed.
  EXPECT_EQ(worker_malloc_tunables("glibc.malloc.hugetlb=0:glibc.malloc.check=3"),
            "GLIBC_TUNABLES=glibc.malloc.hugetlb=0:glibc.malloc.check=3");
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

/// The inode of the file a descriptor is open on.
ino_t inode_of(int fd) {
  struct stat info {};
  EXPECT_EQ(::fstat(fd, &info), 0);
  return info.st_ino;
}

TEST(FdPassing, TwoDescriptorsArriveInOrderWithTheHeaderOfTheirMessage) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  const auto input = keep(body_of({"words", "sum", {}, Documents{{{"d", "input"}}}}), true);
  const auto result = ResultSegment::create(7, "header", 100);
  ASSERT_TRUE(write_task_message(pair[0], TaskMessageType::kMap, "both", input.fd(), result->fd()));
  ASSERT_TRUE(write_task_message(pair[0], TaskMessageType::kMap, "result", -1, result->fd()));
  const auto both = read_task_message(pair[1]);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->body, "both");
  ASSERT_TRUE(both->attached);
  ASSERT_TRUE(both->also_attached);
  EXPECT_EQ(inode_of(both->attached.get()), inode_of(input.fd()));
  EXPECT_EQ(inode_of(both->also_attached.get()), inode_of(result->fd()));
  // Only one sent: it is the first, whichever file it is (the task says which it expects).
  const auto one = read_task_message(pair[1]);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->body, "result");
  ASSERT_TRUE(one->attached);
  EXPECT_FALSE(one->also_attached);
  EXPECT_EQ(inode_of(one->attached.get()), inode_of(result->fd()));
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

/// The bytes a chunk views: its documents' names and texts, its numbers, its matrices' values.
std::uint64_t viewed_bytes(const engine::InputView& chunk) {
  if (const auto* docs = std::get_if<engine::DocumentsView>(&chunk)) {
    std::uint64_t total = 0;
    for (const auto& d : docs->documents)
      total += d.name.size() + d.text.size();
    return total;
  }
  if (const auto* numbers = std::get_if<engine::NumbersView>(&chunk)) {
    return numbers->values.size_bytes();
  }
  const auto& pair = std::get<engine::MatrixPairView>(chunk);
  return pair.a.values.size_bytes() + pair.b.values.size_bytes();
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
      // Inline, the message holds the chunk's own bytes only (a document's name, its slice of
      // text), not the input between them: names and alignment cost a little more.
      EXPECT_LE(body.size(), 256 + viewed_bytes(chunk) + 40 * 8);
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
  // Chunks of the second document's middle and end, as splitting cuts them: the end is far
  // from the document's name.
  expect_round_trip(text, engine::DocumentsView{{{docs[1].name, docs[1].text.substr(1000, 5000)}}});
  expect_round_trip(text,
                    engine::DocumentsView{{{docs[1].name, docs[1].text.substr(290000, 5000)}}});
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
  // The first document's text range is the second range after the job (partitions, memory
  // limit, hash key, mapper, reducer) and kind: widen it by one.
  const auto text_size_at = 4 + 4 + 16 + 1 + 5 + 1 + 3 + 1 + 4 + 16 + 8;
  std::uint64_t size = 0;
  std::memcpy(&size, body.data() + text_size_at, 8);
  ASSERT_EQ(size, task.chunk.documents[0].text.size);
  ++size;
  std::memcpy(body.data() + text_size_at, &size, 8);
  EXPECT_THROW(decode_map_task(body), protocol::DecodeError);
  EXPECT_THROW(decode_map_task(body.substr(0, body.size() - 1)), protocol::DecodeError);
}

TEST(MapTask, AProductsTaskNamesTheRowsOfTheResultItWrites) {
  const Matrix a{4, 2, {1, 2, 3, 4, 5, 6, 7, 8}};
  const auto input = keep(body_of({"matmul", "rows", {}, MatrixPair{a, a}}), false);
  const auto body = encode_map_task({"matmul", "rows", 1, 0}, input.view(), input.bytes(), false,
                                    protocol::ByteRange{32, 64});
  const auto task = decode_map_task(body);
  EXPECT_TRUE(task.result_in_file);
  EXPECT_EQ(task.result.offset, 32u);
  EXPECT_EQ(task.result.size, 64u);
  const auto plain = decode_map_task(
      encode_map_task({"matmul", "rows", 1, 0}, input.view(), input.bytes(), false));
  EXPECT_FALSE(plain.result_in_file);
  // Only a product writes into a result file.
  const auto words = keep(body_of({"words", "sum", {}, Documents{{{"a", "b c d"}}}}), false);
  EXPECT_THROW(decode_map_task(encode_map_task({"words", "sum", 1, 0}, words.view(), words.bytes(),
                                               false, protocol::ByteRange{32, 8})),
               protocol::DecodeError);
}

TEST(MatrixResult, TheHeaderIsTheEncodedResultsFirstBytes) {
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> shapes{
      {0, 0}, {1, 1}, {3, 7}, {5792, 5792}, {1 << 20, 0}};
  for (const auto& [rows, cols] : shapes) {
    // Only the header is compared: the values need not exist.
    const Matrix small{rows, cols, {}};
    auto header = protocol::encode(protocol::JobResult{small});
    ASSERT_EQ(header.size(), engine::kMatrixResultHeaderBytes);
    std::uint64_t count = rows * cols;  // encode wrote 0: the values vector is empty
    std::memcpy(header.data() + 17, &count, 8);
    EXPECT_EQ(engine::matrix_result_header(rows, cols), header) << rows << "x" << cols;
  }
}

/// A deterministic matrix of values that are not small integers, so that any difference in how
/// BLAS was called would show in the bytes.
Matrix irregular(std::uint64_t rows, std::uint64_t cols, double seed) {
  Matrix m{rows, cols, std::vector<double>(rows * cols)};
  for (std::size_t i = 0; i < m.values.size(); ++i)
    m.values[i] = std::sin(seed + double(i)) / (1 + double(i % 13));
  return m;
}

/// Each chunk's task writes its rows into the result file, as workers do (computed in the kept
/// memory, which each next chunk reuses whatever its size, then written with pwrite); the finished
/// file is the FETCH body the old path encoded, byte for byte, and sealed.
TEST(MatrixResult, RowsWrittenInPlaceAreTheEncodedResultByteForByte) {
  const auto& kind = engine::matrix_multiply_job();
  for (const std::uint64_t chunk_bytes : {1ull, 3000ull, 100000ull, 1ull << 30}) {
    const auto input = keep(
        body_of({"matmul", "rows", {}, MatrixPair{irregular(301, 37, 1), irregular(37, 29, 2)}}),
        true);
    const auto chunks = kind.split(input.view(), chunk_bytes);
    MatrixResult result(input.view(), chunks);
    ASSERT_EQ(result.rows.size(), chunks.size());
    const int copy = ::dup(result.segment->fd());  // to read its seals once it is finished
    std::vector<std::string> blocks;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      const ResultRows rows(result.segment->fd(), result.rows[i].offset, result.rows[i].end());
      engine::multiply_into(chunks[i], rows.data(), result.rows[i].size);
      rows.write_to_file();
      blocks.push_back(kind.map(chunks[i], 1).at(0));  // the old path: pieces, then assemble
    }
    const auto expected = protocol::encode(kind.assemble(std::move(blocks)));
    EXPECT_EQ(Segment::live_shared() > 0, true);
    result.segment->finish();
    EXPECT_EQ(result.segment->fd(), -1);
    ASSERT_EQ(result.segment->body().size(), expected.size());
    EXPECT_TRUE(result.segment->body() == expected) << "chunk bytes " << chunk_bytes;
    EXPECT_EQ(::fcntl(copy, F_GET_SEALS) & F_SEAL_WRITE, F_SEAL_WRITE);
    ::close(copy);
    const ResultBytes bytes(std::shared_ptr<const ResultSegment>(std::move(result.segment)));
    EXPECT_TRUE(bytes.bytes() == expected);
  }
}

TEST(MatrixResult, AWrongRangeIsRefusedNotWrittenPast) {
  const auto input =
      keep(body_of({"matmul", "rows", {}, MatrixPair{irregular(20, 20, 1), irregular(20, 20, 2)}}),
           false);
  std::vector<double> c(401, 7.0);
  auto* out = reinterpret_cast<char*>(c.data());
  EXPECT_THROW(engine::multiply_into(input.view(), out, 399 * 8), engine::JobError);
  EXPECT_THROW(engine::multiply_into(input.view(), out + 4, 400 * 8), engine::JobError);
  EXPECT_EQ(c[400], 7.0);
  engine::multiply_into(input.view(), out, 400 * 8);
  EXPECT_EQ(c[400], 7.0);
  const auto result = ResultSegment::create(7, "h", 100);
  EXPECT_THROW(ResultRows(result->fd(), 50, 108), std::runtime_error);
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

TEST(TaskBatch, IsItsMessagesOneAfterTheOtherAsEachWouldTravelAlone) {
  const std::vector<std::pair<TaskMessageType, std::string>> messages{
      {TaskMessageType::kDone, "pieces"},
      {TaskMessageType::kError, ""},
      {TaskMessageType::kOutOfMemory, std::string(300, 'x')}};
  const auto body = encode_batch(messages);
  std::string alone;
  for (const auto& [type, each] : messages) {
    append_task_header(alone, type, each.size());
    alone += each;
  }
  EXPECT_EQ(body, alone);
  const auto decoded = decode_batch(body);
  ASSERT_EQ(decoded.size(), messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(decoded[i].type, messages[i].first);
    EXPECT_EQ(decoded[i].body, messages[i].second);
  }
}

TEST(TaskBatch, RefusesCutHeadersLyingLengthsNestingAndEmptiness) {
  const auto body = encode_batch({{TaskMessageType::kMapReduce, "abc"}});
  EXPECT_THROW(decode_batch(""), protocol::DecodeError);
  EXPECT_THROW(decode_batch(body.substr(0, 5)), protocol::DecodeError);                // cut header
  EXPECT_THROW(decode_batch(body.substr(0, body.size() - 1)), protocol::DecodeError);  // lying
  EXPECT_THROW(decode_batch(body + body.substr(0, 9)), protocol::DecodeError);
  EXPECT_THROW(decode_batch(encode_batch({{TaskMessageType::kBatch, body}})),
               protocol::DecodeError);
  EXPECT_THROW(decode_batch(encode_batch({{TaskMessageType::kBatchDone, ""}})),
               protocol::DecodeError);
  auto unknown = body;
  unknown[0] = 9;
  EXPECT_THROW(decode_batch(unknown), protocol::DecodeError);
}

}  // namespace
}  // namespace mrd::server
