#include "core/time.h"

#include <doctest/doctest.h>

#include <limits>

#include "tests/support/rfc3339_cases.h"

using engram::core::errc;
using engram::core::format_rfc3339_ns;
using engram::core::kRfc3339Help;
using engram::core::parse_rfc3339_ns;
using engram::core::parse_time_bound_ns;

namespace {
constexpr int64_t kSignedAtNs = 1'700'000'000'123'456'789;
}

TEST_CASE("time: format_rfc3339_ns") {
  CHECK(format_rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z");
  CHECK(format_rfc3339_ns(kSignedAtNs) == "2023-11-14T22:13:20.123456789Z");
  CHECK(format_rfc3339_ns(-1) == "1969-12-31T23:59:59.999999999Z");
  CHECK(format_rfc3339_ns(std::numeric_limits<int64_t>::min()) ==
        "1677-09-21T00:12:43.145224192Z");
  CHECK(format_rfc3339_ns(std::numeric_limits<int64_t>::max()) ==
        "2262-04-11T23:47:16.854775807Z");
}

TEST_CASE("time: the strict RFC 3339 table") {
  for (const auto& c : engram::test::rfc3339_cases()) {
    CAPTURE(c.text);
    CAPTURE(c.what);
    const auto r = parse_rfc3339_ns(c.text);
    REQUIRE(r.has_value() == c.unix_ns.has_value());
    if (c.unix_ns) {
      CHECK(*r == *c.unix_ns);
    } else {
      CHECK(r.error().code == errc::invalid_argument);
      // Every refusal says what a valid value looks like.
      CHECK(r.error().message.find(kRfc3339Help) != std::string::npos);
    }
  }
}

TEST_CASE("time: what the formatter prints, the parser reads back") {
  for (int64_t ns : {int64_t{0}, kSignedAtNs, int64_t{-1}, std::numeric_limits<int64_t>::min(),
                     std::numeric_limits<int64_t>::max(), int64_t{951'825'600'000'000'001}}) {
    CAPTURE(ns);
    const auto back = parse_rfc3339_ns(format_rfc3339_ns(ns));
    REQUIRE(back.has_value());
    CHECK(*back == ns);
  }
}

TEST_CASE("time: refusals say what was wrong") {
  auto why = [](std::string_view text) { return parse_rfc3339_ns(text).error().message; };
  CHECK(why("2026-02-31T00:00:00Z").find("2026-02 has no day 31") != std::string::npos);
  CHECK(why("2026-13-01T00:00:00Z").find("month 13") != std::string::npos);
  CHECK(why("2026-01-02T24:00:00Z").find("hour 24") != std::string::npos);
  CHECK(why("2026-12-31T23:59:60Z").find("leap second") != std::string::npos);
  CHECK(why("2026-01-02T03:04:05").find("no offset") != std::string::npos);
  CHECK(why("9999-12-31T23:59:59Z").find("int64") != std::string::npos);
}

TEST_CASE("time: a time bound is RFC 3339 or integer Unix nanoseconds") {
  CHECK(*parse_time_bound_ns("0") == 0);
  CHECK(*parse_time_bound_ns("-1") == -1);
  CHECK(*parse_time_bound_ns("1767323045000000000") == 1'767'323'045'000'000'000);
  CHECK(*parse_time_bound_ns("9223372036854775807") == std::numeric_limits<int64_t>::max());
  CHECK(*parse_time_bound_ns("-9223372036854775808") == std::numeric_limits<int64_t>::min());
  CHECK(*parse_time_bound_ns("2026-01-02T03:04:05Z") == 1'767'323'045'000'000'000);
  CHECK(*parse_time_bound_ns("2026-01-02T04:04:05+01:00") == 1'767'323'045'000'000'000);
  for (std::string_view bad : {"", "-", "1-2", "--1", "+5", "1e9", "0x10", " 1", "1 ",
                               "9223372036854775808", "2026-02-31T00:00:00Z"}) {
    CAPTURE(bad);
    const auto r = parse_time_bound_ns(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("Unix nanoseconds") != std::string::npos);
  }
  // The table holds for bounds too: none of its texts is an integer.
  for (const auto& c : engram::test::rfc3339_cases()) {
    CAPTURE(c.text);
    const auto r = parse_time_bound_ns(c.text);
    REQUIRE(r.has_value() == c.unix_ns.has_value());
    if (c.unix_ns) CHECK(*r == *c.unix_ns);
  }
}
