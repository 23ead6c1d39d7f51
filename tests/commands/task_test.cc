#include "commands/task.h"

#include <doctest/doctest.h>

#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::Failure;
using commands::task::State;
using commands::task::Status;
using nlohmann::json;

json task(const char* extra_key = nullptr, json extra = nullptr) {
  json j = {{"task_id", "t1"}};
  if (extra_key) j[extra_key] = std::move(extra);
  return j;
}

// A project p1 and active agents a1 and a2.
void world(Harness& h) {
  const auto who = h.who;
  h.who = admin();
  h.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}});
  for (const char* id : {"a1", "a2"}) {
    h.ok("RegisterAgent", {{"agent_id", id},
                           {"name", id},
                           {"capabilities", json::array()},
                           {"domains", json::array()}});
  }
  h.who = who;
}

void request(Harness& h) {
  h.ok("RequestResearch", {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "Find X"}});
}

// requested → ... → in development with a passing test.
void to_passing_tests(Harness& h) {
  request(h);
  h.ok("AssignTask", task("agent_id", "a1"));
  h.ok("SubmitFindings", task("summary", "found it"));
  h.ok("RequestCheckpoint", task());
  const auto who = h.who;
  h.who = reviewer();
  h.ok("ApproveCheckpoint", task());
  h.who = who;
  h.ok("OpenDevelopment", task("branch", "feature/x"));
  h.ok("ReportTestResult", task("passed", true));
}

TEST_CASE("task: the happy path through every state") {
  Harness h;
  world(h);
  const auto& s = [&]() -> const State& { return h.state<State>("task-t1"); };
  request(h);
  CHECK(s().status == Status::requested);
  CHECK(h.ok("AssignTask", task("agent_id", "a1")) == "TaskAssigned");
  CHECK(s().assignee == "a1");
  CHECK(h.ok("SubmitFindings", {{"task_id", "t1"},
                                {"summary", "s"},
                                {"details", "d"},
                                {"knowledge_ids", {"k1", "k2"}}}) == "FindingsSubmitted");
  CHECK(s().status == Status::findings_submitted);
  CHECK(h.ok("RequestCheckpoint", task("reason", "review please")) == "CheckpointRequested");
  CHECK(s().status == Status::checkpoint_pending);
  h.who = reviewer();
  CHECK(h.ok("ApproveCheckpoint", task("comment", "fine")) == "CheckpointApproved");
  CHECK(s().status == Status::checkpoint_approved);
  h.who = writer();
  CHECK(h.ok("OpenDevelopment", task()) == "DevelopmentOpened");
  CHECK(s().status == Status::in_development);
  CHECK(h.fails("CompleteTask", task()).code == "tests_not_passed");
  CHECK(h.ok("ReportTestResult",
             {{"task_id", "t1"}, {"passed", false}, {"passed_count", 3}, {"failed_count", 1}}) ==
        "TestResultReported");
  CHECK(h.fails("CompleteTask", task()).code == "tests_not_passed");
  h.ok("ReportTestResult", task("passed", true));
  CHECK(h.ok("CompleteTask", task("summary", "shipped")) == "TaskCompleted");
  CHECK(s().status == Status::completed);
  // Terminal.
  CHECK(h.fails("FailTask", task("reason", "late")).code == "task_closed");
  CHECK(h.fails("AssignTask", task("agent_id", "a2")).code == "task_closed");
}

TEST_CASE("task: research needs a live project") {
  Harness h;
  json body = {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "Find X"}};
  auto e = h.fails("RequestResearch", body);
  CHECK(e.kind == Failure::not_found);
  CHECK(e.code == "project_not_found");
  world(h);
  h.ok("ArchiveProject", {{"project_id", "p1"}, {"reason", "r"}});
  CHECK(h.fails("RequestResearch", body).code == "project_archived");
}

TEST_CASE("task: research without a task_id takes the command id") {
  Harness h;
  world(h);
  h.ok("RequestResearch", {{"project_id", "p1"}, {"title", "Find X"}});
  CHECK(h.last_stream.starts_with("task-cmd-"));
}

TEST_CASE("task: assignment") {
  Harness h;
  world(h);
  CHECK(h.fails("AssignTask", task("agent_id", "a1")).code == "task_not_found");
  request(h);
  CHECK(h.fails("AssignTask", task("agent_id", "ghost")).code == "agent_not_found");
  h.ok("SuspendAgent", {{"agent_id", "a2"}, {"reason", "r"}});
  CHECK(h.fails("AssignTask", task("agent_id", "a2")).code == "agent_not_active");
  h.ok("AssignTask", task("agent_id", "a1"));
  CHECK(h.fails("AssignTask", task("agent_id", "a1")).code == "already_assigned");
  h.ok("RegisterAgent", {{"agent_id", "a3"},
                         {"name", "a3"},
                         {"capabilities", json::array()},
                         {"domains", json::array()}});
  h.ok("AssignTask", task("agent_id", "a3"));  // reassign
  CHECK(h.state<State>("task-t1").assignee == "a3");
  h.ok("SubmitFindings", task("summary", "s"));
  CHECK(h.fails("AssignTask", task("agent_id", "a1")).code == "task_not_assignable");
}

TEST_CASE("task: checkpoints") {
  Harness h;
  world(h);
  request(h);
  CHECK(h.fails("RequestCheckpoint", task()).code == "nothing_to_review");
  h.ok("AssignTask", task("agent_id", "a1"));
  CHECK(h.fails("SubmitFindings", {{"task_id", "t2"}, {"summary", "s"}}).code == "task_not_found");
  h.ok("SubmitFindings", task("summary", "s"));
  h.who = reviewer();
  CHECK(h.fails("ApproveCheckpoint", task()).code == "no_checkpoint_pending");
  h.who = writer();
  CHECK(h.fails("OpenDevelopment", task()).code == "checkpoint_not_approved");
  h.ok("RequestCheckpoint", task());
  CHECK(h.fails("RequestCheckpoint", task()).code == "checkpoint_already_pending");

  SUBCASE("reject sends the task back to assigned") {
    h.who = reviewer();
    CHECK(h.ok("RejectCheckpoint", task("comment", "thin")) == "CheckpointRejected");
    CHECK(h.state<State>("task-t1").status == Status::assigned);
    h.who = writer();
    h.ok("SubmitFindings", task("summary", "better"));
  }
  SUBCASE("a checkpoint after a test result, and completing needs it reviewed") {
    h.who = reviewer();
    h.ok("ApproveCheckpoint", task());
    h.who = writer();
    h.ok("OpenDevelopment", task());
    CHECK(h.fails("RequestCheckpoint", task()).code == "nothing_to_review");
    h.ok("ReportTestResult", task("passed", true));
    h.ok("RequestCheckpoint", task("reason", "check the tests"));
    CHECK(h.fails("CompleteTask", task()).code == "checkpoint_pending");
    CHECK(h.fails("ReportTestResult", task("passed", true)).code == "development_not_open");
    h.who = reviewer();
    h.ok("ApproveCheckpoint", task());
    CHECK(h.state<State>("task-t1").status == Status::in_development);
    h.who = writer();
    h.ok("CompleteTask", task());
  }
}

TEST_CASE("task: development and failure") {
  Harness h;
  world(h);
  request(h);
  CHECK(h.fails("ReportTestResult", task("passed", true)).code == "development_not_open");
  CHECK(h.ok("FailTask", task("reason", "abandoned")) == "TaskFailed");
  CHECK(h.state<State>("task-t1").status == Status::failed);
  CHECK(h.fails("FailTask", task("reason", "again")).code == "task_closed");
}

TEST_CASE("task: agent-scoped principals") {
  Harness h;
  world(h);
  request(h);
  h.who = agent_principal("a2");
  auto e = h.fails("AssignTask", task("agent_id", "a1"));
  CHECK(e.kind == Failure::forbidden);
  CHECK(e.code == "not_self");
  h.who = agent_principal("a1");
  h.ok("AssignTask", task("agent_id", "a1"));  // claims it
  h.who = agent_principal("a2");
  CHECK(h.fails("SubmitFindings", task("summary", "s")).code == "not_assignee");
  h.who = agent_principal("a1");
  h.ok("SubmitFindings", task("summary", "s"));
  h.ok("RequestCheckpoint", task());
  // A reviewer that is also the assignee may not approve its own work.
  h.who = principal({commands::Role::reviewer}, "a1");
  CHECK(h.fails("ApproveCheckpoint", task()).code == "self_review");
  h.who = reviewer();
  h.ok("ApproveCheckpoint", task());
  h.who = writer();
  h.ok("OpenDevelopment", task());
  h.who = agent_principal("a2");
  CHECK(h.fails("ReportTestResult", task("passed", true)).code == "not_assignee");
}

TEST_CASE("task: validation") {
  Harness h;
  auto e = h.fails("ReportTestResult", {{"task_id", "t1"}, {"passed", "yes"}});
  CHECK(e.code == "invalid_field");
  CHECK(e.field == "/passed");
  e = h.fails("ReportTestResult", {{"task_id", "t1"}, {"passed", true}, {"passed_count", -1}});
  CHECK(e.field == "/passed_count");
  e = h.fails("SubmitFindings",
              {{"task_id", "t1"}, {"summary", "s"}, {"knowledge_ids", {"a", "a"}}});
  CHECK(e.field == "/knowledge_ids/1");
  e = h.fails("FailTask", task());
  CHECK(e.code == "missing_field");
  CHECK(e.field == "/reason");
}

TEST_CASE("task: events render with their stage and counts") {
  Harness h;
  world(h);
  to_passing_tests(h);
  BusFixture f;
  auto events = h.run("RequestCheckpoint", task());
  REQUIRE(events.has_value());
  CHECK(data_of(events->front(), *f.keys)["stage"] == "tests");
  events = h.run("ReportTestResult", {{"task_id", "t1"}, {"passed", true}, {"failed_count", 0}});
  CHECK(!events.has_value());  // checkpoint pending
  h.who = reviewer();
  events = h.run("ApproveCheckpoint", task("comment", "ok"));
  REQUIRE(events.has_value());
  const json d = data_of(events->front(), *f.keys);
  CHECK(d["reviewer"] == "reviewer");
  CHECK(d["stage"] == "tests");
  CHECK(d["comment"] == "ok");
  h.who = writer();
  events = h.run("ReportTestResult", {{"task_id", "t1"}, {"passed", false}, {"failed_count", 0}});
  REQUIRE(events.has_value());
  const json t = data_of(events->front(), *f.keys);
  CHECK(t["passed"] == false);
  CHECK(t["failed_count"] == 0);
  CHECK(!t.contains("passed_count"));
}

}  // namespace
}  // namespace engram::test
