// Matrices as text, in the layout numpy.savetxt writes and numpy.loadtxt reads.
#pragma once

#include <string>
#include <string_view>

#include "protocol/messages.hpp"

namespace mrd::client {

/// Parses one matrix row per line. Values are separated by whitespace, or by commas when a line
/// holds one; "#" starts a comment; blank and comment-only lines are skipped. Every row must hold
/// as many values as the first: a single line is a 1xN matrix, one value per line Nx1.
/// Throws ClientError (kInput) as "SOURCE: line N: ..." for a bad value or a ragged row, and
/// for a text with no values at all.
protocol::Matrix parse_text_matrix(std::string_view text, std::string_view source);

/// Formats as numpy.savetxt(path, m) does by default: each value as "%.18e", one space between
/// values, "\n" after each row.
std::string format_text_matrix(const protocol::Matrix& m);

}  // namespace mrd::client
