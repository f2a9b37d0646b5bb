// Matrices in NumPy's .npy format: a magic string, a Python-literal header, then raw values.
//
// Format reference: numpy/lib/format.py. Only what a dense 1-D or 2-D numeric array needs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/messages.hpp"

namespace mrd::client {

/// Parses a .npy file of format version 1.0, 2.0 or 3.0 holding a 1-D (read as 1xN) or 2-D
/// array of dtype '<f8', '<f4', '<i8' or '<i4' (converted to double), in C or Fortran order.
/// Throws ClientError (kInput) as "SOURCE: ..." for anything else or a truncated file.
protocol::Matrix parse_npy(std::string_view bytes, std::string_view source);

/// An open .npy file holding numpy.save's float64 matrix (dtype '<f8', C order): its values are
/// a matrix's, byte for byte, so a SUBMIT can send them from the file (client::PayloadFile)
/// without reading them into memory. Owns `fd`.
struct NpyValues {
  NpyValues() = default;
  ~NpyValues();
  NpyValues(NpyValues&& other) noexcept;
  NpyValues& operator=(NpyValues&&) = delete;
  NpyValues(const NpyValues&) = delete;
  NpyValues& operator=(const NpyValues&) = delete;

  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  int fd = -1;
  std::uint64_t offset = 0;  ///< where the values start: after the header
  std::uint64_t bytes = 0;   ///< rows * cols * 8, up to the file's end
};

/// The .npy file at `path` opened as NpyValues, if it is a regular file of that layout, whole;
/// nullopt for anything else (load_npy reads it, or words what is wrong with it).
std::optional<NpyValues> open_npy_values(const std::string& path);

/// The .npy file at `path`, as parse_npy(read_input_file(path), path) reads it, errors included;
/// but a float64 matrix in C order (what numpy.save writes) is read from the file straight into
/// the matrix's values, rather than whole into memory and then copied there.
protocol::Matrix load_npy(const std::string& path);

/// The bytes of a .npy file before its values: format 1.0, dtype '<f8', C order, shape (rows,
/// cols), padded as numpy pads it.
std::string npy_header(std::uint64_t rows, std::uint64_t cols);

/// A .npy file, format 1.0, dtype '<f8', C order, shape (rows, cols): what numpy.save writes for
/// a float64 matrix, and what numpy.load reads back.
std::string encode_npy(const protocol::Matrix& m);

}  // namespace mrd::client
