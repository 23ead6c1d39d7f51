// The bus's typed entry point (TypedRequest), as sagas will use it, and the
// system principal.

#include <doctest/doctest.h>

#include <map>

#include "commands/bus.h"
#include "core/thread_role.h"
#include "tests/commands/harness.h"

namespace engram::test {
namespace {

namespace cmd = commands;
using cmd::Failure;
using nlohmann::json;

cmd::TypedRequest typed(cmd::AnyCommand c, cmd::Principal who = writer()) {
  cmd::TypedRequest r;
  r.command = std::move(c);
  r.principal = std::move(who);
  return r;
}

cmd::AnyCommand register_agent(const std::string& id) {
  cmd::agent::Register r;
  r.agent_id = id;
  r.name = "Agent " + id;
  r.capabilities = {"search"};
  return cmd::agent::Command{std::move(r)};
}

TEST_CASE("typed: a command as a value takes the JSON path's rules and records its ids") {
  BusFixture f;
  cmd::TypedRequest r = typed(register_agent("a1"));
  r.causation_id = core::Uuid{7, 8};
  r.correlation_id = core::Uuid{1, 2};
  auto o = f.bus.execute_sync(r);
  REQUIRE_MESSAGE(o.has_value(), (o ? "" : o.error().detail));
  CHECK(o->stream == "agent-a1");
  CHECK(o->events[0].type == "AgentRegistered");
  CHECK(o->events[0].data["capabilities"] == json{"search"});
  const auto e = f.all_events().back();
  CHECK(e.causation_id() == core::Uuid{7, 8});
  CHECK(e.correlation_id() == core::Uuid{1, 2});
  CHECK(e.command_id() == o->command_id);

  // The same field rules as JSON: the typed value goes through the parser.
  auto bad = f.bus.execute_sync(typed(register_agent("not an id")));
  REQUIRE(!bad.has_value());
  CHECK(bad.error().kind == Failure::malformed);
  CHECK(bad.error().field == "/agent_id");
  cmd::project::Create long_name{"p1", std::string(cmd::BusOptions{}.max_text_bytes + 1, 'n'), {}};
  bad = f.bus.execute_sync(typed(cmd::project::Command{long_name}));
  REQUIRE(!bad.has_value());
  CHECK(bad.error().field == "/name");
  CHECK(f.head() == 1);

  // And the same decisions.
  bad = f.bus.execute_sync(typed(register_agent("a1")));
  REQUIRE(!bad.has_value());
  CHECK(bad.error().code == "agent_already_registered");
}

TEST_CASE("typed: an empty creation id is the command id, and a key makes it deterministic") {
  BusFixture f;
  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "P"}});
  const auto saga = cmd::Principal::system("saga:research");
  cmd::TypedRequest r =
      typed(cmd::task::Command{cmd::task::RequestResearch{"", "p1", "Find X", {}, {}}}, saga);
  r.idempotency_key = "saga-1/step-2/attempt-1";
  const core::Uuid expected_id = cmd::CommandBus::command_id_for(saga.subject, *r.idempotency_key);
  auto first = f.bus.execute_sync(r);
  REQUIRE_MESSAGE(first.has_value(), (first ? "" : first.error().detail));
  CHECK(first->command_id == expected_id);
  CHECK(first->stream == "task-" + expected_id.to_string());
  // Delivered again (a saga resuming after a crash): the first outcome.
  auto again = f.bus.execute_sync(r);
  REQUIRE(again.has_value());
  CHECK(again->replayed);
  CHECK(again->first_position == first->first_position);
  // The same key for another command is refused.
  r.command = cmd::task::Command{cmd::task::RequestResearch{"", "p1", "Find Y", {}, {}}};
  auto reused = f.bus.execute_sync(r);
  REQUIRE(!reused.has_value());
  CHECK(reused.error().code == "idempotency_key_reused");
}

TEST_CASE("typed: expected versions") {
  BusFixture f;
  f.ok("RegisterAgent", {{"agent_id", "a1"}, {"name", "A"}});
  cmd::TypedRequest r = typed(cmd::agent::Command{cmd::agent::Suspend{"a1", "budget"}});
  r.expected_version = core::ExpectedVersion::no_stream();
  auto e = f.bus.execute_sync(r);
  REQUIRE(!e.has_value());
  CHECK(e.error().kind == Failure::conflict);
  CHECK(e.error().code == "wrong_expected_version");
  CHECK(*e.error().actual_version == 1);
  // The message names the expectation as the API spells it.
  CHECK(e.error().detail.find("expected no_stream") != std::string::npos);
  r.expected_version = core::ExpectedVersion::exact(core::StreamVersion(1));
  CHECK(f.bus.execute_sync(r).has_value());
}

TEST_CASE("typed: every command reads back from its JSON body") {
  // to_json is the inverse of parse for what the parser accepts.
  const cmd::BusOptions limits;
  const std::map<std::string, json, std::less<>> samples = {
      {"RegisterAgent",
       {{"agent_id", "a1"},
        {"name", "n"},
        {"kind", "llm"},
        {"capabilities", {"c"}},
        {"domains", {"d"}},
        {"config", {{"t", 0.5}}}}},
      {"AdaptAgent", {{"agent_id", "a1"}, {"config", {{"m", "x"}}}}},
      {"SuspendAgent", {{"agent_id", "a1"}, {"reason", "r"}}},
      {"RetireAgent", {{"agent_id", "a1"}, {"reason", "r"}}},
      {"CreateProject", {{"project_id", "p1"}, {"name", "n"}, {"description", "d"}}},
      {"AdvanceProjectPhase",
       {{"project_id", "p1"},
        {"to_phase", "research"},
        {"compensation_of", "s1"},
        {"reason", "r"}}},
      {"ArchiveProject", {{"project_id", "p1"}, {"reason", "r"}}},
      {"RequestResearch",
       {{"project_id", "p1"}, {"title", "t"}, {"description", "d"}, {"domain", "ml"}}},
      {"AssignTask", {{"task_id", "t1"}, {"agent_id", "a1"}}},
      {"SubmitFindings",
       {{"task_id", "t1"}, {"summary", "s"}, {"details", "d"}, {"knowledge_ids", {"k1"}}}},
      {"RequestCheckpoint", {{"task_id", "t1"}, {"reason", "r"}}},
      {"ApproveCheckpoint", {{"task_id", "t1"}, {"comment", "c"}}},
      {"RejectCheckpoint", {{"task_id", "t1"}}},
      {"OpenDevelopment", {{"task_id", "t1"}, {"branch", "b"}}},
      {"ReportTestResult",
       {{"task_id", "t1"},
        {"passed", true},
        {"passed_count", 3},
        {"failed_count", 0},
        {"summary", "s"}}},
      {"CompleteTask", {{"task_id", "t1"}, {"summary", "s"}}},
      {"FailTask", {{"task_id", "t1"}, {"reason", "r"}}},
      {"RecordKnowledge",
       {{"knowledge_id", "k1"},
        {"title", "t"},
        {"body", "b"},
        {"domain", "d"},
        {"tags", {"x"}},
        {"source_agent", "a1"},
        {"source_task", "t1"},
        {"confidence", 0.25},
        {"embedding", {0.5, -0.125}},
        {"embedder", "e"}}},
      {"ReviseKnowledge", {{"knowledge_id", "k1"}, {"confidence", 0.5}, {"reason", "r"}}},
      {"TransferKnowledge", {{"knowledge_id", "k1"}, {"to_agent", "a2"}}},
      {"RetractKnowledge", {{"knowledge_id", "k1"}, {"reason", "r"}}},
      {"StoreMemory",
       {{"owner", "o"},
        {"memory_id", "m1"},
        {"content", "c"},
        {"importance", 0.5},
        {"tags", {"t"}},
        {"embedding", {0.25}},
        {"embedder", "e"}}},
      {"ReinforceMemory", {{"owner", "o"}, {"memory_id", "m1"}, {"amount", 0.2}}},
      {"ForgetMemory", {{"owner", "o"}, {"memory_id", "m1"}}},
      {"ForgetSubject", {{"owner", "o"}, {"reason", "r"}}},
      {"ObservePattern",
       {{"domain", "d"},
        {"signature", "s"},
        {"context", {{"e", 1}}},
        {"outcome", "failure"},
        {"reward", -2.5},
        {"agent_id", "a1"}}},
      {"RetirePattern", {{"pattern_id", cmd::pattern_id("d", "s")}, {"reason", "r"}}},
  };
  for (const auto& spec : cmd::command_specs()) {
    CAPTURE(spec.type);
    const auto sample = samples.find(spec.type);
    REQUIRE_MESSAGE(sample != samples.end(), "no sample body");
    const json& body = sample->second;
    const cmd::ParseContext pc{limits, "0190f3c2-0000-7000-8000-000000000001"};
    auto command = spec.parse(spec.type, body, pc);
    REQUIRE_MESSAGE(command.has_value(), (command ? "" : command.error().detail));
    CHECK(cmd::type_of(*command) == spec.type);
    const json written = cmd::to_json(*command);
    auto again = spec.parse(spec.type, written, pc);
    REQUIRE_MESSAGE(again.has_value(), (again ? "" : again.error().detail));
    CHECK(cmd::to_json(*again) == written);
    if (spec.type != "RequestResearch") CHECK(written == body);  // its task_id was the command id
  }
}

TEST_CASE("system principal: acts as a writer, never as a person's review") {
  BusFixture f;
  const auto saga = cmd::Principal::system("saga:onboarding");
  CHECK(saga.subject == "system:saga:onboarding");
  CHECK(saga.is_system);
  CHECK(!saga.agent_id.has_value());
  f.ok("RegisterAgent", {{"agent_id", "a1"}, {"name", "A"}}, saga);
  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "P"}}, saga);
  f.ok("RequestResearch", {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "T"}}, saga);
  f.ok("AssignTask", {{"task_id", "t1"}, {"agent_id", "a1"}}, saga);
  f.ok("SubmitFindings", {{"task_id", "t1"}, {"summary", "s"}}, agent_principal("a1"));
  f.ok("RequestCheckpoint", {{"task_id", "t1"}}, saga);
  CHECK(f.all_events().front().actor() == "system:saga:onboarding");

  // A checkpoint is a person's decision, whatever roles the system holds.
  auto with_roles = saga;
  with_roles.roles = {cmd::Role::reviewer, cmd::Role::admin};
  for (const char* type : {"ApproveCheckpoint", "RejectCheckpoint"}) {
    auto e = f.fails(type, {{"task_id", "t1"}}, saga);
    CHECK(e.kind == Failure::forbidden);
    CHECK(e.code == "role_not_allowed");
    e = f.fails(type, {{"task_id", "t1"}}, with_roles);
    CHECK(e.kind == Failure::forbidden);
    CHECK(e.code == "human_review_required");
  }
  f.ok("ApproveCheckpoint", {{"task_id", "t1"}}, reviewer());

  // No token makes a principal that reads as the system.
  const auto e = f.fails("CreateProject", {{"project_id", "p2"}, {"name", "P"}},
                         principal({cmd::Role::admin}, {}, "system:saga:onboarding"));
  CHECK(e.kind == Failure::forbidden);
  CHECK(e.code == "reserved_subject");
}

TEST_CASE("bus: JSON repeating a member is refused, naming it") {
  BusFixture f;
  cmd::CommandRequest req;
  req.type = "RegisterAgent";
  req.body = R"({"agent_id": "a6", "name": "n", "agent_id": "a7"})";
  req.principal = writer();
  auto r = f.bus.execute_sync(req);
  REQUIRE(!r.has_value());
  CHECK(r.error().kind == Failure::malformed);
  CHECK(r.error().code == "invalid_field");
  CHECK(r.error().field == "/agent_id");
  CHECK(r.error().detail.find("agent_id") != std::string::npos);
  CHECK(f.head() == 0);
}

}  // namespace
}  // namespace engram::test
