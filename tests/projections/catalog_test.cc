#include "projections/catalog.h"

#include <doctest/doctest.h>

#include <set>

#include "projections/worker.h"
#include "tests/commands/harness.h"

using namespace engram;
using nlohmann::json;
using projections::CatalogKind;
using projections::CatalogQuery;

namespace {

std::set<std::string> ids(const projections::CatalogPage& page, const char* field) {
  std::set<std::string> out;
  for (const auto& r : page.items) out.insert(r[field].get<std::string>());
  return out;
}

projections::CatalogPage list(const core::ModelStore& s, CatalogKind k,
                              std::vector<std::pair<std::string, std::string>> filters,
                              size_t limit = 100, std::string cursor = {}) {
  CatalogQuery q;
  q.kind = k;
  q.filters = std::move(filters);
  q.limit = limit;
  q.cursor = std::move(cursor);
  auto page = projections::list_catalog(s, q);
  REQUIRE(page);
  return std::move(*page);
}

}  // namespace

TEST_CASE("catalog: agents, projects and tasks with states, counts, filters and pages") {
  test::BusFixture f;
  f.ok("RegisterAgent", {{"agent_id", "a1"}, {"name", "One"}, {"domains", {"ml"}}});
  f.ok("RegisterAgent", {{"agent_id", "a2"}, {"name", "Two"}, {"domains", {"bio", "ml"}}});
  f.ok("SuspendAgent", {{"agent_id", "a2"}, {"reason", "pause"}});
  f.ok("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"ml", "chem"}}});
  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "Proteins"}});
  f.ok("AdvanceProjectPhase", {{"project_id", "p1"}, {"to_phase", "development"}});
  f.ok("RequestResearch",
       {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "Fold"}, {"domain", "ml:folding"}});
  f.ok("RequestResearch", {{"task_id", "t2"}, {"project_id", "p1"}, {"title", "Other"}});
  f.ok("AssignTask", {{"task_id", "t1"}, {"agent_id", "a1"}});
  f.ok("SubmitFindings", {{"task_id", "t1"}, {"summary", "found"}});
  f.ok("RequestCheckpoint", {{"task_id", "t1"}});
  f.ok("ApproveCheckpoint", {{"task_id", "t1"}}, test::reviewer());
  f.ok("OpenDevelopment", {{"task_id", "t1"}});
  f.ok("ReportTestResult", {{"task_id", "t1"}, {"passed", true}});
  f.ok("CompleteTask", {{"task_id", "t1"}});
  f.ok("FailTask", {{"task_id", "t2"}, {"reason", "dead end"}});

  auto w = projections::Worker::start(*f.log, std::make_shared<projections::CatalogProjection>());
  REQUIRE(w);
  REQUIRE((*w)->wait_for(f.log->head().position, std::chrono::seconds(5)));
  REQUIRE_FALSE((*w)->stats().failed);
  const core::ModelStore& s = (*w)->store();

  auto a1 = projections::get_catalog(s, CatalogKind::agent, "a1");
  REQUIRE(a1);
  REQUIRE(a1->has_value());
  CHECK((**a1)["status"] == "active");
  CHECK((**a1)["domains"] == json({"ml", "chem"}));
  CHECK((**a1)["events"] == 2);
  CHECK((**a1)["name"] == "One");
  CHECK(!projections::get_catalog(s, CatalogKind::agent, "zz").value().has_value());

  CHECK(ids(list(s, CatalogKind::agent, {}), "agent_id") == std::set<std::string>{"a1", "a2"});
  CHECK(ids(list(s, CatalogKind::agent, {{"status", "active"}}), "agent_id") ==
        std::set<std::string>{"a1"});
  CHECK(ids(list(s, CatalogKind::agent, {{"status", "suspended"}}), "agent_id") ==
        std::set<std::string>{"a2"});
  CHECK(ids(list(s, CatalogKind::agent, {{"domain", "ml"}}), "agent_id") ==
        std::set<std::string>{"a1", "a2"});
  CHECK(ids(list(s, CatalogKind::agent, {{"domain", "bio"}}), "agent_id") ==
        std::set<std::string>{"a2"});
  // a1 left domain "bio"? It never had it; it gained "chem" by AdaptAgent.
  CHECK(ids(list(s, CatalogKind::agent, {{"domain", "chem"}}), "agent_id") ==
        std::set<std::string>{"a1"});
  CHECK(ids(list(s, CatalogKind::agent, {{"domain", "ml"}, {"status", "active"}}), "agent_id") ==
        std::set<std::string>{"a1"});

  auto p1 = *projections::get_catalog(s, CatalogKind::project, "p1").value();
  CHECK(p1["phase"] == "development");
  CHECK(p1["tasks"] == 2);
  CHECK(p1["archived"] == false);
  CHECK(ids(list(s, CatalogKind::project, {{"phase", "development"}}), "project_id") ==
        std::set<std::string>{"p1"});
  CHECK(list(s, CatalogKind::project, {{"phase", "research"}}).items.empty());

  auto t1 = *projections::get_catalog(s, CatalogKind::task, "t1").value();
  CHECK(t1["status"] == "completed");
  CHECK(t1["assignee"] == "a1");
  CHECK(t1["tests"] == "passed");
  CHECK(t1["checkpoint"] == "approved");
  CHECK(ids(list(s, CatalogKind::task, {{"project", "p1"}}), "task_id") ==
        std::set<std::string>{"t1", "t2"});
  CHECK(ids(list(s, CatalogKind::task, {{"status", "failed"}, {"project", "p1"}}), "task_id") ==
        std::set<std::string>{"t2"});
  CHECK(ids(list(s, CatalogKind::task, {{"assignee", "a1"}}), "task_id") ==
        std::set<std::string>{"t1"});
  CHECK(ids(list(s, CatalogKind::task, {{"domain", "ml:folding"}}), "task_id") ==
        std::set<std::string>{"t1"});
  CHECK(list(s, CatalogKind::task, {{"domain", "ml"}})
            .items.empty());  // "ml" is not a prefix match of "ml:folding"

  CatalogQuery bad;
  bad.kind = CatalogKind::agent;
  bad.filters = {{"colour", "red"}};
  CHECK(projections::list_catalog(s, bad).error().code == core::errc::invalid_argument);
}

TEST_CASE("catalog: cursor pagination visits every record once") {
  test::BusFixture f;
  for (int i = 0; i < 25; ++i) {
    f.ok("RegisterAgent", {{"agent_id", "ag" + std::to_string(i)}, {"name", "n"}});
  }
  auto w = projections::Worker::start(*f.log, std::make_shared<projections::CatalogProjection>());
  REQUIRE(w);
  REQUIRE((*w)->wait_for(f.log->head().position, std::chrono::seconds(5)));
  for (const auto& filters :
       std::vector<std::vector<std::pair<std::string, std::string>>>{{}, {{"status", "active"}}}) {
    std::set<std::string> seen;
    std::string cursor;
    int pages = 0;
    do {
      auto page = list((*w)->store(), CatalogKind::agent, filters, 10, cursor);
      CHECK(page.items.size() <= 10);
      for (const auto& r : page.items) CHECK(seen.insert(r["agent_id"].get<std::string>()).second);
      cursor = page.next_cursor;
      ++pages;
    } while (!cursor.empty() && pages < 10);
    CHECK(seen.size() == 25);
    CHECK(pages == 3);
  }
}
