#include "commands/input.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

namespace engram::test {
namespace {

using commands::Input;
using nlohmann::json;

TEST_CASE("input: ids, texts and labels") {
  const commands::Limits limits;
  const json body = {{"id", "Ab_1.2:3-x"},
                     {"uuid", "0190f3c2-1d2e-7abc-8def-0123456789ab"},
                     {"text", "line one\nline two"},
                     {"label", "feature/x y"},
                     {"null", nullptr}};
  Input in(body, limits);
  CHECK(in.id("id") == "Ab_1.2:3-x");
  CHECK(in.id("uuid") == "0190f3c2-1d2e-7abc-8def-0123456789ab");
  CHECK(in.text("text") == "line one\nline two");
  CHECK(in.optional_label("label") == "feature/x y");
  CHECK(!in.optional_text("null").has_value());  // null is absence
  CHECK(!in.optional_id("missing").has_value());
  CHECK(!in.finish().has_value());
}

TEST_CASE("input: the first problem wins and names its field") {
  const commands::Limits limits;
  for (const auto& [value, why] :
       std::vector<std::pair<json, const char*>>{{"", "empty"},
                                                 {"_x", "leading underscore"},
                                                 {"a b", "space"},
                                                 {"a/b", "slash"},
                                                 {std::string(129, 'a'), "too long"},
                                                 {7, "not a string"}}) {
    const json body = {{"id", value}, {"other", 1}};
    Input in(body, limits);
    in.id("id");
    in.text("other");  // a second problem, not reported
    const auto e = in.finish();
    REQUIRE_MESSAGE(e.has_value(), why);
    CHECK(e->kind == commands::Failure::malformed);
    CHECK(e->code == "invalid_field");
    CHECK(e->field == "/id");
  }
  const json tab = {{"label", "tab\there"}};
  Input in(tab, limits);
  in.optional_label("label");
  CHECK(in.finish()->field == "/label");
}

TEST_CASE("input: unknown fields are rejected with an escaped pointer") {
  const commands::Limits limits;
  const json body = {{"known", "x"}, {"a/b~c", 1}};
  Input in(body, limits);
  in.optional_text("known");
  const auto e = in.finish();
  REQUIRE(e.has_value());
  CHECK(e->code == "unknown_field");
  CHECK(e->field == "/a~1b~0c");
}

TEST_CASE("input: numbers") {
  const commands::Limits limits;
  const json body = {{"f", 0}, {"g", 1.0}, {"n", -3.5}, {"c", 12}, {"b", true}};
  Input in(body, limits);
  CHECK(in.fraction("f") == 0);
  CHECK(in.optional_fraction("g") == 1.0);
  CHECK(in.number("n", 10) == -3.5);
  CHECK(in.optional_count("c") == 12u);
  CHECK(in.boolean("b"));
  CHECK(!in.finish().has_value());

  const json eleven = {{"n", 11}};
  Input big(eleven, limits);
  big.number("n", 10);
  CHECK(big.finish()->field == "/n");
  const json one_and_a_half = {{"c", 1.5}};
  Input fractional(one_and_a_half, limits);
  fractional.optional_count("c");
  CHECK(fractional.finish()->field == "/c");
}

TEST_CASE("input: lists and objects are bounded") {
  commands::Limits limits;
  limits.max_tags = 2;
  const json tags = {{"tags", {"a", "b", "c"}}};
  Input in(tags, limits);
  in.optional_label_list("tags");
  CHECK(in.finish()->field == "/tags");

  limits.max_text_bytes = 16;
  const json config = {{"config", {{"key", std::string(64, 'v')}}}};
  Input obj(config, limits);
  obj.optional_object("config");
  CHECK(obj.finish()->field == "/config");

  json deep = json::object();
  for (int i = 0; i < 100; ++i) deep = json{{"d", deep}};
  limits.max_text_bytes = 1 << 20;
  const json deep_config = {{"config", deep}};
  Input nested(deep_config, limits);
  nested.optional_object("config");
  CHECK(nested.finish()->field == "/config");
}

}  // namespace
}  // namespace engram::test
