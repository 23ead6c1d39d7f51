#pragma once

// Strict RFC 3339 cases, shared by the unit test of core/time.h and by the
// tests that send them through `engram audit actor --since/--until` and
// `GET /v1/audit/actor?since=&until=`, so the CLI and the HTTP API are held
// to one definition of a valid time.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace engram::test {

struct Rfc3339Case {
  std::string text;
  std::optional<int64_t> unix_ns;  // nullopt: must be refused
  std::string what;
};

inline const std::vector<Rfc3339Case>& rfc3339_cases() {
  constexpr int64_t k2023 = 1'700'000'000'000'000'000;  // 2023-11-14T22:13:20Z
  static const std::vector<Rfc3339Case> cases = {
      // Accepted.
      {"1970-01-01T00:00:00Z", 0, "the epoch"},
      {"2023-11-14T22:13:20Z", k2023, "whole seconds"},
      {"2023-11-14T22:13:20.123456789Z", k2023 + 123'456'789, "nanoseconds"},
      {"2023-11-14T22:13:20.5Z", k2023 + 500'000'000, "one fraction digit"},
      {"2023-11-14T22:13:20.1234567891Z", k2023 + 123'456'789, "a finer fraction is cut"},
      {"2023-11-14T22:13:20.999999999999Z", k2023 + 999'999'999, "cut, not rounded"},
      {"2023-11-14t22:13:20z", k2023, "lower-case t and z"},
      {"2023-11-14T23:13:20+01:00", k2023, "a positive offset"},
      {"2023-11-14T17:43:20-04:30", k2023, "a negative offset with minutes"},
      {"2023-11-14T22:13:20-00:00", k2023, "-00:00 is UTC"},
      {"2023-11-15T08:13:20.25+10:00", k2023 + 250'000'000, "an offset after a fraction"},
      {"2026-01-01T00:30:00+01:00", 1'767'223'800'000'000'000, "an offset crossing the year"},
      {"2026-01-02T03:04:05Z", 1'767'323'045'000'000'000, "the documented example"},
      {"2024-02-29T00:00:00Z", 1'709'164'800'000'000'000, "29 February of a leap year"},
      {"2000-02-29T12:00:00Z", 951'825'600'000'000'000, "29 February of a 400th year"},
      {"2023-12-31T23:59:59Z", 1'704'067'199'000'000'000, "the last second of a year"},
      {"1969-12-31T23:59:59.999999999Z", -1, "before the epoch"},
      {"1677-09-21T00:12:43.145224192Z", std::numeric_limits<int64_t>::min(), "the first int64 ns"},
      {"2262-04-11T23:47:16.854775807Z", std::numeric_limits<int64_t>::max(), "the last int64 ns"},
      // Refused.
      {"", std::nullopt, "empty"},
      {"1-2", std::nullopt, "not a date"},
      {"2026-01-02", std::nullopt, "a date alone"},
      {"2026-02-31T00:00:00Z", std::nullopt, "31 February"},
      {"2023-02-29T00:00:00Z", std::nullopt, "29 February of a common year"},
      {"1900-02-29T00:00:00Z", std::nullopt, "29 February of a century not divisible by 400"},
      {"2026-04-31T00:00:00Z", std::nullopt, "31 April"},
      {"2026-13-01T00:00:00Z", std::nullopt, "month 13"},
      {"2026-00-10T00:00:00Z", std::nullopt, "month 0"},
      {"2026-01-00T00:00:00Z", std::nullopt, "day 0"},
      {"2026-01-32T00:00:00Z", std::nullopt, "day 32"},
      {"2026-01-02T24:00:00Z", std::nullopt, "hour 24"},
      {"2026-01-02T23:60:00Z", std::nullopt, "minute 60"},
      {"2026-12-31T23:59:60Z", std::nullopt, "a leap second"},
      {"2026-01-02T23:59:61Z", std::nullopt, "second 61"},
      {"2026-01-02T03:04:05", std::nullopt, "no offset"},
      {"2026-01-02 03:04:05Z", std::nullopt, "a space for T"},
      {"2026-01-02T03:04Z", std::nullopt, "no seconds"},
      {"2026-1-02T03:04:05Z", std::nullopt, "a one-digit month"},
      {"26-01-02T03:04:05Z", std::nullopt, "a two-digit year"},
      {"2026-01-02T3:04:05Z", std::nullopt, "a one-digit hour"},
      {"2026-01-02T03:04:05.Z", std::nullopt, "a '.' without digits"},
      {"2026-01-02T03:04:05,5Z", std::nullopt, "a comma for the fraction"},
      {"2026-01-02T03:04:05+0100", std::nullopt, "an offset without a colon"},
      {"2026-01-02T03:04:05+01", std::nullopt, "an offset without minutes"},
      {"2026-01-02T03:04:05+24:00", std::nullopt, "offset hour 24"},
      {"2026-01-02T03:04:05+01:60", std::nullopt, "offset minute 60"},
      {"2026-01-02T03:04:05ZZ", std::nullopt, "text after Z"},
      {"2026-01-02T03:04:05Z ", std::nullopt, "a trailing space"},
      {" 2026-01-02T03:04:05Z", std::nullopt, "a leading space"},
      {"2262-04-11T23:47:16.854775808Z", std::nullopt, "one ns past int64"},
      {"1677-09-21T00:12:43.145224191Z", std::nullopt, "one ns before int64"},
      {"9999-12-31T23:59:59Z", std::nullopt, "past int64 ns"},
      {"0000-01-01T00:00:00Z", std::nullopt, "year 0, before int64 ns"},
      {"2026-01-02T03:04:05." + std::string(60, '1') + "Z", std::nullopt, "longer than 64 bytes"},
  };
  return cases;
}

}  // namespace engram::test
