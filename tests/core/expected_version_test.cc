#include "core/expected_version.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

using engram::core::ExpectedVersion;
using engram::core::StreamVersion;
using Kind = ExpectedVersion::Kind;
using nlohmann::json;

TEST_CASE("expected version: one spelling, parsed and printed") {
  for (const char* text : {"any", "no_stream", "stream_exists", "0", "7", "18446744073709551615"}) {
    CAPTURE(text);
    const auto e = ExpectedVersion::parse(text);
    REQUIRE(e.has_value());
    CHECK(e->to_string() == text);
  }
  CHECK(ExpectedVersion::parse("no_stream")->kind() == Kind::no_stream);
  CHECK(ExpectedVersion::parse("stream_exists")->kind() == Kind::stream_exists);
  CHECK(ExpectedVersion::parse("7")->kind() == Kind::exact);
  CHECK(ExpectedVersion::parse("7")->version() == StreamVersion(7));
  for (const char* bad : {"", "no-stream", "stream-exists", "ANY", "-1", "+1", "1.5", " 1", "1 ",
                          "18446744073709551616", "0x10"}) {
    CAPTURE(bad);
    CHECK_FALSE(ExpectedVersion::parse(bad).has_value());
  }
}

TEST_CASE("expected version: the JSON form") {
  CHECK(ExpectedVersion::from_json(json("any"))->kind() == Kind::any);
  CHECK(ExpectedVersion::from_json(json("no_stream"))->kind() == Kind::no_stream);
  CHECK(ExpectedVersion::from_json(json("stream_exists"))->kind() == Kind::stream_exists);
  CHECK(ExpectedVersion::from_json(json(5))->version() == StreamVersion(5));
  CHECK(ExpectedVersion::from_json(json(0))->kind() == Kind::exact);
  for (const json& bad : {json(-1), json(1.5), json("5"), json("no-stream"), json(nullptr),
                          json::array(), json::object(), json(true)}) {
    CAPTURE(bad.dump());
    CHECK_FALSE(ExpectedVersion::from_json(bad).has_value());
  }
  CHECK_FALSE(ExpectedVersion::from_json(json::parse("1e3")).has_value());
}

TEST_CASE("expected version: what each kind admits") {
  CHECK(ExpectedVersion::any().admits(StreamVersion(0)));
  CHECK(ExpectedVersion::any().admits(StreamVersion(3)));
  CHECK(ExpectedVersion::no_stream().admits(StreamVersion(0)));
  CHECK_FALSE(ExpectedVersion::no_stream().admits(StreamVersion(1)));
  CHECK_FALSE(ExpectedVersion::stream_exists().admits(StreamVersion(0)));
  CHECK(ExpectedVersion::stream_exists().admits(StreamVersion(1)));
  CHECK(ExpectedVersion::exact(StreamVersion(0)).admits(StreamVersion(0)));
  CHECK(ExpectedVersion::exact(StreamVersion(2)).admits(StreamVersion(2)));
  CHECK_FALSE(ExpectedVersion::exact(StreamVersion(2)).admits(StreamVersion(3)));
}
