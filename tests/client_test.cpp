// Unit tests of the client library: everything that needs no server. Loaders and writers of
// input files, server addresses and lists of them, error mapping, the text and JSON output of
// mrctl, Connection and FailoverConnection against scripted servers; and, the one test that
// starts mrd, failover to a real server.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "client/client_error.hpp"
#include "client/connection.hpp"
#include "client/documents.hpp"
#include "client/failover_connection.hpp"
#include "client/frame_trace.hpp"
#include "client/input_file.hpp"
#include "client/json.hpp"
#include "client/json_output.hpp"
#include "client/matrix_check.hpp"
#include "client/matrix_file.hpp"
#include "client/npy.hpp"
#include "client/numbers_file.hpp"
#include "client/poll_backoff.hpp"
#include "client/progress_report.hpp"
#include "client/receive_buffer.hpp"
#include "client/reply_error.hpp"
#include "client/server_address.hpp"
#include "client/text_matrix.hpp"
#include "client/text_output.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "protocol_examples.hpp"

// The real mrd, for failover against a real server: this build's (tests/CMakeLists.txt names
// it), or $MRD_BINARY.
#include "server_process.hpp"

namespace mrd::client {
namespace {

using protocol::Matrix;
using protocol::Status;
using namespace std::string_literals;

/// Runs `f`, expecting a ClientError of `kind` whose message contains `needle`.
template <class F>
void expect_client_error(F&& f, ErrorKind kind, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected a ClientError containing '" << needle << "'";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

/// A directory of its own under the system temp directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "client_test.XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// --- server addresses ---

TEST(ServerAddress, HostAndPort) {
  EXPECT_EQ(parse_server_address("example.org:4000"), (ServerAddress{"example.org", 4000}));
  EXPECT_EQ(parse_server_address("10.0.0.1:1"), (ServerAddress{"10.0.0.1", 1}));
}

TEST(ServerAddress, DefaultsFillTheMissingHalf) {
  EXPECT_EQ(parse_server_address("example.org"), (ServerAddress{"example.org", 1936}));
  EXPECT_EQ(parse_server_address(":5000"), (ServerAddress{"127.0.0.1", 5000}));
  EXPECT_EQ(parse_server_address(kDefaultServer), ServerAddress{});
}

TEST(ServerAddress, Ipv6) {
  EXPECT_EQ(parse_server_address("[::1]:1936"), (ServerAddress{"::1", 1936}));
  EXPECT_EQ(parse_server_address("[fe80::1]"), (ServerAddress{"fe80::1", 1936}));
  EXPECT_EQ(parse_server_address("::1"), (ServerAddress{"::1", 1936}));
  EXPECT_EQ(to_string(ServerAddress{"::1", 7}), "[::1]:7");
  EXPECT_EQ(to_string(ServerAddress{"localhost", 7}), "localhost:7");
}

TEST(ServerAddress, BadPortsAndBrackets) {
  for (const char* bad :
       {"host:", "host:0", "host:65536", "host:12x", "host:-1", "[::1", "[]:80", "[::1]80", ""}) {
    expect_client_error([&] { parse_server_address(bad); }, ErrorKind::kUsage, "server address");
  }
}

// --- lists of servers (mrctl --server a:1936,b:1936) ---

TEST(ServerList, CommaSeparatedAddresses) {
  EXPECT_EQ(
      parse_server_list("a.example:1936,b.example:1937,10.0.0.3"),
      (std::vector<ServerAddress>{{"a.example", 1936}, {"b.example", 1937}, {"10.0.0.3", 1936}}));
  // Every form of one address is an item of a list, IPv6 literals too: none holds a comma.
  EXPECT_EQ(
      parse_server_list("[::1]:1936,:5000,[fe80::1],::2,host"),
      (std::vector<ServerAddress>{
          {"::1", 1936}, {"127.0.0.1", 5000}, {"fe80::1", 1936}, {"::2", 1936}, {"host", 1936}}));
  EXPECT_EQ(parse_server_list("a:1,a:1"), (std::vector<ServerAddress>{{"a", 1}, {"a", 1}}));
}

TEST(ServerList, OneAddressIsParsedAsOne) {
  for (const char* text : {"example.org:4000", "example.org", ":5000", "[::1]:7", "::1"}) {
    EXPECT_EQ(parse_server_list(text), std::vector<ServerAddress>{parse_server_address(text)});
  }
  EXPECT_EQ(parse_server_list(kDefaultServer), std::vector<ServerAddress>{ServerAddress{}});
  // Refused with the very words of parse_server_address.
  for (const char* bad : {"host:0", "host:", "[::1", ""}) {
    std::string expected;
    try {
      parse_server_address(bad);
    } catch (const ClientError& e) {
      expected = e.what();
    }
    expect_client_error([&] { parse_server_list(bad); }, ErrorKind::kUsage, expected);
  }
}

TEST(ServerList, EmptyItemsAreNamed) {
  expect_client_error([] { parse_server_list("a:1,,b:2"); }, ErrorKind::kUsage,
                      "bad server list 'a:1,,b:2': item 2 is empty");
  expect_client_error([] { parse_server_list("a:1,"); }, ErrorKind::kUsage,
                      "bad server list 'a:1,': item 2 is empty");
  expect_client_error([] { parse_server_list(",a:1"); }, ErrorKind::kUsage,
                      "bad server list ',a:1': item 1 is empty");
  expect_client_error([] { parse_server_list(","); }, ErrorKind::kUsage, "item 1 is empty");
}

TEST(ServerList, BadItemsAreNamed) {
  expect_client_error([] { parse_server_list("a:1,b:0"); }, ErrorKind::kUsage,
                      "bad server address 'b:0': the port must be a number from 1 to 65535");
  expect_client_error([] { parse_server_list("a:1,b:65536"); }, ErrorKind::kUsage,
                      "bad server address 'b:65536'");
  expect_client_error([] { parse_server_list("a:x,b:1"); }, ErrorKind::kUsage,
                      "bad server address 'a:x'");
  expect_client_error([] { parse_server_list("a:1,[::1"); }, ErrorKind::kUsage,
                      "bad server address '[::1': missing ']'");
  expect_client_error([] { parse_server_list("[::1]1936,a:1"); }, ErrorKind::kUsage,
                      "bad server address '[::1]1936': expected ':PORT' after ']'");
  expect_client_error([] { parse_server_list("a:1,[]:1936"); }, ErrorKind::kUsage,
                      "empty host between brackets");
}

TEST(ServerList, PrintsAsItParses) {
  const std::vector<ServerAddress> servers{{"a", 1}, {"::1", 1936}, {"10.0.0.3", 7}};
  EXPECT_EQ(to_string(servers), "a:1,[::1]:1936,10.0.0.3:7");
  EXPECT_EQ(parse_server_list(to_string(servers)), servers);
}

// --- text matrices ---

TEST(TextMatrix, ReadsNumpySavetxtOutput) {
  // np.savetxt("m.txt", np.array([[1.0, 2.5, -3.0], [4e-300, 5e300, 0.1]]))
  const std::string text =
      "1.000000000000000000e+00 2.500000000000000000e+00 -3.000000000000000000e+00\n"
      "4.000000000000000000e-300 5.000000000000000000e+300 1.000000000000000056e-01\n";
  const Matrix m = parse_text_matrix(text, "m.txt");
  EXPECT_EQ(m, (Matrix{2, 3, {1.0, 2.5, -3.0, 4e-300, 5e300, 0.1}}));
}

TEST(TextMatrix, WritesWhatSavetxtWrites) {
  EXPECT_EQ(format_text_matrix(Matrix{2, 2, {1, 2, 3, -0.5}}),
            "1.000000000000000000e+00 2.000000000000000000e+00\n"
            "3.000000000000000000e+00 -5.000000000000000000e-01\n");
  EXPECT_EQ(format_text_matrix(Matrix{1, 1, {0.1}}), "1.000000000000000056e-01\n");
}

TEST(TextMatrix, FormatThenParseIsExact) {
  const Matrix m{2, 3, {0.1, -1.0 / 3, 1e-310, 6.02214076e23, -0.0, 12345.678901234567}};
  EXPECT_EQ(parse_text_matrix(format_text_matrix(m), "x"), m);
}

TEST(TextMatrix, SkipsCommentsAndBlankLines) {
  const std::string text =
      "# written by hand\n"
      "\n"
      "1 2  # trailing comment\n"
      "   \t\n"
      "3\t4\r\n"
      "#\n";
  EXPECT_EQ(parse_text_matrix(text, "x"), (Matrix{2, 2, {1, 2, 3, 4}}));
}

TEST(TextMatrix, AcceptsCommas) {
  EXPECT_EQ(parse_text_matrix("1,2,3\n4, 5 ,6\n", "x"), (Matrix{2, 3, {1, 2, 3, 4, 5, 6}}));
  expect_client_error([] { parse_text_matrix("1,,3\n", "x"); }, ErrorKind::kInput,
                      "x: line 1: an empty value between commas");
}

TEST(TextMatrix, SingleRowAndSingleColumn) {
  EXPECT_EQ(parse_text_matrix("1 2 3 4\n", "x"), (Matrix{1, 4, {1, 2, 3, 4}}));
  EXPECT_EQ(parse_text_matrix("1\n2\n3", "x"), (Matrix{3, 1, {1, 2, 3}}));  // no final newline
}

TEST(TextMatrix, RaggedRowNamesItsLine) {
  expect_client_error([] { parse_text_matrix("# header\n1 2 3\n4 5 6\n\n7 8\n", "a.txt"); },
                      ErrorKind::kInput,
                      "a.txt: line 5: this row has 2 values, the first (line 2) has 3");
}

TEST(TextMatrix, BadValueNamesItsLine) {
  expect_client_error([] { parse_text_matrix("1 2\n3 four\n", "a.txt"); }, ErrorKind::kInput,
                      "a.txt: line 2: 'four' is not a number");
}

TEST(TextMatrix, EmptyFileIsAnError) {
  expect_client_error([] { parse_text_matrix("# nothing\n\n", "a.txt"); }, ErrorKind::kInput,
                      "a.txt: no numbers");
}

TEST(TextMatrix, NanAndInfinityPassThrough) {
  const Matrix m = parse_text_matrix("nan inf -inf\n", "x");
  EXPECT_TRUE(std::isnan(m.values[0]));
  EXPECT_EQ(m.values[1], INFINITY);
  EXPECT_EQ(m.values[2], -INFINITY);
}

// --- .npy ---

/// A .npy file built by hand the way numpy.save builds one: version 1.0, header padded with
/// spaces so the data starts at a multiple of 64.
std::string npy_bytes(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY\x01\x00"s;
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

template <class T>
std::string raw(std::initializer_list<T> values) {
  std::string out;
  for (T v : values)
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  return out;
}

TEST(Npy, ReadsFloat64TwoByThree) {
  const auto bytes = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
                               raw<double>({1, 2, 3, 4, 5, 6.5}));
  EXPECT_EQ(bytes.size(), 128u + 48u);
  EXPECT_EQ(parse_npy(bytes, "a.npy"), (Matrix{2, 3, {1, 2, 3, 4, 5, 6.5}}));
}

TEST(Npy, ReadsInt32AndOtherDtypes) {
  EXPECT_EQ(parse_npy(npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }",
                                raw<std::int32_t>({1, -2, 3, 2147483647})),
                      "a.npy"),
            (Matrix{2, 2, {1, -2, 3, 2147483647}}));
  EXPECT_EQ(parse_npy(npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }",
                                raw<std::int64_t>({-5, 1ll << 40})),
                      "a.npy"),
            (Matrix{1, 2, {-5, 1099511627776.0}}));
  EXPECT_EQ(parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }",
                                raw<float>({0.5f, -1.25f})),
                      "a.npy"),
            (Matrix{2, 1, {0.5, -1.25}}));
}

TEST(Npy, OneDimensionalIsARow) {
  EXPECT_EQ(parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                                raw<double>({7, 8, 9})),
                      "a.npy"),
            (Matrix{1, 3, {7, 8, 9}}));
}

TEST(Npy, FortranOrderIsTransposedIntoRows) {
  // The 2x3 matrix [[1 2 3] [4 5 6]] stored column after column.
  EXPECT_EQ(parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
                                raw<double>({1, 4, 2, 5, 3, 6})),
                      "a.npy"),
            (Matrix{2, 3, {1, 2, 3, 4, 5, 6}}));
}

TEST(Npy, KeyOrderAndQuotesDoNotMatter) {
  EXPECT_EQ(parse_npy(npy_bytes("{\"shape\": (1L, 1L), \"fortran_order\": False, \"descr\": "
                                "\"<f8\"}",
                                raw<double>({42})),
                      "a.npy"),
            (Matrix{1, 1, {42}}));
}

TEST(Npy, Version2HasAFourByteHeaderLength) {
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }";
  std::string header = dict;
  while ((12 + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY\x02\x00"s;
  bytes += static_cast<char>(header.size());
  bytes += "\0\0\0"s;
  bytes += header + raw<double>({1, 2});
  EXPECT_EQ(parse_npy(bytes, "a.npy"), (Matrix{1, 2, {1, 2}}));
}

TEST(Npy, WriterMatchesNumpyByteForByte) {
  const Matrix m{2, 3, {1, 2, 3, 4, 5, 6.5}};
  EXPECT_EQ(encode_npy(m), npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
                                     raw<double>({1, 2, 3, 4, 5, 6.5})));
}

TEST(Npy, RoundTrip) {
  const Matrix m{3, 2, {0.1, -2, 1e300, -1e-300, 0, 42}};
  EXPECT_EQ(parse_npy(encode_npy(m), "x.npy"), m);
}

TEST(Npy, RejectsWhatItCannotRead) {
  const auto with = [](const std::string& dict, const std::string& data) {
    return npy_bytes(dict, data);
  };
  const std::string ok_dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
  const struct {
    std::string bytes;
    std::string message;
  } cases[] = {
      {"PK\x03\x04 not numpy", "not a .npy file"},
      {with("{'descr': '>f8', 'fortran_order': False, 'shape': (1, 1), }", raw<double>({1})),
       "dtype '>f8' is not supported"},
      {with("{'descr': '<c16', 'fortran_order': False, 'shape': (1, 1), }", raw<double>({1, 2})),
       "dtype '<c16' is not supported"},
      {with("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }", raw<double>({1})),
       "structured dtypes"},
      {with("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1), }", raw<double>({1})),
       "3-D array"},
      {with("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw<double>({1})),
       "0-D array"},
      {with(ok_dict, raw<double>({1, 2, 3})), "truncated: shape 2x2 needs 32 bytes"},
      {with(ok_dict, raw<double>({1, 2, 3, 4, 5})), "bytes after the data"},
      {with("{'descr': '<f8', 'shape': (2, 2), }", raw<double>({1, 2, 3, 4})), "lacks one of"},
      {with("{'descr': '<f8', 'fortran_order': Maybe, 'shape': (1,), }", raw<double>({1})),
       "expected True or False"},
      {"\x93NUMPY\x01\x00\xff\x00{'descr'"s, "truncated .npy header"},
      {"\x93NUMPY\x04\x00"s, "format version 4.0 is not supported"},
  };
  for (const auto& c : cases) {
    expect_client_error([&] { parse_npy(c.bytes, "m.npy"); }, ErrorKind::kInput, c.message);
  }
}

TEST(Npy, HugeShapeIsRefusedBeforeAllocating) {
  expect_client_error(
      [] {
        parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, "
                            "99999999999), }",
                            ""),
                  "m.npy");
      },
      ErrorKind::kInput, "at most 1048576 rows and columns");
}

/// What load_npy makes of a file holding `bytes`: the matrix, or the error's message.
std::pair<std::optional<Matrix>, std::string> load_npy_of(const TempDir& dir,
                                                          const std::string& bytes) {
  const auto path = dir.file("m.npy");
  write_output_file(path, bytes);
  try {
    return {load_npy(path), ""};
  } catch (const ClientError& e) {
    return {std::nullopt, e.what()};
  }
}

/// What parse_npy makes of `bytes`, read from the same path.
std::pair<std::optional<Matrix>, std::string> parse_npy_of(const TempDir& dir,
                                                           const std::string& bytes) {
  try {
    return {parse_npy(bytes, dir.file("m.npy")), ""};
  } catch (const ClientError& e) {
    return {std::nullopt, e.what()};
  }
}

// numpy.save's float64 matrices are read from the file straight into the matrix; every other file
// is read whole. Either way a file means what its bytes mean to parse_npy, errors included.
TEST(Npy, AFileIsReadAsItsBytesAre) {
  const std::string native = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
  std::vector<double> many(300 * 400);
  for (std::size_t i = 0; i < many.size(); ++i)
    many[i] = static_cast<double>(i) * 0.5 - 7;
  const std::string many_bytes(reinterpret_cast<const char*>(many.data()),
                               many.size() * sizeof(double));
  // A version 2.0 header longer than what is read first (64 KiB), padded as numpy pads it.
  std::string long_header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }";
  long_header.append(70000, ' ');
  long_header += '\n';
  std::string version_2 = "\x93NUMPY\x02\x00"s;
  for (int shift = 0; shift < 32; shift += 8)
    version_2 += static_cast<char>((long_header.size() >> shift) & 0xff);
  version_2 += long_header + raw<double>({3.5, -1});

  const std::vector<std::string> files = {
      npy_bytes(native, raw<double>({1, 2, 3, 4.5})),
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (300, 400), }", many_bytes),
      npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }",
                raw<double>({1, 2, 3, 4})),
      npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }",
                raw<float>({1.5f, 2})),
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                raw<double>({1, 2, 3})),
      version_2,
      npy_bytes(native, raw<double>({1, 2, 3})),        // truncated
      npy_bytes(native, raw<double>({1, 2, 3, 4, 5})),  // a value too many
      npy_bytes("{'descr': '>f8', 'fortran_order': False, 'shape': (1, 1), }", raw<double>({1})),
      "\x93NUMPY\x01\x00\xff\x00{'descr'"s,
      "\x93NUMPY"s,
      "PK\x03\x04 not numpy",
      "",
  };
  TempDir dir;
  int read = 0;
  for (const auto& bytes : files) {
    const auto loaded = load_npy_of(dir, bytes);
    const auto parsed = parse_npy_of(dir, bytes);
    EXPECT_EQ(loaded.first, parsed.first) << bytes.substr(0, 80);
    EXPECT_EQ(loaded.second, parsed.second) << bytes.substr(0, 80);
    read += loaded.first.has_value();
  }
  EXPECT_EQ(read, 6);  // the first six files hold matrices
  EXPECT_EQ(load_npy_of(dir, files[1]).first->values, many);
  EXPECT_EQ(load_npy_of(dir, version_2).first, (Matrix{1, 2, {3.5, -1}}));

  // What mrctl sends from the file itself (open_npy_values): exactly the whole files in numpy's
  // float64 C-order layout, whose bytes from `offset` to the end are the matrix's values.
  std::vector<bool> sent_from_file;
  for (const auto& bytes : files) {
    const auto path = dir.file("sent.npy");
    write_output_file(path, bytes);
    const auto values = open_npy_values(path);
    sent_from_file.push_back(values.has_value());
    if (!values) continue;
    const auto parsed = parse_npy(bytes, path);
    EXPECT_EQ(values->rows, parsed.rows);
    EXPECT_EQ(values->cols, parsed.cols);
    EXPECT_EQ(values->offset + values->bytes, bytes.size());
    EXPECT_TRUE(bytes.substr(values->offset) ==
                std::string_view(reinterpret_cast<const char*>(parsed.values.data()),
                                 parsed.values.size() * sizeof(double)));
    EXPECT_GE(::fcntl(values->fd, F_GETFD), 0) << "the descriptor is open while it lives";
  }
  // Not version_2: a header past the first 64 KiB read is left to the general way.
  EXPECT_EQ(sent_from_file, (std::vector<bool>{true, true, false, false, true, false, false, false,
                                               false, false, false, false, false}));
  EXPECT_FALSE(open_npy_values(dir.file("missing.npy")).has_value());
  EXPECT_FALSE(open_npy_values(dir.path()).has_value());
}

// --- matrix files ---

TEST(MatrixFile, ExtensionChoosesTheFormat) {
  EXPECT_TRUE(is_npy_path("a.npy"));
  EXPECT_TRUE(is_npy_path("dir/A.NPY"));
  EXPECT_FALSE(is_npy_path("a.txt"));
  EXPECT_FALSE(is_npy_path("npy"));

  TempDir dir;
  const Matrix m{2, 2, {1, 2, 3, 4.5}};
  for (const char* name : {"m.npy", "m.txt", "m"}) {
    save_matrix_file(dir.file(name), m);
    EXPECT_EQ(load_matrix_file(dir.file(name)), m) << name;
  }
  EXPECT_TRUE(read_input_file(dir.file("m.npy")).starts_with("\x93NUMPY"));
  EXPECT_TRUE(read_input_file(dir.file("m.txt")).starts_with("1.000000000000000000e+00 "));
}

TEST(MatrixFile, MissingFileNamesThePath) {
  TempDir dir;
  expect_client_error([&] { load_matrix_file(dir.file("nope.npy")); }, ErrorKind::kInput,
                      "nope.npy: No such file or directory");
}

// --- numbers ---

TEST(Numbers, AnyWhitespaceSeparates) {
  EXPECT_EQ(parse_numbers("1 2\n3\t4.5\r\n\n  -6e2 +7\n", "n.txt"),
            (std::vector<double>{1, 2, 3, 4.5, -600, 7}));
  EXPECT_TRUE(parse_numbers("", "n.txt").empty());
  EXPECT_TRUE(parse_numbers(" \n\n ", "n.txt").empty());
}

TEST(Numbers, NanAndInfAreNumbers) {
  const auto v = parse_numbers("nan inf -Infinity NAN", "n.txt");
  ASSERT_EQ(v.size(), 4u);
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], INFINITY);
  EXPECT_EQ(v[2], -INFINITY);
  EXPECT_TRUE(std::isnan(v[3]));
}

TEST(Numbers, BadTokenNamesItsLine) {
  expect_client_error([] { parse_numbers("1\n2\n3 x4\n", "n.txt"); }, ErrorKind::kInput,
                      "n.txt: line 3: 'x4' is not a number");
  expect_client_error([] { parse_numbers("1,2\n", "n.txt"); }, ErrorKind::kInput,
                      "line 1: '1,2' is not a number");
  expect_client_error([] { parse_numbers("\n\n1e999\n", "n.txt"); }, ErrorKind::kInput,
                      "line 3: '1e999'");
}

// --- documents ---

TEST(Documents, NamedByThePathAsGivenAndReadAsBytes) {
  TempDir dir;
  const std::string binary = "caf\xc3\xa9\r\n\0tail"s;
  write_output_file(dir.file("a.txt"), binary);
  write_output_file(dir.file("b.txt"), "");
  const auto docs = load_documents({dir.file("a.txt"), dir.file("b.txt")});
  ASSERT_EQ(docs.documents.size(), 2u);
  EXPECT_EQ(docs.documents[0], (protocol::Document{dir.file("a.txt"), binary}));
  EXPECT_EQ(docs.documents[1], (protocol::Document{dir.file("b.txt"), ""}));
}

TEST(Documents, DirectoryAndMissingFileAreErrors) {
  TempDir dir;
  expect_client_error([&] { load_documents({dir.path()}); }, ErrorKind::kInput,
                      dir.path() + ": is a directory");
  expect_client_error([&] { load_documents({dir.file("missing")}); }, ErrorKind::kInput,
                      "missing: No such file or directory");
}

TEST(Documents, BigRegularFilesAreOpenedNotReadAndTheRestRead) {
  TempDir dir;
  const std::string big(protocol::kGatherFromBytes, 'b');
  write_output_file(dir.file("big.txt"), big);
  write_output_file(dir.file("small.txt"), "small");
  {
    OpenDocuments opened({dir.file("small.txt"), dir.file("big.txt")});
    ASSERT_EQ(opened.documents.documents.size(), 2u);
    ASSERT_EQ(opened.files.size(), 2u);
    EXPECT_EQ(opened.documents.documents[0].text, "small");
    EXPECT_EQ(opened.files[0].fd, -1);
    EXPECT_EQ(opened.documents.documents[1], (protocol::Document{dir.file("big.txt"), ""}));
    EXPECT_GE(opened.files[1].fd, 0);
    EXPECT_EQ(opened.files[1].bytes, big.size());
  }
  // Past kMaxOpenFiles, files are read rather than kept open (descriptors are not unlimited).
  const std::vector<std::string> many(OpenDocuments::kMaxOpenFiles + 1, dir.file("big.txt"));
  {
    OpenDocuments opened(many);
    EXPECT_GE(opened.files[OpenDocuments::kMaxOpenFiles - 1].fd, 0);
    EXPECT_EQ(opened.files[OpenDocuments::kMaxOpenFiles].fd, -1);
    EXPECT_EQ(opened.documents.documents[OpenDocuments::kMaxOpenFiles].text, big);
  }
  expect_client_error(
      [&] {
        OpenDocuments({dir.file("big.txt"), dir.file("missing")});
      },
      ErrorKind::kInput, "missing: No such file or directory");
  expect_client_error([&] { OpenDocuments({dir.path()}); }, ErrorKind::kInput,
                      dir.path() + ": is a directory");
}

// --- JSON ---

TEST(Json, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("say \"hi\"\\"), R"("say \"hi\"\\")");
  EXPECT_EQ(json_string("a\nb\tc\x01\x1f"s + '\0'), R"("a\u000ab\u0009c\u0001\u001f\u0000")");
  EXPECT_EQ(json_string("\x7f"), "\"\x7f\"");
}

TEST(Json, HighBytesPassThrough) {
  EXPECT_EQ(json_string("caf\xc3\xa9 \xff"), "\"caf\xc3\xa9 \xff\"");
}

TEST(Json, NumbersRoundTripAndNonFiniteIsNull) {
  EXPECT_EQ(json_number(1), "1");
  EXPECT_EQ(json_number(0.1), "0.10000000000000001");
  EXPECT_EQ(json_number(-2.5e-300), "-2.5e-300");
  EXPECT_EQ(json_number(NAN), "null");
  EXPECT_EQ(json_number(-INFINITY), "null");
}

TEST(JsonOutput, Results) {
  const protocol::Counts counts{{{"the", 3}, {"a\"b", 2}, {"z", 1}}};
  EXPECT_EQ(counts_json(counts, 2),
            "[\n  {\"key\": \"the\", \"count\": 3},\n"
            "  {\"key\": \"a\\\"b\", \"count\": 2}\n]\n");
  EXPECT_EQ(counts_json(protocol::Counts{}, 10), "[]\n");
  EXPECT_EQ(postings_json(protocol::Postings{{{"cat", {"a.txt", "b.txt"}}, {"dog", {"b.txt"}}}}),
            "{\n  \"cat\": [\"a.txt\", \"b.txt\"],\n  \"dog\": [\"b.txt\"]\n}\n");
  EXPECT_EQ(statistics_json(protocol::Statistics{0, NAN, NAN, NAN, NAN, NAN}),
            "{\"count\": 0, \"mean\": null, \"median\": null, \"mode\": null, \"min\": null, "
            "\"max\": null}\n");
  EXPECT_EQ(matrix_json(Matrix{2, 2, {1, 2, 3, 4}}),
            "{\"rows\": 2, \"cols\": 2, \"values\": [\n  [1, 2],\n  [3, 4]\n]}\n");
}

// --- text output ---

TEST(TextOutput, CountsAreAlignedAndLimited) {
  const protocol::Counts counts{{{"the", 1200}, {"of", 35}, {"a", 7}}};
  EXPECT_EQ(counts_text(counts, kAllEntries), "1200  the\n  35  of\n   7  a\n");
  EXPECT_EQ(counts_text(counts, 2), "1200  the\n  35  of\n");
  EXPECT_EQ(counts_text(counts, 0), "");
}

TEST(TextOutput, PostingsAndStatistics) {
  EXPECT_EQ(postings_text(protocol::Postings{{{"cat", {"a.txt", "b.txt"}}}}), "cat: a.txt b.txt\n");
  EXPECT_EQ(statistics_text(protocol::Statistics{4, 2.5, 2.5, 1, 1, 4}),
            "count   4\nmean    2.5\nmedian  2.5\nmode    1\nmin     1\nmax     4\n");
  EXPECT_EQ(format_double(0.1), "0.10000000000000001");
}

TEST(TextOutput, JobsAndServer) {
  const protocol::JobProgress p{7, protocol::JobState::kMapping, 3, 10, 0, 4};
  EXPECT_EQ(job_status_text(p), "job 7: mapping, map 3/10, reduce 0/4\n");
  // Without tokens every job's tenant is empty: no column for them.
  EXPECT_EQ(job_list_text(protocol::TenantJobList{
                {{1, protocol::JobState::kDone, ""}, {123, protocol::JobState::kQueued, ""}}}),
            " ID  STATE\n  1  done\n123  queued\n");
  EXPECT_EQ(job_list_text(protocol::TenantJobList{{{1, protocol::JobState::kCancelled, "alice"},
                                                   {2, protocol::JobState::kDone, ""}}}),
            "ID  STATE      TENANT\n 1  cancelled  alice\n 2  done       -\n");
  EXPECT_EQ(job_list_text(protocol::TenantJobList{}), "");
  EXPECT_EQ(job_list_json(protocol::TenantJobList{{{4, protocol::JobState::kFailed, "bob"}}}),
            "[\n  {\"id\": 4, \"state\": \"failed\", \"tenant\": \"bob\"}\n]\n");
  protocol::ServerStats stats;
  stats.workers = 4;
  const auto text = server_stats_text(stats);
  EXPECT_NE(text.find("\nworkers                4\n"), std::string::npos) << text;
  EXPECT_TRUE(text.starts_with("uptime_ms              0\n")) << text;
}

TEST(ProgressReport, LineAndBar) {
  using protocol::JobState;
  EXPECT_EQ(progress_line({1, JobState::kQueued, 0, 0, 0, 0}), "in-progress - queued");
  EXPECT_EQ(progress_line({1, JobState::kMapping, 7, 10, 0, 0}),
            "in-progress - mapping (7/10 done)");
  EXPECT_EQ(progress_line({1, JobState::kReducing, 10, 10, 1, 4}),
            "in-progress - reducing (1/4 done)");
  EXPECT_EQ(progress_line({1, JobState::kDone, 10, 10, 4, 4}), "done");
  EXPECT_EQ(progress_bar({1, JobState::kMapping, 7, 10, 0, 0}, 10), "[#######...] mapping 7/10");
  EXPECT_EQ(progress_bar({1, JobState::kQueued, 0, 0, 0, 0}, 4), "[....] queued");
  EXPECT_EQ(progress_bar({1, JobState::kReducing, 0, 0, 0, 0}, 4), "[....] reducing 0/0");
}

// --- the rest of the library ---

TEST(PollBackoff, DoublesUpToTheCeiling) {
  using std::chrono::milliseconds;
  PollBackoff backoff;
  std::vector<long> pauses;
  for (int i = 0; i < 10; ++i)
    pauses.push_back(static_cast<long>(backoff.next().count()));
  EXPECT_EQ(pauses, (std::vector<long>{1, 2, 4, 8, 16, 32, 64, 128, 200, 200}));
}

TEST(PollBackoff, ComesCloserAsTheProgressSaysTheEndIsNear) {
  using std::chrono::milliseconds;
  const auto start = PollBackoff::Clock::time_point{};
  PollBackoff backoff;
  // Queued (nothing known), then a first report: the shortest pauses (a sixteenth of the 1 ms
  // waited is less than the doubling pause, 2).
  EXPECT_EQ(backoff.next(std::nullopt, start).count(), 1);
  EXPECT_EQ(backoff.next(0.25, start + milliseconds(1)).count(), 1);
  // 0.25 to 0.5 in 100 ms: 200 ms left at that pace; the doubling pause (4) is shorter.
  EXPECT_EQ(backoff.next(0.5, start + milliseconds(101)).count(), 4);
  for (int i = 0; i < 4; ++i)
    backoff.next();  // 8, 16, 32, 64: the doubling pause is 128 ms now
  // 0.25 to 0.75 in 500 ms: 250 ms left, half of it 125; but a sixteenth of the 501 ms waited
  // is shorter.
  EXPECT_EQ(backoff.next(0.75, start + milliseconds(501)).count(), 31);
  // 0.25 to 0.95 in 1000 ms: 71 ms left; half of it, shorter than both other bounds (200, 62).
  EXPECT_EQ(backoff.next(0.95, start + milliseconds(1001)).count(), 35);
  // Almost done: 1 ms, the shortest pause.
  EXPECT_EQ(backoff.next(0.999, start + milliseconds(1100)).count(), 1);
  EXPECT_EQ(backoff.next(1.0, start + milliseconds(1101)).count(), 1);
  // Progress that goes back (a task lost and run again) says nothing: the doubling pause.
  PollBackoff lost;
  lost.next(0.5, start);
  EXPECT_EQ(lost.next(0.3, start + milliseconds(40)).count(), 2);
}

TEST(PollBackoff, WithoutProgressThePauseIsAtMostASixteenthOfTheTimeWaited) {
  using std::chrono::milliseconds;
  const auto start = PollBackoff::Clock::time_point{};
  PollBackoff backoff;
  // A job whose progress stays at nothing done: the doubling pauses while they are short...
  EXPECT_EQ(backoff.next(0.0, start).count(), 1);
  EXPECT_EQ(backoff.next(0.0, start + milliseconds(1)).count(), 1);  // a sixteenth of 1 ms: 0
  EXPECT_EQ(backoff.next(0.0, start + milliseconds(40)).count(), 2);
  // ...then a sixteenth of the time waited, where doubling would pause 8, 16, 32, 64, 128 ms.
  auto now = start + milliseconds(160);
  std::vector<long> pauses;
  for (int i = 0; i < 5; ++i) {
    const auto pause = backoff.next(0.0, now);
    pauses.push_back(static_cast<long>(pause.count()));
    now += pause;
  }
  EXPECT_EQ(pauses, (std::vector<long>{8, 10, 11, 11, 12}));
  // Queued, with no progress report at all: the same bound.
  PollBackoff queued;
  queued.next(std::nullopt, start);
  for (int i = 0; i < 8; ++i)
    queued.next();  // the doubling pause is 200 ms now
  EXPECT_EQ(queued.next(std::nullopt, start + milliseconds(400)).count(), 25);
  // And the ceiling, once a sixteenth of the time waited passes it.
  EXPECT_EQ(queued.next(std::nullopt, start + milliseconds(4000)).count(), 200);
}

TEST(PollBackoff, AJobsFractionDoneCountsEveryTaskItKnows) {
  EXPECT_EQ(fraction_done({1, protocol::JobState::kQueued, 0, 0, 0, 0}), std::nullopt);
  EXPECT_EQ(fraction_done({1, protocol::JobState::kMapping, 3, 4, 0, 4}), 3.0 / 8);
  EXPECT_EQ(fraction_done({1, protocol::JobState::kReducing, 4, 4, 4, 4}), 1.0);
}

TEST(ReplyError, KindFollowsTheStatus) {
  EXPECT_EQ(error_kind_of(Status::kQueueFull), ErrorKind::kRejected);
  EXPECT_EQ(error_kind_of(Status::kBadJob), ErrorKind::kRejected);
  EXPECT_EQ(error_kind_of(Status::kShuttingDown), ErrorKind::kRejected);
  EXPECT_EQ(error_kind_of(Status::kUnknownJob), ErrorKind::kRejected);
  EXPECT_EQ(error_kind_of(Status::kFrameTooLarge), ErrorKind::kRejected);
  EXPECT_EQ(error_kind_of(Status::kJobFailed), ErrorKind::kJobFailed);
  EXPECT_EQ(error_kind_of(Status::kJobCancelled), ErrorKind::kJobFailed);
  EXPECT_EQ(error_kind_of(Status::kJobExpired), ErrorKind::kJobFailed);
  EXPECT_EQ(error_kind_of(Status::kServerBusy), ErrorKind::kConnection);
  EXPECT_EQ(error_kind_of(Status::kUnavailable), ErrorKind::kConnection);
  EXPECT_EQ(error_kind_of(Status::kVersionMismatch), ErrorKind::kProtocol);
  EXPECT_EQ(error_kind_of(Status::kBadRequest), ErrorKind::kProtocol);

  const ClientError e = reply_error("submit", Status::kQueueFull, "10000 jobs waiting");
  EXPECT_EQ(std::string(e.what()),
            "submit: the server's job queue is full; try again later (server says: 10000 jobs "
            "waiting)");
  EXPECT_EQ(e.server_status(), Status::kQueueFull);
}

TEST(MatrixCheck, MultiplyAndCompare) {
  const Matrix a{2, 3, {1, 2, 3, 4, 5, 6}};
  const Matrix b{3, 1, {1, 0, -1}};
  EXPECT_EQ(multiply(a, b), (Matrix{2, 1, {-2, -2}}));

  const auto same = compare_matrices(Matrix{1, 2, {1, 2}}, Matrix{1, 2, {1, 2 + 1e-12}}, 1e-9);
  EXPECT_TRUE(same.same_shape);
  EXPECT_TRUE(same.within_tolerance);
  EXPECT_NEAR(same.max_abs_error, 1e-12, 1e-15);

  const auto off = compare_matrices(Matrix{1, 3, {1, 5, 3}}, Matrix{1, 3, {1, 2, 3}}, 1e-9);
  EXPECT_FALSE(off.within_tolerance);
  EXPECT_EQ(off.worst_col, 1u);
  EXPECT_EQ(off.max_abs_error, 3);

  EXPECT_FALSE(compare_matrices(Matrix{1, 1, {NAN}}, Matrix{1, 1, {0}}, 1e-9).within_tolerance);
  EXPECT_FALSE(compare_matrices(Matrix{1, 1, {0}}, Matrix{2, 1, {0, 0}}, 1e-9).same_shape);
}

TEST(MatrixCheck, RandomMatricesAreReproducibleAndInRange) {
  const auto one = random_matrix_pair(5, 42);
  EXPECT_EQ(one, random_matrix_pair(5, 42));
  EXPECT_NE(one.a, random_matrix_pair(5, 43).a);
  EXPECT_NE(one.a, one.b);
  for (double v : one.a.values) {
    EXPECT_GE(v, -1.0);
    EXPECT_LT(v, 1.0);
  }
}

// --- Connection, against a scripted server ---

/// A server on 127.0.0.1 for one connection: for each scripted reply it reads one whole request,
/// records it, and sends the reply's bytes exactly (a reply may be a partial frame, two frames,
/// or nothing). After the last reply it closes the connection. It stops listening once it has
/// accepted its connection, so a second one is refused, as by a server that is gone.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> replies) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 1) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      ADD_FAILURE() << "cannot listen";
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, replies = std::move(replies)] { serve(replies); });
  }
  ~ScriptedServer() {
    if (thread_.joinable()) thread_.join();
    if (listener_ >= 0) ::close(listener_);
  }

  ServerAddress address() const { return {"127.0.0.1", port_}; }

  /// The request frames received; read it once the client is done (join() first).
  const std::vector<std::string>& requests() {
    if (thread_.joinable()) thread_.join();
    return requests_;
  }

 private:
  void serve(const std::vector<std::string>& replies) {
    const int fd = ::accept(listener_, nullptr, nullptr);
    if (fd < 0) return;
    ::close(std::exchange(listener_, -1));
    std::string inbox;
    for (const auto& reply : replies) {
      auto parsed = protocol::parse_request(inbox, protocol::kDefaultMaxFrameBytes);
      while (parsed.outcome == protocol::ParsedFrame::Outcome::kNeedMore) {
        char chunk[4096];
        const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
        if (got <= 0) break;
        inbox.append(chunk, static_cast<std::size_t>(got));
        parsed = protocol::parse_request(inbox, protocol::kDefaultMaxFrameBytes);
      }
      if (parsed.outcome != protocol::ParsedFrame::Outcome::kFrame) break;
      requests_.push_back(inbox.substr(0, parsed.frame_bytes));
      inbox.erase(0, parsed.frame_bytes);
      if (!reply.empty()) ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    ::close(fd);
  }

  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::vector<std::string> requests_;
  std::thread thread_;
};

template <class T>
std::string reply(Status status, const T& body) {
  std::string out;
  protocol::append_message(out, static_cast<std::uint8_t>(status), body);
  return out;
}

std::string error_reply(Status status, const std::string& text) {
  return reply(status, protocol::ErrorMessage{text});
}

TEST(Connection, HelloSendsOurVersionAndReturnsTheServerName) {
  ScriptedServer server(
      {reply(Status::kOk, protocol::HelloReply{protocol::kProtocolVersion, "mrd 9", 0})});
  auto connection = Connection::connect(server.address());
  EXPECT_EQ(connection.hello(), "mrd 9");
  EXPECT_FALSE(connection.auth_required());
  std::string expected;
  protocol::append_message(expected, static_cast<std::uint8_t>(protocol::Opcode::kHello),
                           protocol::Hello{});
  EXPECT_EQ(server.requests(), std::vector<std::string>{expected});
}

TEST(Connection, HelloWithAnotherVersionIsAProtocolError) {
  ScriptedServer server({reply(Status::kOk, protocol::HelloReply{7, "mrd 9", 0})});
  auto connection = Connection::connect(server.address());
  expect_client_error([&] { connection.hello(); }, ErrorKind::kProtocol,
                      "server speaks protocol version 7, this client speaks " +
                          std::to_string(protocol::kProtocolVersion));
}

TEST(Connection, HelloTellsWhetherAuthIsRequiredAndAuthReturnsTheIdentity) {
  ScriptedServer server(
      {reply(Status::kOk, protocol::HelloReply{protocol::kProtocolVersion, "mrd 9",
                                               protocol::kHelloAuthRequired}),
       error_reply(Status::kAuthFailed, "auth: the token is not valid"),
       reply(Status::kOk, protocol::AuthReply{"alice", protocol::Role::kUser})});
  auto connection = Connection::connect(server.address());
  connection.hello();
  EXPECT_TRUE(connection.auth_required());
  expect_client_error([&] { connection.auth("wrong"); }, ErrorKind::kRejected,
                      "auth: the server does not accept this token (server says: auth: the token "
                      "is not valid)");
  const auto identity = connection.auth("right");
  EXPECT_EQ(identity.tenant, "alice");
  EXPECT_EQ(identity.role, protocol::Role::kUser);
  std::string expected;
  protocol::append_message(expected, static_cast<std::uint8_t>(protocol::Opcode::kAuth),
                           protocol::AuthRequest{"right"});
  EXPECT_EQ(server.requests().back(), expected);
}

TEST(Connection, VersionMismatchReplyIsAProtocolError) {
  ScriptedServer server({error_reply(Status::kVersionMismatch, "this server speaks 7")});
  auto connection = Connection::connect(server.address());
  expect_client_error([&] { connection.hello(); }, ErrorKind::kProtocol, "this server speaks 7");
}

TEST(Connection, SubmitRejectionsCarryTheServerMessage) {
  ScriptedServer server({error_reply(Status::kQueueFull, "10000 jobs waiting"),
                         error_reply(Status::kBadJob, "unknown mapper 'x'"),
                         error_reply(Status::kShuttingDown, "bye"),
                         reply(Status::kOk, protocol::JobId{42})});
  auto connection = Connection::connect(server.address());
  const protocol::SubmitRequest request{"words", "sum", {}, protocol::Documents{{{"a", "b c"}}}};
  expect_client_error([&] { connection.submit(request); }, ErrorKind::kRejected,
                      "queue is full; try again later (server says: 10000 jobs waiting)");
  expect_client_error([&] { connection.submit(request); }, ErrorKind::kRejected,
                      "unknown mapper 'x'");
  expect_client_error([&] { connection.submit(request); }, ErrorKind::kRejected, "shutting down");
  EXPECT_EQ(connection.submit(request), 42u);
  // Every request was the same well-formed SUBMIT frame.
  const auto& requests = server.requests();
  ASSERT_EQ(requests.size(), 4u);
  const auto decoded = protocol::decode<protocol::SubmitRequest>(
      std::string_view(requests[3]).substr(protocol::kHeaderBytes));
  ASSERT_TRUE(decoded) << decoded.error;
  EXPECT_EQ(*decoded.value, request);
}

TEST(Connection, ABigSubmitIsSentFromTheRequestInPiecesAndArrivesAsOneFrame) {
  // Texts and matrices of protocol::kGatherFromBytes or more are sent from where they are,
  // several buffers per sendmsg; the last request has more pieces than one sendmsg takes.
  std::string big(8 << 20, 'w');
  for (std::size_t i = 0; i < big.size(); i += 4099)
    big[i] = ' ';
  const protocol::SubmitRequest words{
      "words",
      "sum",
      {},
      protocol::Documents{{{"a", big}, {"b", "small"}, {"c", big + "x y"}}},
      "key"};
  const std::vector<double> values(1 << 20, 0.25);
  const protocol::SubmitRequest product{
      "matmul", "rows", {}, protocol::MatrixPair{{1024, 1024, values}, {1024, 1024, values}}};
  protocol::Documents many;
  for (int i = 0; i < 600; ++i)
    many.documents.push_back(
        {std::to_string(i), std::string(protocol::kGatherFromBytes, 'a' + i % 26)});
  const protocol::SubmitRequest pieces{"words", "sum", {}, std::move(many)};
  ASSERT_GT(protocol::gather_message(0, pieces).pieces().size(), 1024u);  // IOV_MAX on Linux
  ScriptedServer server({reply(Status::kOk, protocol::JobId{1}),
                         reply(Status::kOk, protocol::JobId{2}),
                         reply(Status::kOk, protocol::JobId{3})});
  auto connection = Connection::connect(server.address());
  EXPECT_EQ(connection.submit(words), 1u);
  EXPECT_EQ(connection.submit(product), 2u);
  EXPECT_EQ(connection.submit(pieces), 3u);
  const auto& requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    std::string expected;
    protocol::append_message(expected, static_cast<std::uint8_t>(protocol::Opcode::kSubmit),
                             i == 0   ? words
                             : i == 1 ? product
                                      : pieces);
    EXPECT_TRUE(requests[i] == expected) << "request " << i << " differs from its frame";
  }
}

TEST(Connection, ATextSentFromItsFileArrivesAsIfTheRequestHeldIt) {
  TempDir dir;
  std::string text(3 << 20, 'x');
  for (std::size_t i = 0; i < text.size(); i += 7)
    text[i] = ' ';
  write_output_file(dir.file("big.txt"), text);
  OpenDocuments opened({dir.file("big.txt")});
  protocol::SubmitRequest request{"words", "sum", {}, std::move(opened.documents), "k"};
  ScriptedServer server({reply(Status::kOk, protocol::JobId{9})});
  auto connection = Connection::connect(server.address());
  EXPECT_EQ(connection.submit(request, opened.files), 9u);
  std::get<protocol::Documents>(request.input).documents[0].text = text;
  std::string expected;
  protocol::append_message(expected, static_cast<std::uint8_t>(protocol::Opcode::kSubmit), request);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_TRUE(server.requests()[0] == expected) << "the frame differs";

  // A file that got shorter since it was opened: an input error naming it, not a bad frame.
  ScriptedServer other({reply(Status::kOk, protocol::JobId{10})});
  auto second = Connection::connect(other.address());
  ASSERT_EQ(::truncate(dir.file("big.txt").c_str(), 1000), 0);
  std::get<protocol::Documents>(request.input).documents[0].text.clear();
  expect_client_error([&] { second.submit(request, opened.files); }, ErrorKind::kInput,
                      "big.txt: the file got shorter while it was being sent");
}

TEST(Connection, AMatrixSentFromItsNpyFileArrivesAsIfTheRequestHeldIt) {
  TempDir dir;
  Matrix a{300, 200, std::vector<double>(300 * 200)}, b{200, 3, std::vector<double>(200 * 3)};
  for (std::size_t i = 0; i < a.values.size(); ++i)
    a.values[i] = static_cast<double>(i) / 3;
  for (std::size_t i = 0; i < b.values.size(); ++i)
    b.values[i] = -static_cast<double>(i);
  write_output_file(dir.file("a.npy"), encode_npy(a));
  const auto a_file = open_npy_values(dir.file("a.npy"));
  ASSERT_TRUE(a_file.has_value());
  // A's values come from its file (slot 0); B's, too small to be worth it, from the request.
  protocol::SubmitRequest request{
      "matmul", "rows", {}, protocol::MatrixPair{Matrix{a.rows, a.cols, {}}, b}, "k"};
  const std::vector<PayloadFile> files{
      {a_file->fd, a_file->offset, a_file->bytes, dir.file("a.npy")}, {}};
  ScriptedServer server({reply(Status::kOk, protocol::JobId{9})});
  auto connection = Connection::connect(server.address());
  EXPECT_EQ(connection.submit(request, files), 9u);
  std::get<protocol::MatrixPair>(request.input).a = a;
  std::string expected;
  protocol::append_message(expected, static_cast<std::uint8_t>(protocol::Opcode::kSubmit), request);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_TRUE(server.requests()[0] == expected) << "the frame differs";
}

TEST(Connection, WaitForResultReportsProgressThenReturnsTheResult) {
  const protocol::JobProgress queued{5, protocol::JobState::kQueued, 0, 0, 0, 0};
  const protocol::JobProgress mapping{5, protocol::JobState::kMapping, 1, 2, 0, 1};
  const protocol::JobResult result = protocol::Counts{{{"a", 2}}};
  ScriptedServer server({reply(Status::kPending, queued), reply(Status::kPending, mapping),
                         reply(Status::kOk, result)});
  auto connection = Connection::connect(server.address());
  std::vector<protocol::JobProgress> seen;
  const auto outcome =
      connection.wait_for_result(5, [&](const protocol::JobProgress& p) { seen.push_back(p); });
  EXPECT_EQ(outcome.status, Status::kOk);
  EXPECT_EQ(outcome.result, result);
  EXPECT_EQ(seen, (std::vector<protocol::JobProgress>{queued, mapping}));
  EXPECT_EQ(result_or_throw(outcome, 5), result);
}

TEST(Connection, AMatrixResultGoesToTheSinkWhereItWasReceived) {
  const Matrix product{3, 2, {1, 2, 3, 4, 5, 6.25}};
  const protocol::JobResult counts = protocol::Counts{{{"a", 2}}};
  ScriptedServer server({reply(Status::kOk, protocol::JobResult{product}),
                         reply(Status::kOk, counts),
                         reply(Status::kOk, protocol::JobResult{product})});
  auto connection = Connection::connect(server.address());
  std::vector<std::pair<std::uint64_t, std::string>> taken;
  connection.set_matrix_result_sink([&taken](const protocol::MatrixResultView& m) {
    taken.emplace_back(m.rows * 1000 + m.cols, std::string(m.values));
  });
  // A matrix: its values to the sink, its shape alone in the outcome.
  const auto outcome = connection.fetch(5);
  EXPECT_EQ(outcome.result, (protocol::JobResult{Matrix{3, 2, {}}}));
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].first, 3002u);
  EXPECT_EQ(taken[0].second, std::string(reinterpret_cast<const char*>(product.values.data()),
                                         product.values.size() * sizeof(double)));
  // Any other result is decoded as always; without a sink, so is a matrix.
  EXPECT_EQ(connection.fetch(5).result, counts);
  connection.set_matrix_result_sink({});
  EXPECT_EQ(connection.fetch(5).result, (protocol::JobResult{product}));
  EXPECT_EQ(taken.size(), 1u);
}

TEST(Connection, FetchOfAFailedJobIsAnOutcomeNotAnException) {
  ScriptedServer server({error_reply(Status::kJobFailed, "worker crashed"),
                         error_reply(Status::kUnknownJob, "no job 9")});
  auto connection = Connection::connect(server.address());
  const auto failed = connection.fetch(9);
  EXPECT_EQ(failed.status, Status::kJobFailed);
  EXPECT_EQ(failed.message, "worker crashed");
  expect_client_error([&] { result_or_throw(failed, 9); }, ErrorKind::kJobFailed,
                      "job 9: the job failed (server says: worker crashed)");
  const auto unknown = connection.fetch(9);
  expect_client_error([&] { result_or_throw(unknown, 9); }, ErrorKind::kRejected, "no job 9");
}

TEST(Connection, TwoRepliesInOneSegmentAreReadOneAtATime) {
  const protocol::ServerStats stats{.uptime_ms = 1234, .workers = 3};
  ScriptedServer server(
      {reply(Status::kOk, protocol::TenantJobList{{{1, protocol::JobState::kDone, "alice"}}}) +
           reply(Status::kOk, stats),
       ""});
  auto connection = Connection::connect(server.address());
  EXPECT_EQ(connection.list().jobs.size(), 1u);
  EXPECT_EQ(connection.stats(), stats);
}

TEST(Connection, ABigResultIsReadAsItArrivesAndTheReplyAfterItIsReadToo) {
  // 12 MiB of doubles, sent in one go with a STATS reply behind it: the result is read in many
  // receives into a buffer that grows past the size that asks for huge pages, decoded from the
  // buffer in place, and the bytes after it stay for the next reply.
  protocol::Matrix product{1024, 1536, std::vector<double>(1024 * 1536)};
  for (std::size_t i = 0; i < product.values.size(); ++i)
    product.values[i] = static_cast<double>(i) * 0.5 - 7.0;
  const protocol::JobResult result = product;
  const protocol::ServerStats stats{.uptime_ms = 99, .workers = 2};
  ScriptedServer server({reply(Status::kOk, result) + reply(Status::kOk, stats), ""});
  auto connection = Connection::connect(server.address());
  const auto outcome = connection.fetch(4);
  ASSERT_EQ(outcome.status, Status::kOk);
  EXPECT_EQ(outcome.result, result);
  EXPECT_EQ(connection.stats(), stats);
}

TEST(ReceiveBuffer, GrowingKeepsWhatItHoldsAndMovingHandsItOver) {
  ReceiveBuffer buffer;
  EXPECT_EQ(buffer.size(), 0u);
  std::size_t filled = 0;
  // Past 2 MiB (huge pages are asked for) and past several remaps, in uneven steps.
  for (std::size_t want : {100u, 5000u, 70000u, 3u << 20, (9u << 20) + 17}) {
    buffer.grow(want);
    ASSERT_GE(buffer.size(), want);
    for (; filled < want; ++filled)
      buffer.data()[filled] = static_cast<char>(filled * 7 % 251);
    for (std::size_t i = 0; i < filled; i += 4093)
      ASSERT_EQ(buffer.data()[i], static_cast<char>(i * 7 % 251)) << "byte " << i;
  }
  const auto size = buffer.size();
  buffer.grow(10);  // never shrinks
  EXPECT_EQ(buffer.size(), size);
  ReceiveBuffer moved(std::move(buffer));
  EXPECT_EQ(moved.size(), size);
  EXPECT_EQ(moved.data()[filled - 1], static_cast<char>((filled - 1) * 7 % 251));
  buffer = std::move(moved);
  EXPECT_EQ(buffer.data()[12345], static_cast<char>(12345 * 7 % 251));
}

TEST(Connection, UnknownStatusIsAProtocolError) {
  ScriptedServer server({"\x63\x00\x00\x00\x00"s});
  auto connection = Connection::connect(server.address());
  expect_client_error([&] { connection.list(); }, ErrorKind::kProtocol, "status 99");
}

TEST(Connection, APeerThatIsNotMrdIsToldApartByItsFirstByte) {
  ScriptedServer server({"HTTP/1.1 400 Bad Request\r\n\r\n"});
  auto connection = Connection::connect(server.address());
  expect_client_error([&] { connection.hello(); }, ErrorKind::kProtocol, "an mrd server?");
}

TEST(Connection, UndecodableBodyIsAProtocolError) {
  ScriptedServer server({"\x00\x02\x00\x00\x00zz"s});
  auto connection = Connection::connect(server.address());
  expect_client_error([&] { connection.status(1); }, ErrorKind::kProtocol, "did not decode");
}

TEST(Connection, ServerHangingUpIsAConnectionError) {
  {
    ScriptedServer server({""});
    auto connection = Connection::connect(server.address());
    expect_client_error([&] { connection.cancel(3); }, ErrorKind::kConnection,
                        "closed the connection without replying");
  }
  {
    ScriptedServer server({reply(Status::kOk, protocol::JobList{}).substr(0, 7)});
    auto connection = Connection::connect(server.address());
    expect_client_error([&] { connection.list(); }, ErrorKind::kConnection,
                        "in the middle of its reply");
  }
}

TEST(Connection, RefusedConnectionSaysSo) {
  const auto port = testing::free_loopback_port();
  expect_client_error(
      [&] {
        Connection::connect({"127.0.0.1", port});
      },
      ErrorKind::kConnection, "Connection refused (is mrd running there?)");
}

// --- FailoverConnection: the nodes of a cluster, against scripted servers and real sockets ---

/// An address nobody listens on: a port that was free a moment ago.
ServerAddress refused_address() {
  return {"127.0.0.1", testing::free_loopback_port()};
}

/// What a FailoverConnection says of a server that refused the connection.
std::string refused_reason(const ServerAddress& server) {
  return "cannot connect to " + to_string(server) + ": Connection refused (is mrd running there?)";
}

std::string hello_ok() {
  return reply(Status::kOk, protocol::HelloReply{protocol::kProtocolVersion, "mrd 9", 0});
}

/// Short pauses, so that the tests do not wait for the real ones.
constexpr FailoverPolicy kQuickPolicy{3, std::chrono::milliseconds(1),
                                      std::chrono::milliseconds(2)};

/// What a FailoverConnection said about each move: why, where to, after what pause.
struct Move {
  std::string why;
  ServerAddress next;
  std::chrono::milliseconds pause;
};

/// A FailoverConnection over `servers` that says HELLO on connecting and records its moves.
FailoverConnection failover_to(std::vector<ServerAddress> servers, std::vector<Move>& moves,
                               FailoverPolicy policy = kQuickPolicy) {
  FailoverConnection connection(std::move(servers), FailoverConnection::hello_connector(), policy);
  connection.set_notice([&moves](const ClientError& error, const ServerAddress& next,
                                 std::chrono::milliseconds pause) {
    moves.push_back({error.what(), next, pause});
  });
  return connection;
}

/// The idempotency key of a SUBMIT request frame.
std::string key_of(const std::string& submit_frame) {
  const auto decoded = protocol::decode<protocol::SubmitRequest>(
      std::string_view(submit_frame).substr(protocol::kHeaderBytes));
  EXPECT_TRUE(decoded) << decoded.error;
  return decoded ? decoded.value->idempotency_key : "";
}

TEST(Failover, WhatMovesARequestToAnotherNode) {
  using protocol::Opcode;
  const ClientError lost(ErrorKind::kConnection, "lost the connection");
  const auto busy = reply_error("list", Status::kServerBusy, "");
  const auto unavailable = reply_error("fetch job 1", Status::kUnavailable, "no Redis");
  const auto stopping = reply_error("submit", Status::kShuttingDown, "");
  for (const auto opcode : {Opcode::kSubmit, Opcode::kFetch, Opcode::kStatus, Opcode::kCancel,
                            Opcode::kList, Opcode::kStats, Opcode::kHello}) {
    EXPECT_TRUE(should_fail_over(lost, opcode));
    EXPECT_TRUE(should_fail_over(busy, opcode));
    EXPECT_TRUE(should_fail_over(unavailable, opcode));
    EXPECT_EQ(should_fail_over(stopping, opcode), opcode == Opcode::kSubmit);
  }
  // What every node would answer alike, and what the client's own settings cause.
  for (const auto status : {Status::kQueueFull, Status::kBadJob, Status::kUnknownJob,
                            Status::kFrameTooLarge, Status::kAuthFailed, Status::kForbidden,
                            Status::kServerError, Status::kJobFailed, Status::kVersionMismatch}) {
    EXPECT_FALSE(should_fail_over(reply_error("submit", status, ""), Opcode::kSubmit))
        << static_cast<int>(status);
  }
  EXPECT_FALSE(should_fail_over(ClientError(ErrorKind::kTls, "bad certificate"), Opcode::kList));
  EXPECT_FALSE(should_fail_over(ClientError(ErrorKind::kProtocol, "?"), Opcode::kList));
}

TEST(Failover, ConnectsToTheFirstServerThatAnswers) {
  const protocol::TenantJobList jobs{{{4, protocol::JobState::kDone, ""}}};
  ScriptedServer live({hello_ok(), reply(Status::kOk, jobs)});
  const auto refused = refused_address();
  std::vector<Move> moves;
  auto servers = failover_to({refused, live.address()}, moves);
  EXPECT_EQ(servers.address(), refused);
  EXPECT_EQ(servers.list(), jobs);
  EXPECT_EQ(servers.address(), live.address());
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].why, refused_reason(refused));
  EXPECT_EQ(moves[0].next, live.address());
  EXPECT_EQ(moves[0].pause.count(), 0);
  EXPECT_EQ(live.requests().size(), 2u);  // HELLO, LIST
}

TEST(Failover, EveryServerDownNamesEachAndWhy) {
  const auto a = refused_address();
  ScriptedServer hangs_up({""});  // accepts, reads HELLO, closes without a word
  const auto b = hangs_up.address();
  const auto c = refused_address();
  std::vector<Move> moves;
  auto servers = failover_to({a, b, c}, moves,
                             {2, std::chrono::milliseconds(1), std::chrono::milliseconds(1)});
  try {
    servers.list();
    ADD_FAILURE() << "list succeeded";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConnection);
    // Each server's last reason: the scripted one is gone after its one connection.
    EXPECT_EQ(std::string(e.what()), "list: gave up after trying each of the 3 servers 2 times:" +
                                         ("\n  " + to_string(a) + ": " + refused_reason(a)) +
                                         ("\n  " + to_string(b) + ": " + refused_reason(b)) +
                                         ("\n  " + to_string(c) + ": " + refused_reason(c)));
  }
  // Six attempts in the order of the list, five moves, a pause after the first full round.
  ASSERT_EQ(moves.size(), 5u);
  EXPECT_EQ(moves[0].why, refused_reason(a));
  EXPECT_EQ(moves[1].why,
            "hello: the server at " + to_string(b) + " closed the connection without replying");
  EXPECT_EQ(moves[2].why, refused_reason(c));
  std::vector<ServerAddress> next;
  std::vector<long> pauses;
  for (const auto& move : moves) {
    next.push_back(move.next);
    pauses.push_back(static_cast<long>(move.pause.count()));
  }
  EXPECT_EQ(next, (std::vector<ServerAddress>{b, c, a, b, c}));
  EXPECT_EQ(pauses, (std::vector<long>{0, 0, 1, 0, 0}));
}

TEST(Failover, PausesDoubleAfterEachFailedRound) {
  std::vector<Move> moves;
  auto servers = failover_to({refused_address(), refused_address()}, moves);  // 1 ms, up to 2
  expect_client_error([&] { servers.stats(); }, ErrorKind::kConnection,
                      "stats: gave up after trying each of the 2 servers 3 times:");
  std::vector<long> pauses;
  for (const auto& move : moves)
    pauses.push_back(static_cast<long>(move.pause.count()));
  EXPECT_EQ(pauses, (std::vector<long>{0, 1, 0, 2, 0}));
}

TEST(Failover, BusyAndUnavailableNodesAreLeftForTheNext) {
  const protocol::JobResult result = protocol::Counts{{{"a", 2}}};
  // SERVER_BUSY as the real server sends it: before any request, then it closes.
  ScriptedServer busy({error_reply(Status::kServerBusy, "too many connections")});
  ScriptedServer unavailable(
      {hello_ok(), error_reply(Status::kUnavailable, "cannot reach Redis at 10.0.0.9:6379")});
  ScriptedServer live({hello_ok(), reply(Status::kOk, result)});
  std::vector<Move> moves;
  auto servers = failover_to({busy.address(), unavailable.address(), live.address()}, moves);
  const auto outcome = servers.fetch(5);
  EXPECT_EQ(outcome.status, Status::kOk);
  EXPECT_EQ(outcome.result, result);
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_NE(moves[0].why.find("busy"), std::string::npos) << moves[0].why;
  EXPECT_NE(moves[1].why.find("fetch job 5: this node cannot reach the cluster's shared store"),
            std::string::npos)
      << moves[1].why;
}

TEST(Failover, ASubmitLostOnOneNodeIsResentToTheNextWithTheSameKey) {
  ScriptedServer lost({hello_ok(), ""});  // takes the SUBMIT, closes without an answer
  ScriptedServer stopping({hello_ok(), error_reply(Status::kShuttingDown, "draining")});
  ScriptedServer live({hello_ok(), reply(Status::kOk, protocol::JobId{42})});
  std::vector<Move> moves;
  auto servers = failover_to({lost.address(), stopping.address(), live.address()}, moves);
  // Without a key of its own, the request gets one: the same on every node.
  const protocol::SubmitRequest request{"words", "sum", {}, protocol::Documents{{{"a", "b c"}}}};
  EXPECT_EQ(servers.submit(request), 42u);
  EXPECT_EQ(moves.size(), 2u);
  ASSERT_EQ(lost.requests().size(), 2u);
  ASSERT_EQ(stopping.requests().size(), 2u);
  ASSERT_EQ(live.requests().size(), 2u);
  const auto key = key_of(live.requests()[1]);
  EXPECT_EQ(key.size(), 32u);
  EXPECT_EQ(key_of(lost.requests()[1]), key);
  EXPECT_EQ(key_of(stopping.requests()[1]), key);
  EXPECT_EQ(lost.requests()[1], live.requests()[1]);  // the very same frame

  // A key given is the key sent.
  ScriptedServer keyed({hello_ok(), reply(Status::kOk, protocol::JobId{43})});
  auto again = failover_to({refused_address(), keyed.address()}, moves);
  auto with_key = request;
  with_key.idempotency_key = "my-key";
  EXPECT_EQ(again.submit(with_key), 43u);
  EXPECT_EQ(key_of(keyed.requests()[1]), "my-key");
}

TEST(Failover, WhatAnyNodeWouldAnswerIsNotRetried) {
  // BAD_JOB would be the same everywhere: thrown as it is, the next server never tried (it is
  // refused, which would end in a connection error instead).
  ScriptedServer refuses({hello_ok(), error_reply(Status::kBadJob, "unknown mapper 'x'")});
  std::vector<Move> moves;
  auto servers = failover_to({refuses.address(), refused_address()}, moves);
  const protocol::SubmitRequest request{"x", "sum", {}, protocol::Documents{}, "key"};
  expect_client_error([&] { servers.submit(request); }, ErrorKind::kRejected, "unknown mapper 'x'");
  EXPECT_TRUE(moves.empty());
  // SHUTTING_DOWN moves only a SUBMIT (no server sends it for anything else; if one did, another
  // node could not do better).
  ScriptedServer stopping({hello_ok(), error_reply(Status::kShuttingDown, "draining")});
  auto other = failover_to({stopping.address(), refused_address()}, moves);
  expect_client_error([&] { other.cancel(3); }, ErrorKind::kRejected, "draining");
  EXPECT_TRUE(moves.empty());
}

TEST(Failover, WaitingGoesOnOnAnotherNode) {
  const protocol::JobProgress mapping{5, protocol::JobState::kMapping, 1, 2, 0, 1};
  const protocol::JobProgress reducing{5, protocol::JobState::kReducing, 2, 2, 0, 1};
  const protocol::JobResult result = protocol::Counts{{{"a", 2}}};
  // The first node answers one poll, then dies in the middle of the next.
  ScriptedServer dies({hello_ok(), reply(Status::kPending, mapping), ""});
  ScriptedServer live({hello_ok(), reply(Status::kPending, reducing), reply(Status::kOk, result)});
  std::vector<Move> moves;
  auto servers = failover_to({dies.address(), live.address()}, moves);
  std::vector<protocol::JobProgress> seen;
  const auto outcome =
      servers.wait_for_result(5, [&](const protocol::JobProgress& p) { seen.push_back(p); });
  EXPECT_EQ(outcome.status, Status::kOk);
  EXPECT_EQ(outcome.result, result);
  EXPECT_EQ(seen, (std::vector<protocol::JobProgress>{mapping, reducing}));
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].why, "fetch job 5: the server at " + to_string(dies.address()) +
                              " closed the connection without replying");
  EXPECT_EQ(live.requests().size(), 3u);  // HELLO, FETCH, FETCH
}

TEST(Failover, OneServerFailsAsAConnectionDoes) {
  // Nothing to fail over to: the error as it was, and no notice.
  const auto refused = refused_address();
  std::vector<Move> moves;
  auto servers = failover_to({refused}, moves);
  try {
    servers.list();
    ADD_FAILURE() << "list succeeded";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConnection);
    EXPECT_EQ(std::string(e.what()), refused_reason(refused));
  }
  ScriptedServer stopping({hello_ok(), error_reply(Status::kShuttingDown, "draining")});
  auto one = failover_to({stopping.address()}, moves);
  const protocol::SubmitRequest request{"words", "sum", {}, protocol::Documents{}, "key"};
  expect_client_error([&] { one.submit(request); }, ErrorKind::kRejected,
                      "submit: the server is shutting down and takes no new jobs (server says: "
                      "draining)");
  EXPECT_TRUE(moves.empty());
  // A connection that broke is opened again by the next request.
  ScriptedServer twice({hello_ok(), ""});
  auto again = failover_to({twice.address()}, moves);
  expect_client_error([&] { again.list(); }, ErrorKind::kConnection, "without replying");
  expect_client_error([&] { again.list(); }, ErrorKind::kConnection, "Connection refused");
  EXPECT_THROW(FailoverConnection({}, FailoverConnection::hello_connector()), ClientError);
}

// --- frame trace (mrctl --trace), on the example frames of docs/protocol.md ---

/// The frame docs/protocol.md shows under `<!-- example: name -->` (docs_test keeps them equal).
std::string doc_example(const std::string& name) {
  for (const auto& example : examples::all_examples()) {
    if (example.name == name) return example.bytes;
  }
  ADD_FAILURE() << "no example " << name;
  return {};
}

/// Runs describe_frame on a reply to `request`.
std::string describe_reply(const std::string& frame, protocol::Opcode request) {
  return describe_frame(Direction::kReceived, frame, request);
}

/// Expects every one of `lines` in `text`, each as a whole line.
void expect_lines(const std::string& text, const std::vector<std::string>& lines) {
  for (const auto& line : lines) {
    EXPECT_NE(("\n" + text).find("\n" + line + "\n"), std::string::npos)
        << "missing line '" << line << "' in:\n"
        << text;
  }
}

TEST(FrameTrace, FetchRequestAndPendingReplyInFull) {
  EXPECT_EQ(describe_frame(Direction::kSent, doc_example("fetch-request")),
            ">> FETCH (1) body 4 bytes\n"
            "   01 04 00 00 00 07 00 00 00\n"
            "   job id: 7\n");
  EXPECT_EQ(describe_reply(doc_example("fetch-pending-reply"), protocol::Opcode::kFetch),
            "<< PENDING (1) body 21 bytes\n"
            "   01 15 00 00 00 07 00 00 00 01 01 00 00 00 04 00\n"
            "   00 00 00 00 00 00 02 00 00 00\n"
            "   job 7: mapping, map 1/4, reduce 0/2\n");
}

TEST(FrameTrace, HexIsTheDocumentsFormatCutAfter64Bytes) {
  // 105 bytes: four lines of 16 as docs/protocol.md shows them, then a count of the rest.
  const auto frame = doc_example("submit-words-request");
  std::string expected_hex;
  std::istringstream doc_lines(examples::to_hex_lines(frame.substr(0, kTraceHexBytes)));
  for (std::string line; std::getline(doc_lines, line);)
    expected_hex += "   " + line + "\n";
  expected_hex += "   ... (41 more bytes)\n";
  const auto text = describe_frame(Direction::kSent, frame);
  EXPECT_NE(text.find("\n" + expected_hex), std::string::npos) << text;
}

TEST(FrameTrace, SubmitShowsItsFieldsAndASummaryOfTheInput) {
  const auto words = describe_frame(Direction::kSent, doc_example("submit-words-request"));
  EXPECT_EQ(words.substr(0, words.find('\n')), ">> SUBMIT (0) body 100 bytes");
  expect_lines(words, {"   mapper: words", "   reducer: sum", "   chunk bytes: 0 (server default)",
                       "   partitions: 0 (server default)", "   idempotency key: (none)",
                       "   input kind: documents (0)", "   documents: 1, 18 bytes of text"});
  expect_lines(describe_frame(Direction::kSent, doc_example("submit-stats-request")),
               {"   mapper: numbers", "   input kind: numbers (1)", "   numbers: 2"});
  expect_lines(describe_frame(Direction::kSent, doc_example("submit-matmul-request")),
               {"   input kind: matrix pair (2)", "   matrices: A 1x2, B 2x1"});
}

TEST(FrameTrace, ResultsShowTheirKindAndASummary) {
  const auto words = describe_reply(doc_example("fetch-words-reply"), protocol::Opcode::kFetch);
  expect_lines(words, {"<< OK (0) body 82 bytes", "   result kind: counts (0)", "   entries: 4",
                       "   entry 1: \"be\" 2", "   entry 2: \"to\" 2", "   entry 3: \"not\" 1",
                       "   ... (1 more entry)"});
  EXPECT_EQ(words.find("\"or\""), std::string::npos) << "only the first 3 entries";
  expect_lines(describe_reply(doc_example("fetch-index-reply"), protocol::Opcode::kFetch),
               {"   result kind: postings (1)", "   entry 1: \"be\" in \"a.txt\", \"b.txt\""});
  expect_lines(describe_reply(doc_example("fetch-matmul-reply"), protocol::Opcode::kFetch),
               {"   result kind: matrix (2)", "   shape: 1x1"});
  expect_lines(describe_reply(doc_example("fetch-stats-reply"), protocol::Opcode::kFetch),
               {"   result kind: statistics (3)", "   count: 2", "   mean: 2", "   mode: 1.5",
                "   min: 1.5", "   max: 2.5"});
}

TEST(FrameTrace, AnOkBodyIsDecodedAsTheAnswerToItsRequest) {
  expect_lines(describe_reply(doc_example("submit-reply"), protocol::Opcode::kSubmit),
               {"   job id: 7"});
  expect_lines(describe_reply(doc_example("status-reply"), protocol::Opcode::kStatus),
               {"   job 7: done, map 4/4, reduce 2/2"});
  expect_lines(describe_reply(doc_example("list-reply"), protocol::Opcode::kList),
               {"   jobs: 2", "   job 7: done", "   job 8: queued"});
  expect_lines(describe_reply(doc_example("hello-reply"), protocol::Opcode::kHello),
               {"   protocol version: 1", "   software: mrd 0.1.0"});
  EXPECT_EQ(describe_reply(doc_example("cancel-reply"), protocol::Opcode::kCancel),
            "<< OK (0) body 0 bytes\n   00 00 00 00 00\n");
  // The same bytes mean nothing certain without the request they answer.
  expect_lines(describe_frame(Direction::kReceived, doc_example("submit-reply")),
               {"   (not decoded: an OK body's layout depends on the request it answers)"});
}

TEST(FrameTrace, ErrorRepliesShowTheirMessage) {
  EXPECT_EQ(describe_reply(doc_example("unknown-job-reply"), protocol::Opcode::kFetch),
            "<< UNKNOWN_JOB (2) body 16 bytes\n"
            "   02 10 00 00 00 08 00 00 00 00 00 00 00 6e 6f 20\n"
            "   6a 6f 62 20 39\n"
            "   message: no job 9\n");
  // Control bytes from the wire never reach the terminal as such.
  const auto odd = examples::message(static_cast<std::uint8_t>(Status::kBadJob),
                                     protocol::ErrorMessage{"bad\n\x1b[2J"});
  expect_lines(describe_reply(odd, protocol::Opcode::kSubmit),
               {"<< BAD_JOB (11) body 16 bytes", "   message: bad\\x0a\\x1b[2J"});
}

TEST(FrameTrace, ABadFrameShowsWhyInsteadOfCrashing) {
  // Cut off: the header announces 4 body bytes, 2 are here.
  const auto fetch = doc_example("fetch-request");
  expect_lines(describe_frame(Direction::kSent, fetch.substr(0, fetch.size() - 2)),
               {">> FETCH (1) body 4 bytes", "   01 04 00 00 00 07 00",
                "   (cut off: 2 body bytes of 4 here)",
                "   undecodable body: body ends in the middle of a number"});
  // A result cut in the middle of its entries.
  const auto words = doc_example("fetch-words-reply");
  const auto cut = describe_reply(words.substr(0, 40), protocol::Opcode::kFetch);
  EXPECT_NE(cut.find("   undecodable body: "), std::string::npos) << cut;
  // Trailing bytes, a lying count, undefined codes, less than a header.
  expect_lines(describe_frame(Direction::kSent, examples::frame(1, "\x07\x00\x00\x00\x00"s)),
               {"   undecodable body: unexpected bytes after the end of the body"});
  expect_lines(describe_reply(examples::frame(0, "\x00\xff\xff\xff\xff\xff\xff\xff\x0f"s),
                              protocol::Opcode::kFetch),
               {"   undecodable body: count entries: count larger than the body holds"});
  expect_lines(describe_frame(Direction::kSent, examples::frame(42, "")),
               {">> undefined opcode (42) body 0 bytes"});
  expect_lines(describe_frame(Direction::kReceived, examples::frame(99, "x")),
               {"<< undefined status (99) body 1 byte"});
  EXPECT_EQ(describe_frame(Direction::kReceived, "\x00\x04\x00"s),
            "<< 3 bytes, less than a frame header\n   00 04 00\n");
}

TEST(FrameTrace, ConnectionShowsItsObserverEveryFrameWithTheRequestItAnswers) {
  const auto submitted = reply(Status::kOk, protocol::JobId{7});
  const auto pending = doc_example("fetch-pending-reply");
  ScriptedServer server({submitted, pending});
  auto connection = Connection::connect(server.address());
  struct Seen {
    Direction direction;
    std::string frame;
    protocol::Opcode request;
    bool operator==(const Seen&) const = default;
  };
  std::vector<Seen> seen;
  connection.set_frame_observer(
      [&seen](Direction direction, std::string_view frame, protocol::Opcode request) {
        seen.push_back({direction, std::string(frame), request});
      });
  const protocol::SubmitRequest request{"words", "sum", {}, protocol::Documents{{{"a", "b c"}}}};
  EXPECT_EQ(connection.submit(request), 7u);
  EXPECT_EQ(connection.fetch(7).status, Status::kPending);
  const auto& requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(seen, (std::vector<Seen>{
                      {Direction::kSent, requests[0], protocol::Opcode::kSubmit},
                      {Direction::kReceived, submitted, protocol::Opcode::kSubmit},
                      {Direction::kSent, requests[1], protocol::Opcode::kFetch},
                      {Direction::kReceived, pending, protocol::Opcode::kFetch},
                  }));
}

// --- failover to a real mrd ---

TEST(Failover, PastARefusedPortAndAClosedConnectionToARealServer) {
  testing::ServerProcess mrd({"--workers", "1"});
  ScriptedServer hangs_up({""});
  std::vector<Move> moves;
  auto servers =
      failover_to({refused_address(), hangs_up.address(), {"127.0.0.1", mrd.port()}}, moves);
  const protocol::SubmitRequest request{
      "words", "sum", {}, protocol::Documents{{{"a", "to be or not to be"}}}};
  const auto job = servers.submit(request);
  EXPECT_EQ(servers.address(), (ServerAddress{"127.0.0.1", mrd.port()}));
  EXPECT_EQ(moves.size(), 2u);
  const auto outcome = servers.wait_for_result(job);
  ASSERT_EQ(outcome.status, Status::kOk) << outcome.message;
  EXPECT_EQ(outcome.result,
            (protocol::JobResult{protocol::Counts{{{"be", 2}, {"to", 2}, {"not", 1}, {"or", 1}}}}));
  EXPECT_EQ(servers.status(job).state, protocol::JobState::kDone);
  EXPECT_EQ(servers.list().jobs.size(), 1u);
  EXPECT_EQ(moves.size(), 2u) << "later requests stay on the server that answered";
}

}  // namespace
}  // namespace mrd::client
