// The two JSON primitives mrctl's output needs, written by hand: strings and numbers.
#pragma once

#include <string>
#include <string_view>

namespace mrd::client {

/// Appends `s` as a JSON string literal, quotes included: '"' and '\' are escaped, control
/// characters (below 0x20) become \u00XX, and every other byte is copied as it is, so UTF-8
/// passes through unchanged (and so do bytes that are not UTF-8: words are bytes to mrd).
void append_json_string(std::string& out, std::string_view s);

/// append_json_string into a new string.
std::string json_string(std::string_view s);

/// A double with round-trip precision ("%.17g"), or null for NaN and the infinities, which
/// JSON cannot express.
std::string json_number(double value);

}  // namespace mrd::client
