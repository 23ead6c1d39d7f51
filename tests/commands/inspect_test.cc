#include "commands/inspect.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::state_at;
using commands::StateAt;
using nlohmann::json;

StateAt at(const BusFixture& f, std::string_view stream, uint64_t position) {
  auto r = state_at(*f.log, stream, core::Position(position));
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().to_string()));
  return std::move(*r);
}

TEST_CASE("inspect: an agent's state at each position") {
  BusFixture f;
  // Other streams' events in between, so positions and versions differ.
  f.ok("RegisterAgent", {{"agent_id", "a2"}, {"name", "Other"}});  // 1
  f.ok("RegisterAgent", {{"agent_id", "a1"},
                         {"name", "Researcher"},
                         {"capabilities", {"search", "python"}},
                         {"domains", {"ml"}},
                         {"config", {{"model", "m1"}}}});                // 2
  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}});     // 3
  f.ok("AdaptAgent", {{"agent_id", "a1"}, {"capabilities", {"rust"}}});  // 4
  f.ok("SuspendAgent", {{"agent_id", "a1"}, {"reason", "budget"}});      // 5
  f.ok("AdaptAgent", {{"agent_id", "a2"}, {"capabilities", {"c"}}});     // 6
  const auto events = f.all_events();
  REQUIRE(events.size() == 6);

  StateAt s = at(f, "agent-a1", 1);
  CHECK(s.stream == "agent-a1");
  CHECK(s.version == 0);
  CHECK(s.position == 0);
  CHECK(s.recorded_at_ns == 0);
  CHECK(s.state == commands::state_to_json(commands::agent::State{}));
  CHECK(s.state["registered"] == false);

  for (uint64_t p : {2, 3}) {
    s = at(f, "agent-a1", p);
    CHECK(s.version == 1);
    CHECK(s.position == 2);
    CHECK(s.recorded_at_ns == events[1].recorded_at_ns());
    CHECK(s.state == json{{"aggregate", "agent"},
                          {"registered", true},
                          {"status", "active"},
                          {"name", "Researcher"},
                          {"capabilities", {"search", "python"}},
                          {"domains", {"ml"}},
                          {"config", {{"model", "m1"}}}});
  }

  s = at(f, "agent-a1", 4);
  CHECK(s.version == 2);
  CHECK(s.position == 4);
  CHECK(s.state["capabilities"] == json{"rust"});
  CHECK(s.state["domains"] == json{"ml"});
  CHECK(s.state["status"] == "active");

  for (uint64_t p : {5, 6, 1000}) {
    s = at(f, "agent-a1", p);
    CHECK(s.version == 3);
    CHECK(s.position == 5);
    CHECK(s.recorded_at_ns == events[4].recorded_at_ns());
    CHECK(s.state["status"] == "suspended");
    CHECK(s.state["capabilities"] == json{"rust"});
  }

  // A stream that never existed is the initial state at version 0.
  s = at(f, "agent-ghost", 6);
  CHECK(s.version == 0);
  CHECK(s.state["registered"] == false);
}

TEST_CASE("inspect: a project's phase at each position") {
  BusFixture f;
  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}});
  f.ok("AdvanceProjectPhase", {{"project_id", "p1"}, {"to_phase", "development"}});
  f.ok("AdvanceProjectPhase", {{"project_id", "p1"}, {"to_phase", "testing"}});
  f.ok("AdvanceProjectPhase", {{"project_id", "p1"},
                               {"to_phase", "development"},
                               {"compensation_of", "saga-1"},
                               {"reason", "tests failed"}});
  f.ok("ArchiveProject", {{"project_id", "p1"}, {"reason", "cancelled"}});

  const std::vector<std::string> phases = {"research", "development", "testing", "development",
                                           "development"};
  for (uint64_t p = 1; p <= phases.size(); ++p) {
    CAPTURE(p);
    const StateAt s = at(f, "project-p1", p);
    CHECK(s.version == p);
    CHECK(s.state["created"] == true);
    CHECK(s.state["name"] == "Vision");
    CHECK(s.state["phase"] == phases[p - 1]);
    CHECK(s.state["archived"] == (p == 5));
  }
}

TEST_CASE("inspect: a task in the middle of its review") {
  BusFixture f;
  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}});
  f.ok("RegisterAgent", {{"agent_id", "a1"}, {"name", "Researcher"}});
  f.ok("RequestResearch", {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "Find X"}});
  f.ok("AssignTask", {{"task_id", "t1"}, {"agent_id", "a1"}});
  f.ok("SubmitFindings", {{"task_id", "t1"}, {"summary", "X is Y"}}, agent_principal("a1"));
  const auto requested = f.ok("RequestCheckpoint", {{"task_id", "t1"}});
  f.ok("ApproveCheckpoint", {{"task_id", "t1"}}, reviewer());

  StateAt s = at(f, "task-t1", requested.last_position);
  CHECK(s.version == 4);
  CHECK(s.position == requested.last_position);
  CHECK(s.state == json{{"aggregate", "task"},
                        {"requested", true},
                        {"status", "checkpoint_pending"},
                        {"project_id", "p1"},
                        {"assignee", "a1"},
                        {"checkpoint_stage", "findings"},
                        {"has_test_result", false},
                        {"tests_passed", false}});

  s = at(f, "task-t1", f.head());
  CHECK(s.version == 5);
  CHECK(s.state["status"] == "checkpoint_approved");
}

TEST_CASE("inspect: bad arguments and corrupt events") {
  BusFixture f;
  f.ok("RegisterAgent", {{"agent_id", "a1"}, {"name", "Researcher"}});

  auto r = state_at(*f.log, "demo", core::Position(1));
  REQUIRE(!r.has_value());
  CHECK(r.error().code == core::errc::invalid_argument);
  r = state_at(*f.log, "agent-a1", core::Position(0));
  REQUIRE(!r.has_value());
  CHECK(r.error().code == core::errc::invalid_argument);

  // The log takes any payload; only evolve knows it is not an AgentRegistered.
  core::EventData bad = event("AgentRegistered", "not a flatbuffer");
  bad.payload_format = core::PayloadFormat::flatbuffer;
  REQUIRE(f.log->append("agent-a9", core::ExpectedVersion::any(), {&bad, 1}).has_value());
  r = state_at(*f.log, "agent-a9", core::Position(f.head()));
  REQUIRE(!r.has_value());
  CHECK(r.error().code == core::errc::corruption);
  CHECK(r.error().message.find("agent-a9 version 1") != std::string::npos);
}

TEST_CASE("inspect: a memory aggregate's memories are cut at the limit") {
  // Decided in memory and appended in bulk: a thousand commands through the
  // bus would each wait for an fsync.
  Harness h;
  std::vector<core::EventData> stored;
  for (size_t i = 0; i <= commands::kMaxStateListItems; ++i) {
    auto events = h.run("StoreMemory", {{"owner", "alice"},
                                        {"memory_id", fmt::format("m{:04}", i)},
                                        {"content", "secret"},
                                        {"importance", 0.5}});
    REQUIRE(events.has_value());
    REQUIRE(events->size() == 1);
    core::EventData e = event(events->front().type, std::move(events->front().payload));
    e.payload_format = core::PayloadFormat::flatbuffer;
    stored.push_back(std::move(e));
  }

  TempDir dir;
  core::LogOptions options;
  options.max_read_count = 64;  // many pages
  auto log = open_or_die(dir.path(), options);
  const std::span<const core::EventData> all(stored);
  REQUIRE(log->append("memory-alice", core::ExpectedVersion::any(),
                      all.first(commands::kMaxStateListItems))
              .has_value());
  REQUIRE(log->append("memory-alice", core::ExpectedVersion::any(),
                      all.subspan(commands::kMaxStateListItems))
              .has_value());

  auto full = state_at(*log, "memory-alice", core::Position(commands::kMaxStateListItems));
  REQUIRE(full.has_value());
  CHECK(full->version == commands::kMaxStateListItems);
  const json& memories = full->state["memories"];
  CHECK(memories["count"] == commands::kMaxStateListItems);
  CHECK(memories["items"].size() == commands::kMaxStateListItems);
  CHECK(memories["truncated"] == false);
  CHECK(memories["items"][0] ==
        json{{"memory_id", "m0000"}, {"importance", 0.5}, {"forgotten", false}});

  auto cut = state_at(*log, "memory-alice", log->head().position);
  REQUIRE(cut.has_value());
  CHECK(cut->version == commands::kMaxStateListItems + 1);
  const json& more = cut->state["memories"];
  CHECK(more["count"] == commands::kMaxStateListItems + 1);
  CHECK(more["items"].size() == commands::kMaxStateListItems);
  CHECK(more["truncated"] == true);
  CHECK(more["items"].front()["memory_id"] == "m0000");
  CHECK(more["items"].back()["memory_id"] == "m0999");
  CHECK(cut->state.dump().find("secret") == std::string::npos);
}

}  // namespace
}  // namespace engram::test
