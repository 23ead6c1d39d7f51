#include "commands/project.h"

#include <doctest/doctest.h>

#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::Failure;
using commands::project::Phase;
using commands::project::State;
using nlohmann::json;

json advance(const char* to) {
  return {{"project_id", "p1"}, {"to_phase", to}};
}

TEST_CASE("project: phases advance one step at a time") {
  Harness h;
  CHECK(h.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}}) == "ProjectCreated");
  const State& s = h.state<State>("project-p1");
  CHECK(s.phase == Phase::research);

  CHECK(h.fails("AdvanceProjectPhase", advance("testing")).code == "phase_skip");
  CHECK(h.fails("AdvanceProjectPhase", advance("research")).code == "phase_unchanged");
  CHECK(h.ok("AdvanceProjectPhase", advance("development")) == "ProjectPhaseAdvanced");
  CHECK(h.fails("AdvanceProjectPhase", advance("research")).code == "phase_backwards");
  h.ok("AdvanceProjectPhase", advance("testing"));
  h.ok("AdvanceProjectPhase", advance("done"));
  CHECK(s.phase == Phase::done);
  const auto e = h.fails("AdvanceProjectPhase", advance("done"));
  CHECK(e.kind == Failure::rule);
  CHECK(e.code == "project_done");
}

TEST_CASE("project: going back only as a compensation, one step") {
  Harness h;
  h.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}});
  h.ok("AdvanceProjectPhase", advance("development"));
  h.ok("AdvanceProjectPhase", advance("testing"));
  const State& s = h.state<State>("project-p1");

  json back = {{"project_id", "p1"},
               {"to_phase", "research"},
               {"compensation_of", "saga-1"},
               {"reason", "tests failed"}};
  CHECK(h.fails("AdvanceProjectPhase", back).code == "invalid_compensation");
  back["to_phase"] = "development";
  CHECK(h.ok("AdvanceProjectPhase", back) == "ProjectPhaseReverted");
  CHECK(s.phase == Phase::development);

  // The compensation needs its reason, and a reason needs a compensation.
  json no_reason = {{"project_id", "p1"}, {"to_phase", "research"}, {"compensation_of", "s"}};
  auto e = h.fails("AdvanceProjectPhase", no_reason);
  CHECK(e.code == "missing_field");
  CHECK(e.field == "/reason");
  e = h.fails("AdvanceProjectPhase",
              {{"project_id", "p1"}, {"to_phase", "testing"}, {"reason", "why"}});
  CHECK(e.code == "invalid_field");
  CHECK(e.field == "/reason");
}

TEST_CASE("project: create twice, unknown, archived") {
  Harness h;
  CHECK(h.fails("AdvanceProjectPhase", advance("development")).code == "project_not_found");
  CHECK(h.fails("ArchiveProject", {{"project_id", "p1"}, {"reason", "r"}}).kind ==
        Failure::not_found);
  h.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}, {"description", "d"}});
  CHECK(h.fails("CreateProject", {{"project_id", "p1"}, {"name", "Again"}}).code ==
        "project_exists");
  CHECK(h.ok("ArchiveProject", {{"project_id", "p1"}, {"reason", "cancelled"}}) ==
        "ProjectArchived");
  CHECK(h.state<State>("project-p1").archived);
  CHECK(h.fails("ArchiveProject", {{"project_id", "p1"}, {"reason", "r"}}).code ==
        "project_archived");
  CHECK(h.fails("AdvanceProjectPhase", advance("development")).code == "project_archived");
}

TEST_CASE("project: validation") {
  Harness h;
  auto e = h.fails("AdvanceProjectPhase", {{"project_id", "p1"}, {"to_phase", "shipping"}});
  CHECK(e.code == "invalid_field");
  CHECK(e.field == "/to_phase");
  e = h.fails("CreateProject", {{"project_id", "p1"}, {"name", ""}});
  CHECK(e.field == "/name");
}

}  // namespace
}  // namespace engram::test
