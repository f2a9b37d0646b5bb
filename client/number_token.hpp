// Turning one whitespace- or comma-delimited token of an input file into a double.
#pragma once

#include <optional>
#include <string_view>

namespace mrd::client {

/// The value of `token` if the whole token is a number as strtod reads it: decimal or scientific
/// ("1.000000000000000000e+00"), with a sign or not, "nan", "inf", "infinity" in any case.
/// Overflow to infinity (say "1e999") is not a number here; underflow to a subnormal is.
std::optional<double> parse_number_token(std::string_view token);

}  // namespace mrd::client
