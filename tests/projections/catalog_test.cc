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

  auto w = projections::Worker::start(*f.log, *f.models, std::make_shared<projections::CatalogProjection>());
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
  auto w = projections::Worker::start(*f.log, *f.models, std::make_shared<projections::CatalogProjection>());
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

namespace {

// Every key and value of a store, in key order: equal contents give equal
// `replay verify` digests.
std::vector<std::pair<std::string, std::string>> contents(const core::ModelStore& store) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string from;
  for (;;) {
    auto page = store.scan("", from, core::ModelStore::kMaxScanEntries);
    REQUIRE(page);
    out.insert(out.end(), page->begin(), page->end());
    if (page->size() < core::ModelStore::kMaxScanEntries) return out;
    from = page->back().first + std::string(1, '\0');
  }
}

// A log that touches every catalog event type, with task lifecycles
// interleaved so one batch holds several events of one record, ending with
// an agent adaptation, a task request and its assignment (the last three
// events).
void fill(test::BusFixture& f) {
  for (int i = 0; i < 5; ++i) {
    json domains = json::array({"ml"});
    if (i % 2 == 0) domains.push_back("bio");
    f.ok("RegisterAgent",
         {{"agent_id", "a" + std::to_string(i)}, {"name", "agent"}, {"domains", domains}});
  }
  for (int i = 0; i < 3; ++i) {
    f.ok("CreateProject", {{"project_id", "p" + std::to_string(i)}, {"name", "project"}});
  }
  f.ok("AdvanceProjectPhase", {{"project_id", "p0"}, {"to_phase", "development"}});
  f.ok("SuspendAgent", {{"agent_id", "a1"}, {"reason", "pause"}});
  constexpr int kTasks = 12;
  const std::vector<std::string> assignees = {"a0", "a3", "a4"};
  auto task = [](int i) { return "t" + std::to_string(i); };
  // Each round moves every task that is not done one step on.
  std::vector<int> stage(kTasks, 0);
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < kTasks; ++i) {
      const json t = {{"task_id", task(i)}};
      auto with = [&](const char* k, json v) {
        json b = t;
        b[k] = std::move(v);
        return b;
      };
      if (i > round) continue;  // tasks start one round apart
      switch (stage[i]++) {
        case 0: {
          json b = {{"task_id", task(i)}, {"project_id", "p" + std::to_string(i % 2)}};
          b["title"] = "task";
          if (i % 2 == 0) b["domain"] = "ml:x";
          f.ok("RequestResearch", b);
          break;
        }
        case 1:
          f.ok("AssignTask", with("agent_id", assignees[static_cast<size_t>(i) % 3]));
          break;
        case 2:
          if (i % 5 == 4) {
            f.ok("FailTask", with("reason", "dead end"));
            stage[i] = 100;
          } else {
            f.ok("SubmitFindings", with("summary", "s"));
          }
          break;
        case 3:
          f.ok("RequestCheckpoint", t);
          break;
        case 4:
          if (i % 3 == 0) {
            f.ok("RejectCheckpoint", with("comment", "thin"), test::reviewer());
            stage[i] = 2;                   // findings again
            if (round > 6) stage[i] = 100;  // left assigned, rejected
          } else {
            f.ok("ApproveCheckpoint", t, test::reviewer());
          }
          break;
        case 5:
          f.ok("OpenDevelopment", t);
          break;
        case 6:
          f.ok("ReportTestResult", with("passed", i % 4 != 1));
          break;
        case 7:
          if (i % 4 == 1) {
            f.ok("FailTask", with("reason", "tests failed"));
          } else {
            f.ok("CompleteTask", t);
          }
          break;
        default:
          break;
      }
    }
    if (round == 5) f.ok("AdaptAgent", {{"agent_id", "a3"}, {"domains", {"chem"}}});
  }
  f.ok("RetireAgent", {{"agent_id", "a2"}, {"reason", "done"}});
  f.ok("ArchiveProject", {{"project_id", "p2"}, {"reason", "cancelled"}});
  f.ok("AdaptAgent", {{"agent_id", "a0"}, {"domains", {"ml", "chem"}}});
  f.ok("RequestResearch", {{"task_id", "late"}, {"project_id", "p0"}, {"title", "late"}});
  f.ok("AssignTask", {{"task_id", "late"}, {"agent_id", "a0"}});
}

// One apply() of `events` into `store`, committed.
core::result<void> apply_all(projections::CatalogProjection& p, core::ModelStore& store,
                             std::span<const core::RecordedEvent> events) {
  auto batch = store.batch();
  if (auto r = p.apply(events, batch); !r) return r;
  if (auto r = store.commit(batch, events.back().position()); !r) return r;
  return p.committed(store, events.back().position());
}

// A worker's build of the whole log into `store`.
std::vector<std::pair<std::string, std::string>> build(
    test::BusFixture& f, const std::string& store, projections::WorkerOptions o,
    std::shared_ptr<projections::CatalogProjection> p = nullptr) {
  if (!p) p = std::make_shared<projections::CatalogProjection>();
  o.store = store;
  auto w = projections::Worker::start(*f.log, *f.models, p, o);
  REQUIRE(w);
  REQUIRE((*w)->wait_for(f.log->head().position, std::chrono::seconds(10)));
  REQUIRE_FALSE((*w)->stats().failed);
  return contents((*w)->store());
}

}  // namespace

TEST_CASE("catalog: batches of one event build the same store as one batch of everything") {
  test::BusFixture f;
  fill(f);
  const auto events = f.all_events();
  REQUIRE(events.size() > 80);

  projections::CatalogProjection one;
  auto store = f.models->store("catalog-one-batch");
  REQUIRE(store);
  REQUIRE(apply_all(one, **store, events));
  const auto expected = contents(**store);
  REQUIRE(expected.size() > 40);

  // The model answers as before the batching: a spot check.
  auto t0 = projections::get_catalog(**store, CatalogKind::task, "t0").value();
  REQUIRE(t0.has_value());
  CHECK((*t0)["checkpoint"] == "rejected");
  CHECK((*t0)["status"] == "assigned");
  auto t2 = projections::get_catalog(**store, CatalogKind::task, "t2").value();
  REQUIRE(t2.has_value());
  CHECK((*t2)["checkpoint"] == "approved");
  CHECK((*t2)["status"] == "completed");
  CHECK(ids(list(**store, CatalogKind::task, {{"domain", "ml:x"}}), "task_id").size() == 6);
  CHECK(ids(list(**store, CatalogKind::agent, {{"domain", "chem"}}), "agent_id") ==
        std::set<std::string>{"a0", "a3"});

  projections::WorkerOptions ones;
  ones.max_batch_events = 1;
  ones.catch_up_batch_events = 0;
  auto p = std::make_shared<projections::CatalogProjection>();
  CHECK(build(f, "catalog-ones", ones, p) == expected);
  // Records changed by many batches were found decoded, not re-parsed.
  CHECK(p->cache_stats().hits > events.size() / 2);

  // A cache of two records evicts all the time, and no cache at all.
  projections::WorkerOptions threes;
  threes.max_batch_events = 3;
  projections::CatalogOptions tiny;
  tiny.cache_max_records = 2;
  auto small = std::make_shared<projections::CatalogProjection>(tiny);
  CHECK(build(f, "catalog-tiny-cache", threes, small) == expected);
  CHECK(small->cache_stats().records <= 2);
  projections::CatalogOptions none;
  none.cache_max_records = 0;
  auto uncached = std::make_shared<projections::CatalogProjection>(none);
  CHECK(build(f, "catalog-no-cache", threes, uncached) == expected);
  CHECK(uncached->cache_stats().hits == 0);
}

TEST_CASE("catalog: a restart in the middle gives the same store as an uninterrupted build") {
  test::BusFixture f;
  fill(f);
  const core::Position head = f.log->head().position;
  const core::Position middle(head.value() / 2);
  projections::WorkerOptions o;
  o.max_batch_events = 4;
  auto shared = std::make_shared<projections::CatalogProjection>();
  const auto whole = build(f, "catalog-whole", o, shared);

  // Up to the middle, stopped, then a new worker with a cold cache.
  std::vector<std::pair<std::string, std::string>> half;
  {
    projections::WorkerOptions until = o;
    until.store = "catalog-restarted";
    until.until = middle;
    auto w = projections::Worker::start(*f.log, *f.models, std::make_shared<projections::CatalogProjection>(),
                                        until);
    REQUIRE(w);
    REQUIRE((*w)->wait_for(middle, std::chrono::seconds(10)));
    (*w)->stop();
    CHECK((*w)->store().checkpoint() == middle);
    half = contents((*w)->store());
  }
  CHECK(build(f, "catalog-restarted", o) == whole);

  // The instance that built the whole store, its cache warm with the final
  // records, applied to another store (as replay verify reuses it) must not
  // use them there.
  const auto events = f.all_events();
  const auto upto = static_cast<size_t>(middle.value());
  auto other = f.models->store("catalog-other");
  REQUIRE(other);
  REQUIRE(apply_all(*shared, **other, std::span(events).first(upto)));
  CHECK(contents(**other) == half);
}

TEST_CASE("catalog: a failed apply empties the cache and commits nothing") {
  test::BusFixture f;
  fill(f);
  const auto events = f.all_events();
  const size_t n = events.size();
  // The last three events: AdaptAgent a0, RequestResearch late, AssignTask late.
  REQUIRE(events[n - 3].type() == "AgentAdapted");
  REQUIRE(events[n - 1].type() == "TaskAssigned");

  projections::CatalogProjection p;
  auto store = f.models->store("catalog-failing");
  REQUIRE(store);
  REQUIRE(apply_all(p, **store, std::span(events).first(n - 3)));
  CHECK(p.cache_stats().records > 0);
  const auto before = contents(**store);

  // a0 comes out of the cache and is changed, then the unknown task fails
  // the batch.
  const std::vector<core::RecordedEvent> bad = {events[n - 3], events[n - 1]};
  auto batch = (*store)->batch();
  auto r = p.apply(bad, batch);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == core::errc::corruption);
  CHECK(p.cache_stats().records == 0);
  CHECK(contents(**store) == before);

  // The right events, in a new batch, from the store alone.
  REQUIRE(apply_all(p, **store, std::span(events).last(3)));
  projections::CatalogProjection fresh;
  auto whole = f.models->store("catalog-failing-whole");
  REQUIRE(whole);
  REQUIRE(apply_all(fresh, **whole, events));
  CHECK(contents(**store) == contents(**whole));
}
