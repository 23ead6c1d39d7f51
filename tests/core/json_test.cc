#include "core/json.h"

#include <doctest/doctest.h>

#include <string>

using engram::core::JsonErrc;
using engram::core::parse_json;
using engram::core::parse_json_object;

namespace {

engram::core::JsonError error_of(std::string_view text, size_t max_depth = 64) {
  auto r = parse_json(text, max_depth);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

}  // namespace

TEST_CASE("json: valid JSON parses to the same value as nlohmann's parser") {
  for (std::string_view text : {R"({"a": [1, {"b": null}], "c": "x"})", "[]", "42", "\"s\"",
                                R"({"a": {"a": {"a": 1}}})", R"([{"k": 1}, {"k": 2}])"}) {
    CAPTURE(text);
    auto r = parse_json(text);
    REQUIRE(r.has_value());
    CHECK(*r == nlohmann::json::parse(text));
  }
}

TEST_CASE("json: a repeated name is refused, naming it and where it is") {
  auto e = error_of(R"({"agent_id":"a6","agent_id":"a7"})");
  CHECK(e.code == JsonErrc::duplicate_key);
  CHECK(e.pointer == "/agent_id");
  CHECK(e.message.find("\"agent_id\"") != std::string::npos);

  e = error_of(R"({"events": [{"type": "A"}, {"type": "B", "data": {}, "type": "C"}]})");
  CHECK(e.code == JsonErrc::duplicate_key);
  CHECK(e.pointer == "/events/1/type");
  CHECK(e.message.find("/events/1/type") != std::string::npos);

  // Arrays of scalars and of arrays count their elements too.
  e = error_of(R"({"x": [1, [2, 3], "s", {"a": 1, "a": 2}]})");
  CHECK(e.pointer == "/x/3/a");
  e = error_of(R"([[], {}, {"a/b~c": 1, "a/b~c": 1}])");
  CHECK(e.pointer == "/2/a~1b~0c");

  // The same name in two objects, or as a value, is fine.
  CHECK(parse_json(R"({"a": {"a": 1}, "b": {"a": 2}, "c": "a"})").has_value());
  CHECK(parse_json(R"([{"a": 1}, {"a": 2}])").has_value());
}

TEST_CASE("json: nesting deeper than the bound is refused before parsing") {
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  CHECK(error_of(deep).code == JsonErrc::too_deep);
  CHECK(error_of(deep).message.find("deeper than 64") != std::string::npos);
  CHECK(error_of(R"({"a": {"b": 1}})", 1).code == JsonErrc::too_deep);
  CHECK(parse_json(R"({"a": {"b": 1}})", 2).has_value());
  // A million brackets: refused, not a stack overflow.
  CHECK(error_of(std::string(1'000'000, '[')).code == JsonErrc::too_deep);
}

TEST_CASE("json: syntax errors, invalid UTF-8 and trailing text are refused") {
  for (std::string_view bad : {"", "{not json", R"({"a": 1} trailing)", R"({"a": 1,})", "{'a': 1}",
                               "[1, 2", "{\"a\": \"\xff\xfe\"}", "nan", "1e400"}) {
    CAPTURE(bad);
    const auto e = error_of(bad);
    CHECK(e.code == JsonErrc::syntax);
    CHECK(e.message.find("not valid JSON") != std::string::npos);
    // The message is safe to put in a JSON answer, whatever the input held.
    for (char c : e.message) CHECK((c >= 0x20 && c <= 0x7E));
  }
}

TEST_CASE("json: parse_json_object requires an object") {
  CHECK(parse_json_object("{}").has_value());
  for (std::string_view text : {"[1,2]", "42", "null", "\"{}\""}) {
    CAPTURE(text);
    auto r = parse_json_object(text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == JsonErrc::not_object);
    CHECK(r.error().message.find("expected a JSON object") != std::string::npos);
  }
  // Other refusals come first.
  CHECK(parse_json_object("[").error().code == JsonErrc::syntax);
}
