// The protocol codec, byte for byte: golden frames, partial input, every limit.
#include <gtest/gtest.h>
#include <cereal/types/string.hpp>

#include <cmath>
#include <sstream>
#include <string>

#include "protocol/body_io.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "protocol_examples.hpp"

namespace mrd::protocol {
namespace {

using Outcome = ParsedFrame::Outcome;

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values)
    out.push_back(static_cast<char>(v));
  return out;
}

TEST(Frame, HeaderIsOpcodeThenLittleEndianLength) {
  std::string out;
  append_header(out, 1, 0x04030201);
  EXPECT_EQ(out, bytes({0x01, 0x01, 0x02, 0x03, 0x04}));
}

TEST(Frame, FetchRequestGolden) {
  // FETCH job 7: opcode 1, length 4, u32 7.
  EXPECT_EQ(examples::message(1, JobId{7}), bytes({0x01, 0x04, 0, 0, 0, 0x07, 0, 0, 0}));
}

TEST(Frame, HelloRequestGolden) {
  EXPECT_EQ(examples::message(6, Hello{1, ""}),
            bytes({0x06, 0x0a, 0, 0, 0, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(Frame, ErrorReplyGolden) {
  // UNKNOWN_JOB, body = u64 length 8 + "no job 9".
  EXPECT_EQ(examples::message(2, ErrorMessage{"no job 9"}),
            bytes({0x02, 0x10, 0,   0,   0,   0x08, 0,   0,   0,   0,  0,
                   0,    0,    'n', 'o', ' ', 'j',  'o', 'b', ' ', '9'}));
}

TEST(Frame, SubmitStatsGolden) {
  SubmitRequest request{"numbers", "stats", {65536, 2, 1000, 512}, Numbers{{1.0}}, "k1"};
  const auto body = encode(request);
  std::string expected = bytes({7, 0, 0, 0, 0, 0, 0, 0}) + "numbers" +
                         bytes({5, 0, 0, 0, 0, 0, 0, 0}) + "stats" +
                         bytes({0, 0, 1, 0, 0, 0, 0, 0}) +         // chunk_bytes = 65536
                         bytes({2, 0, 0, 0}) +                     // partitions = 2
                         bytes({0xe8, 0x03, 0, 0}) +               // task_timeout_ms = 1000
                         bytes({0, 2, 0, 0}) +                     // memory_limit_mib = 512
                         bytes({2, 0, 0, 0, 0, 0, 0, 0}) + "k1" +  // idempotency key
                         bytes({1}) +                              // input kind: numbers
                         bytes({1, 0, 0, 0, 0, 0, 0, 0}) +         // one number
                         bytes({0, 0, 0, 0, 0, 0, 0xf0, 0x3f});    // 1.0
  EXPECT_EQ(body, expected);
}

TEST(Frame, ProgressGolden) {
  EXPECT_EQ(encode(JobProgress{7, JobState::kReducing, 4, 4, 1, 2}),
            bytes({7, 0, 0, 0, 2, 4, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0}));
}

TEST(Frame, ParseNeedsTheWholeHeaderThenTheWholeBody) {
  const auto frame = examples::message(1, JobId{7});
  for (std::size_t n = 0; n < frame.size(); ++n) {
    const auto parsed = parse_request(std::string_view(frame).substr(0, n), kDefaultMaxFrameBytes);
    EXPECT_EQ(parsed.outcome, Outcome::kNeedMore) << "prefix of " << n;
    EXPECT_EQ(parsed.frame_bytes, n < kHeaderBytes ? 0u : frame.size()) << "prefix of " << n;
  }
  const auto parsed = parse_request(frame, kDefaultMaxFrameBytes);
  ASSERT_EQ(parsed.outcome, Outcome::kFrame);
  EXPECT_EQ(parsed.code, 1);
  EXPECT_EQ(parsed.frame_bytes, frame.size());
  EXPECT_EQ(parsed.body, bytes({7, 0, 0, 0}));
}

TEST(Frame, EveryExampleParsesWhenFedOneByteAtATime) {
  for (const auto& example : examples::all_examples()) {
    std::string buffer;
    int frames = 0;
    for (char c : example.bytes) {
      buffer.push_back(c);
      const auto parsed = parse_frame(buffer, kDefaultMaxFrameBytes);
      if (parsed.outcome == Outcome::kFrame) {
        ++frames;
        EXPECT_EQ(parsed.frame_bytes, buffer.size()) << example.name;
        buffer.erase(0, parsed.frame_bytes);
      }
    }
    EXPECT_EQ(frames, 1) << example.name;
    EXPECT_TRUE(buffer.empty()) << example.name;
  }
}

TEST(Frame, TwoPipelinedFramesSplitAtEveryOffset) {
  const auto stream = examples::message(1, JobId{7}) + examples::message(2, JobId{8});
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string buffer = stream.substr(0, cut);
    std::vector<std::uint32_t> ids;
    auto drain = [&] {
      for (;;) {
        const auto parsed = parse_request(buffer, kDefaultMaxFrameBytes);
        if (parsed.outcome != Outcome::kFrame) break;
        ids.push_back(decode<JobId>(parsed.body).value->id);
        buffer.erase(0, parsed.frame_bytes);
      }
    };
    drain();
    buffer += stream.substr(cut);
    drain();
    EXPECT_EQ(ids, (std::vector<std::uint32_t>{7, 8})) << "cut at " << cut;
  }
}

TEST(Frame, LengthIsCheckedAgainstTheLimitBeforeTheBodyArrives) {
  // SUBMIT declaring 4 GiB - 1: refused from the header alone.
  const auto header = bytes({0x00, 0xff, 0xff, 0xff, 0xff});
  const auto parsed = parse_request(header, kDefaultMaxFrameBytes);
  EXPECT_EQ(parsed.outcome, Outcome::kTooLarge);
  EXPECT_EQ(parsed.body_bytes, 0xffffffffu);
  EXPECT_EQ(parsed.frame_bytes, 0u);
}

TEST(Frame, SmallOpcodesHaveASmallLimit) {
  std::string header;
  append_header(header, 1, kMaxSmallBodyBytes + 1);
  EXPECT_EQ(parse_request(header, kDefaultMaxFrameBytes).outcome, Outcome::kTooLarge);
  header.clear();
  append_header(header, 1, kMaxSmallBodyBytes);
  EXPECT_EQ(parse_request(header, kDefaultMaxFrameBytes).outcome, Outcome::kNeedMore);
  header.clear();
  append_header(header, 0, kMaxSmallBodyBytes + 1);  // SUBMIT: the big limit applies
  EXPECT_EQ(parse_request(header, kDefaultMaxFrameBytes).outcome, Outcome::kNeedMore);
}

TEST(Codec, EveryMessageRoundTrips) {
  SubmitRequest docs{"words", "sum", {100, 3, 5, 6}, Documents{{{"a", "x y"}, {"", ""}}}, "key"};
  SubmitRequest numbers{"numbers", "stats", {}, Numbers{{1, -2.5, INFINITY}}};
  SubmitRequest matrices{"matmul", "rows", {}, MatrixPair{{2, 1, {1, 2}}, {1, 2, {3, 4}}}};
  for (const auto& request : {docs, numbers, matrices}) {
    const auto decoded = decode<SubmitRequest>(encode(request));
    ASSERT_TRUE(decoded) << decoded.error;
    EXPECT_EQ(*decoded.value, request);
  }
  for (const JobResult& result :
       {JobResult{Counts{{{"a", 3}, {"b", 1}}}}, JobResult{Postings{{{"w", {"d1", "d2"}}}}},
        JobResult{Matrix{1, 2, {1, 2}}}, JobResult{Statistics{3, 1, 2, 3, 0, 5}}}) {
    const auto decoded = decode<JobResult>(encode(result));
    ASSERT_TRUE(decoded) << decoded.error;
    EXPECT_EQ(*decoded.value, result);
  }
  JobList list{{{1, JobState::kDone}, {2, JobState::kFailed}}};
  EXPECT_EQ(*decode<JobList>(encode(list)).value, list);
  ServerStats stats{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  EXPECT_EQ(*decode<ServerStats>(encode(stats)).value, stats);
  EXPECT_EQ(encode(stats).size(), 14u * 8);
  Hello hello{1, "mrd 0.1.0"};
  EXPECT_EQ(*decode<Hello>(encode(hello)).value, hello);
}

TEST(Codec, AGatheredSubmitIsTheSameFrameSentFromTheRequestsOwnBytes) {
  const std::string big(kGatherFromBytes, 'w');
  const std::vector<double> values(kGatherFromBytes / sizeof(double), 1.5);
  const std::size_t side = values.size() / 8;  // 8 x side
  SubmitRequest docs{"words",
                     "sum",
                     {100, 3, 5, 6},
                     Documents{{{"a", big}, {"b", "small"}, {"", ""}, {"c", big + "x"}}},
                     "key"};
  SubmitRequest numbers{"numbers", "stats", {}, Numbers{values}};
  SubmitRequest matrices{"matmul", "rows", {}, MatrixPair{{8, side, values}, {side, 8, values}}};
  SubmitRequest tiny{"words", "sum", {}, Documents{{{"doc", "a small one"}}}};
  for (const auto* request : {&docs, &numbers, &matrices, &tiny}) {
    std::string frame;
    append_message(frame, 0, *request);
    const auto gathered = gather_message(0, *request);
    std::string sent;
    for (const auto piece : gathered.pieces())
      sent += piece;
    EXPECT_EQ(sent, frame) << "the pieces, in order, are the frame, header included";
    EXPECT_EQ(gathered.size(), frame.size());
    // Every payload of kGatherFromBytes or more is sent from the request, not copied.
    for (const auto& payload : gathered.payloads) {
      EXPECT_GE(payload.bytes.size(), kGatherFromBytes);
      EXPECT_LE(payload.at, gathered.bytes.size());
    }
    EXPECT_LT(gathered.bytes.size(), 1000u) << "only the small fields are encoded";
  }
  const auto gathered = gather_message(0, docs);
  ASSERT_EQ(gathered.payloads.size(), 2u);
  EXPECT_EQ(gathered.payloads[0].bytes.data(),
            std::get<Documents>(docs.input).documents[0].text.data());
  EXPECT_EQ(gathered.payloads[1].bytes.data(),
            std::get<Documents>(docs.input).documents[3].text.data());
  EXPECT_EQ(gather_message(0, matrices).payloads.size(), 2u);
  EXPECT_TRUE(gather_message(0, tiny).payloads.empty());
}

TEST(Codec, AGatheredSubmitLeavesRoomForTextsItDoesNotHold) {
  const std::string file_a(100000, 'a'), file_c(7, 'c'), big(kGatherFromBytes, 'b');
  // Documents 0 and 2 are sent from elsewhere (files), 1 from the request.
  SubmitRequest held{"words", "sum", {}, Documents{{{"a", ""}, {"b", big}, {"c", ""}}}, "k"};
  const std::vector<std::uint64_t> outside{file_a.size(), 0, file_c.size()};
  const auto gathered = gather_message(0, held, outside);
  std::string sent;
  const auto append = [&sent](std::string_view bytes) { sent += bytes; };
  gathered.for_each_piece(append, append, [&](std::size_t document, std::uint64_t bytes) {
    EXPECT_EQ(bytes, outside[document]);
    sent += document == 0 ? file_a : file_c;
  });
  SubmitRequest whole = held;
  std::get<Documents>(whole.input).documents[0].text = file_a;
  std::get<Documents>(whole.input).documents[2].text = file_c;
  std::string frame;
  append_message(frame, 0, whole);
  EXPECT_EQ(sent, frame) << "the frame of the request holding those texts";
  EXPECT_EQ(gathered.size(), frame.size());
  ASSERT_EQ(gathered.payloads.size(), 3u);  // even a 7-byte outside text is left to the sender
  EXPECT_THROW(gathered.pieces(), std::logic_error);
}

TEST(Codec, AMatrixResultIsViewedInPlaceAsItWouldDecode) {
  const Matrix product{2, 3, {1, -2, 3.5, 4, 5, 6}};
  const std::string body = encode(JobResult{product});
  ASSERT_TRUE(holds_matrix_result(body));
  const auto view = decode<MatrixResultView>(body);
  ASSERT_TRUE(view) << view.error;
  EXPECT_EQ(view.value->rows, 2u);
  EXPECT_EQ(view.value->cols, 3u);
  EXPECT_EQ(view.value->values,
            std::string_view(reinterpret_cast<const char*>(product.values.data()),
                             product.values.size() * sizeof(double)));
  EXPECT_EQ(view.value->values.data(), body.data() + body.size() - view.value->values.size())
      << "the values are viewed where they are, not copied";
  // Other results are not matrices; every cut or lengthened body is refused by both decoders.
  EXPECT_FALSE(holds_matrix_result(encode(JobResult{Counts{{{"a", 3}}}})));
  EXPECT_FALSE(holds_matrix_result(""));
  EXPECT_FALSE(decode<MatrixResultView>(encode(JobResult{Statistics{3, 1, 2, 3, 0, 5}})));
  for (std::size_t cut = 0; cut < body.size(); ++cut) {
    EXPECT_FALSE(decode<MatrixResultView>(body.substr(0, cut))) << cut;
    EXPECT_FALSE(decode<JobResult>(body.substr(0, cut))) << cut;
  }
  EXPECT_FALSE(decode<MatrixResultView>(body + "x"));
}

TEST(Codec, AGatheredSubmitLeavesRoomForMatrixValuesItDoesNotHold) {
  const Matrix a{2, 3, {1, 2, 3, 4, 5, 6}}, b{3, 1, {-1, 0.5, 7}};
  const auto values = [](const Matrix& m) {
    return std::string(reinterpret_cast<const char*>(m.values.data()),
                       m.values.size() * sizeof(double));
  };
  // B's values are sent from elsewhere (slot 1); A's, small, are in the request.
  SubmitRequest held{"matmul", "rows", {}, MatrixPair{a, Matrix{b.rows, b.cols, {}}}, "k"};
  const std::vector<std::uint64_t> outside{0, values(b).size()};
  const auto gathered = gather_message(0, held, outside);
  std::string sent;
  const auto append = [&sent](std::string_view bytes) { sent += bytes; };
  gathered.for_each_piece(append, append, [&](std::size_t slot, std::uint64_t bytes) {
    EXPECT_EQ(slot, 1u);
    EXPECT_EQ(bytes, values(b).size());
    sent += values(b);
  });
  std::string frame;
  append_message(frame, 0, SubmitRequest{"matmul", "rows", {}, MatrixPair{a, b}, "k"});
  EXPECT_EQ(sent, frame) << "the frame of the request holding those values";
  EXPECT_EQ(gathered.size(), frame.size());
  // Values come in whole doubles.
  const std::vector<std::uint64_t> ragged{0, 23};
  EXPECT_THROW(gather_message(0, held, ragged), std::invalid_argument);
}

TEST(Codec, VersionFourDetailsRoundTripAndAreRefusedWhenTruncated) {
  const JobDetails details{{7, JobState::kFailed, 3, 4, 0, 2},
                           "words",
                           "sum",
                           "alice",
                           66,
                           1764576000000,
                           1764576000012,
                           1764576000250,
                           "a task crashed"};
  const DetailedStats stats{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
                            2,
                            30,
                            {{{1, 0}, {10, 25}, {UINT64_MAX, 30}}, 123},
                            {{{UINT64_MAX, 6}}, 4000}};
  EXPECT_EQ(*decode<JobDetails>(encode(details)).value, details);
  EXPECT_EQ(*decode<DetailedStats>(encode(stats)).value, stats);
  EXPECT_EQ(*decode<StatusRequest>(encode(StatusRequest{9, 1})).value, (StatusRequest{9, 1}));
  EXPECT_EQ(encode(StatusRequest{9, 1}), bytes({9, 0, 0, 0, 1}));
  EXPECT_EQ(encode(StatsRequest{1}), bytes({1}));
  const auto details_body = encode(details), stats_body = encode(stats);
  for (std::size_t n = 0; n < details_body.size(); ++n)
    EXPECT_FALSE(decode<JobDetails>(std::string_view(details_body).substr(0, n))) << n;
  for (std::size_t n = 0; n < stats_body.size(); ++n)
    EXPECT_FALSE(decode<DetailedStats>(std::string_view(stats_body).substr(0, n))) << n;
  // A bucket count that lies is refused by arithmetic (each bucket is 16 bytes).
  auto lying = encode(ServerStats{}) + std::string(16, '\0') + bytes({0, 0, 0, 0, 0, 0, 0, 0x10}) +
               std::string(8, '\0');
  const auto decoded = decode<DetailedStats>(lying);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("histogram bucket count"), std::string::npos) << decoded.error;
}

TEST(Codec, StringsUseCerealsOwnLayout) {
  // BodyWriter::bytes must match what cereal itself writes for a std::string.
  std::string ours;
  BodyWriter(ours).bytes("hello");
  std::string theirs;
  {
    std::ostringstream stream;
    {
      cereal::BinaryOutputArchive archive(stream);
      archive(std::string("hello"));
    }
    theirs = stream.str();
  }
  EXPECT_EQ(ours, theirs);
}

TEST(Codec, TruncatedBodiesAreErrorsAtEveryLength) {
  const auto body = encode(SubmitRequest{"words", "sum", {}, Documents{{{"a", "hello"}}}});
  for (std::size_t n = 0; n < body.size(); ++n) {
    const auto decoded = decode<SubmitRequest>(std::string_view(body).substr(0, n));
    EXPECT_FALSE(decoded) << "length " << n;
    EXPECT_FALSE(decoded.error.empty());
  }
}

TEST(Codec, TrailingBytesAreAnError) {
  const auto decoded = decode<JobId>(bytes({7, 0, 0, 0, 0}));
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("unexpected bytes"), std::string::npos);
}

TEST(Codec, LyingCountsDoNotAllocate) {
  // A 20-byte body declaring 2^60 documents: refused by arithmetic, not by bad_alloc.
  std::string body = bytes({5, 0, 0, 0, 0, 0, 0, 0}) + "words" + bytes({3, 0, 0, 0, 0, 0, 0, 0}) +
                     "sum" + std::string(28, '\0') + bytes({0}) +
                     bytes({0, 0, 0, 0, 0, 0, 0, 0x10});
  const auto decoded = decode<SubmitRequest>(body);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("larger than the body holds"), std::string::npos) << decoded.error;
}

TEST(Codec, LyingStringLengthIsRefused) {
  auto body = bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}) + "x";
  const auto decoded = decode<ErrorMessage>(body);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("larger than the body holds"), std::string::npos) << decoded.error;
}

TEST(Codec, MapperNameLongerThanTheLimitIsRefused) {
  SubmitRequest request{std::string(kMaxNameBytes + 1, 'x'), "sum", {}, Numbers{}};
  const auto decoded = decode<SubmitRequest>(encode(request));
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("mapper name"), std::string::npos) << decoded.error;
}

TEST(Codec, IdempotencyKeyLongerThanTheLimitIsRefused) {
  SubmitRequest request{
      "words", "sum", {}, Documents{}, std::string(kMaxIdempotencyKeyBytes + 1, 'k')};
  const auto decoded = decode<SubmitRequest>(encode(request));
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("idempotency key"), std::string::npos) << decoded.error;
}

TEST(Codec, MatrixShapeMustMatchItsValues) {
  SubmitRequest request{"matmul", "rows", {}, MatrixPair{{2, 2, {1, 2, 3}}, {1, 1, {1}}}};
  const auto decoded = decode<SubmitRequest>(encode(request));
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("different number of values"), std::string::npos) << decoded.error;
}

TEST(Codec, HugeMatrixSidesAreRefused) {
  SubmitRequest request{"matmul", "rows", {}, MatrixPair{{kMaxMatrixSide + 1, 0, {}}, {}}};
  const auto decoded = decode<SubmitRequest>(encode(request));
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("matrix side"), std::string::npos) << decoded.error;
}

TEST(Codec, UndefinedEnumsAreRefused) {
  auto body = encode(SubmitRequest{"words", "sum", {}, Numbers{}});
  body[body.size() - 9] = 9;  // the input kind byte
  EXPECT_FALSE(decode<SubmitRequest>(body));
  auto progress = encode(JobProgress{1, JobState::kDone, 0, 0, 0, 0});
  progress[4] = 42;  // the state byte
  const auto decoded = decode<JobProgress>(progress);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error.find("job state 42"), std::string::npos) << decoded.error;
}

TEST(Wire, NamesAreStable) {
  EXPECT_EQ(to_string(Opcode::kSubmit), "submit");
  EXPECT_EQ(to_string(Status::kFrameTooLarge), "frame-too-large");
  EXPECT_EQ(to_string(JobState::kReducing), "reducing");
  EXPECT_EQ(to_string(Opcode::kAuth), "auth");
  EXPECT_EQ(to_string(Status::kNotAuthenticated), "not-authenticated");
  EXPECT_EQ(to_string(Status::kUnavailable), "unavailable");
  EXPECT_EQ(static_cast<int>(Status::kUnavailable), 21);
  EXPECT_TRUE(is_known_opcode(7));
  EXPECT_FALSE(is_known_opcode(8));
  EXPECT_TRUE(is_known_status(20));
  EXPECT_TRUE(is_known_status(21));
  EXPECT_FALSE(is_known_status(22));
}

}  // namespace
}  // namespace mrd::protocol
