#include "commands/agent.h"

#include <doctest/doctest.h>

#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::Failure;
using commands::agent::State;
using commands::agent::Status;
using nlohmann::json;

json registration(const std::string& id) {
  return {{"agent_id", id},    {"name", "Researcher " + id},
          {"kind", "llm"},     {"capabilities", {"search", "python"}},
          {"domains", {"ml"}}, {"config", {{"model", "m1"}, {"temperature", 0.5}}}};
}

TEST_CASE("agent: register, adapt, suspend, retire") {
  Harness h;
  CHECK(h.ok("RegisterAgent", registration("a1")) == "AgentRegistered");
  const State& s = h.state<State>("agent-a1");
  CHECK(s.registered);
  CHECK(s.status == Status::active);
  CHECK(s.capabilities == std::vector<std::string>{"search", "python"});

  CHECK(h.ok("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"ml", "nlp"}}}) == "AgentAdapted");
  CHECK(s.domains == std::vector<std::string>{"ml", "nlp"});
  CHECK(s.capabilities == std::vector<std::string>{"search", "python"});  // kept

  CHECK(h.ok("SuspendAgent", {{"agent_id", "a1"}, {"reason", "budget"}}) == "AgentSuspended");
  CHECK(s.status == Status::suspended);
  // A suspended agent can still be adapted, and retired.
  h.ok("AdaptAgent", {{"agent_id", "a1"}, {"config", json::object()}});
  CHECK(h.ok("RetireAgent", {{"agent_id", "a1"}, {"reason", "done"}}) == "AgentRetired");
  CHECK(s.status == Status::retired);
}

TEST_CASE("agent: rule violations") {
  Harness h;
  SUBCASE("unknown agent") {
    for (const char* type : {"AdaptAgent", "SuspendAgent", "RetireAgent"}) {
      json body = {{"agent_id", "ghost"}, {"reason", "x"}};
      if (std::string(type) == "AdaptAgent") body = {{"agent_id", "ghost"}, {"domains", {"x"}}};
      const auto e = h.fails(type, body);
      CHECK(e.kind == Failure::not_found);
      CHECK(e.code == "agent_not_found");
    }
  }
  SUBCASE("registered twice") {
    h.ok("RegisterAgent", registration("a1"));
    const auto e = h.fails("RegisterAgent", registration("a1"));
    CHECK(e.kind == Failure::rule);
    CHECK(e.code == "agent_already_registered");
  }
  SUBCASE("suspend when not active") {
    h.ok("RegisterAgent", registration("a1"));
    h.ok("SuspendAgent", {{"agent_id", "a1"}, {"reason", "r"}});
    CHECK(h.fails("SuspendAgent", {{"agent_id", "a1"}, {"reason", "r"}}).code ==
          "agent_not_active");
  }
  SUBCASE("retired is final") {
    h.ok("RegisterAgent", registration("a1"));
    h.ok("RetireAgent", {{"agent_id", "a1"}, {"reason", "r"}});
    CHECK(h.fails("RetireAgent", {{"agent_id", "a1"}, {"reason", "r"}}).code == "agent_retired");
    CHECK(h.fails("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"x"}}}).code == "agent_retired");
    CHECK(h.fails("SuspendAgent", {{"agent_id", "a1"}, {"reason", "r"}}).code ==
          "agent_not_active");
  }
}

TEST_CASE("agent: validation names the field") {
  Harness h;
  auto e = h.fails("RegisterAgent",
                   {{"name", "n"}, {"capabilities", json::array()}, {"domains", json::array()}});
  CHECK(e.kind == Failure::malformed);
  CHECK(e.code == "missing_field");
  CHECK(e.field == "/agent_id");

  json bad = registration("a1");
  bad["agent_id"] = "-leading-dash";
  e = h.fails("RegisterAgent", bad);
  CHECK(e.code == "invalid_field");
  CHECK(e.field == "/agent_id");

  bad = registration("a1");
  bad["capabilities"] = {"ok", 7};
  e = h.fails("RegisterAgent", bad);
  CHECK(e.field == "/capabilities/1");

  // The lists are optional and default to empty.
  CHECK(h.ok("RegisterAgent", {{"agent_id", "a9"}, {"name", "Minimal"}}) == "AgentRegistered");

  bad = registration("a1");
  bad["config"] = "not an object";
  CHECK(h.fails("RegisterAgent", bad).field == "/config");

  bad = registration("a1");
  bad["colour"] = "blue";
  e = h.fails("RegisterAgent", bad);
  CHECK(e.code == "unknown_field");
  CHECK(e.field == "/colour");

  e = h.fails("AdaptAgent", {{"agent_id", "a1"}});
  CHECK(e.code == "missing_field");
}

TEST_CASE("agent: an agent-scoped principal acts only on itself") {
  Harness h;
  h.who = agent_principal("a1");
  h.ok("RegisterAgent", registration("a1"));
  const auto e = h.fails("RegisterAgent", registration("a2"));
  CHECK(e.kind == Failure::forbidden);
  CHECK(e.code == "not_self");
  CHECK(h.fails("SuspendAgent", {{"agent_id", "a2"}, {"reason", "r"}}).code == "not_self");
  h.ok("AdaptAgent", {{"agent_id", "a1"}, {"capabilities", {"rust"}}});
}

TEST_CASE("agent: events render as JSON") {
  Harness h;
  auto events = h.run("RegisterAgent", registration("a1"));
  REQUIRE(events.has_value());
  BusFixture f;  // for a key store
  const json d = data_of(events->front(), *f.keys);
  CHECK(d["agent_id"] == "a1");
  CHECK(d["kind"] == "llm");
  CHECK(d["capabilities"] == json({"search", "python"}));
  CHECK(d["config"]["model"] == "m1");
  CHECK(d["config"]["temperature"] == 0.5);
}

}  // namespace
}  // namespace engram::test
