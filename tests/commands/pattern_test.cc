#include "commands/pattern.h"

#include <doctest/doctest.h>

#include "commands/ids.h"
#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::Failure;
using commands::pattern::State;
using nlohmann::json;

json observe(const char* outcome = "success", double reward = 1.0) {
  return {{"domain", "ml"},
          {"signature", "retry with smaller lr"},
          {"context", {{"lr", 0.01}, {"tags", {"a", "b"}}}},
          {"outcome", outcome},
          {"reward", reward},
          {"agent_id", "a1"}};
}

TEST_CASE("pattern: the id is a hash of domain and signature") {
  const std::string id = commands::pattern_id("ml", "retry with smaller lr");
  CHECK(id.size() == 16);
  CHECK(commands::valid_pattern_id(id));
  CHECK(id == commands::pattern_id("ml", "retry with smaller lr"));
  CHECK(id != commands::pattern_id("ml", "retry with smaller lr "));
  // The separator keeps ("ab", "c") and ("a", "bc") apart.
  CHECK(commands::pattern_id("ab", "c") != commands::pattern_id("a", "bc"));
  CHECK(!commands::valid_pattern_id("ABCDEF0123456789"));
}

TEST_CASE("pattern: observe and retire") {
  Harness h;
  auto events = h.run("ObservePattern", observe());
  REQUIRE(events.has_value());
  const std::string stream = "pattern-" + commands::pattern_id("ml", "retry with smaller lr");
  CHECK(h.last_stream == stream);
  BusFixture f;
  const json d = data_of(events->front(), *f.keys);
  CHECK(d["outcome"] == "success");
  CHECK(d["reward"] == 1.0);
  CHECK(d["context"]["lr"] == 0.01);
  CHECK(d["context"]["tags"] == json({"a", "b"}));
  CHECK(d["agent_id"] == "a1");
  h.ok("ObservePattern", observe("failure", -2.5));
  CHECK(h.state<State>(stream).observed);

  CHECK(h.ok("RetirePattern", {{"domain", "ml"},
                               {"signature", "retry with smaller lr"},
                               {"reason", "superseded"}}) == "PatternRetired");
  auto e = h.fails("ObservePattern", observe());
  CHECK(e.kind == Failure::rule);
  CHECK(e.code == "pattern_retired");
  CHECK(
      h.fails("RetirePattern", {{"pattern_id", commands::pattern_id("ml", "retry with smaller lr")},
                                {"reason", "again"}})
          .code == "pattern_retired");
  e = h.fails("RetirePattern", {{"pattern_id", "0123456789abcdef"}, {"reason", "r"}});
  CHECK(e.kind == Failure::not_found);
  CHECK(e.code == "pattern_not_found");
}

TEST_CASE("pattern: validation") {
  Harness h;
  json bad = observe();
  bad["outcome"] = "maybe";
  CHECK(h.fails("ObservePattern", bad).field == "/outcome");
  bad = observe("success", 2e9);
  CHECK(h.fails("ObservePattern", bad).field == "/reward");
  bad = observe();
  bad["reward"] = "1";
  CHECK(h.fails("ObservePattern", bad).field == "/reward");
  bad = observe();
  bad["context"] = json::array();
  CHECK(h.fails("ObservePattern", bad).field == "/context");
  h.ok("ObservePattern", observe("success", -1e9));
  auto e = h.fails("RetirePattern", {{"pattern_id", "xyz"}, {"reason", "r"}});
  CHECK(e.field == "/pattern_id");
  e = h.fails("RetirePattern",
              {{"pattern_id", "0123456789abcdef"}, {"domain", "ml"}, {"reason", "r"}});
  CHECK(e.code == "invalid_field");
  e = h.fails("RetirePattern", {{"reason", "r"}});
  CHECK(e.code == "missing_field");
  CHECK(e.field == "/domain");
}

TEST_CASE("pattern: agent-scoped principals observe as themselves") {
  Harness h;
  h.who = agent_principal("a2");
  CHECK(h.fails("ObservePattern", observe()).code == "not_self");
  json mine = observe();
  mine.erase("agent_id");
  auto events = h.run("ObservePattern", mine);
  REQUIRE(events.has_value());
  BusFixture f;
  CHECK(data_of(events->front(), *f.keys)["agent_id"] == "a2");
}

}  // namespace
}  // namespace engram::test
