#pragma once

// Times as text. engram prints every time as RFC 3339 UTC with nine fraction
// digits and reads times only through parse_rfc3339_ns, so what one command
// prints another accepts, and a CLI flag and an HTTP query agree on what a
// valid time is.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace engram::core {

// Longer text is refused before it is read: no valid time needs more (the
// fraction may carry digits past nanoseconds, which are cut).
inline constexpr size_t kMaxTimeTextBytes = 64;

// What a valid time looks like; every refusal's message ends with it.
inline constexpr std::string_view kRfc3339Help =
    "an RFC 3339 time looks like 2026-01-02T03:04:05Z, 2026-01-02T03:04:05.123456789Z or "
    "2026-01-02T04:04:05+01:00";

// RFC 3339 UTC with exactly nine fraction digits: "2023-11-14T22:13:20.123456789Z".
// Defined for every int64 (1677-09-21T00:12:43.145224192Z to
// 2262-04-11T23:47:16.854775807Z).
std::string format_rfc3339_ns(int64_t unix_ns);

// Parses an RFC 3339 date-time (RFC 3339 section 5.6) to Unix nanoseconds:
//   YYYY-MM-DD "T" hh ":" mm ":" ss [ "." 1*DIGIT ] ( "Z" / ("+" / "-") hh ":" mm )
// - Every field has its digits exactly and is range-checked against the
//   proleptic Gregorian calendar: month 01-12, day within its month (29
//   February only in leap years), hour 00-23, minute and second 00-59.
// - "T" and "Z" may be lower case (the RFC's note to section 5.6); no other
//   separator is accepted (not a space).
// - A fraction is cut (not rounded) to nanoseconds.
// - A numeric offset is applied: 2026-01-02T04:04:05+01:00 is the same
//   instant as 2026-01-02T03:04:05Z; "-00:00" means UTC.
// - Refused, with errc::invalid_argument and a message that says why and
//   ends with kRfc3339Help: anything else, a leap second (":60", which Unix
//   time cannot name), an instant outside int64 nanoseconds, and text longer
//   than kMaxTimeTextBytes.
result<int64_t> parse_rfc3339_ns(std::string_view text);

// A time bound as the audit queries take it (`engram audit actor --since`,
// `GET /v1/audit/actor?since=`): an RFC 3339 time as parse_rfc3339_ns reads
// it, or integer Unix nanoseconds ("0", "-1", "1767323045000000000").
// errc::invalid_argument, saying which forms are valid, otherwise.
result<int64_t> parse_time_bound_ns(std::string_view text);

}  // namespace engram::core
