// Numbers for the statistics job: a text file of numbers separated by any whitespace.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mrd::client {

/// Parses every whitespace-separated token as a number (see parse_number_token; "nan" and "inf"
/// are numbers and reach the server as such). Throws ClientError (kInput) as
/// "SOURCE: line N: 'TOKEN' is not a number". An empty text is an empty list.
std::vector<double> parse_numbers(std::string_view text, std::string_view source);

/// parse_numbers over the file at `path`.
std::vector<double> load_numbers_file(const std::string& path);

}  // namespace mrd::client
