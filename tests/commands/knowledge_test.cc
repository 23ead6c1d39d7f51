#include "commands/knowledge.h"

#include <doctest/doctest.h>

#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::Failure;
using commands::knowledge::State;
using nlohmann::json;

json record(const std::string& id = "k1") {
  return {{"knowledge_id", id},
          {"title", "Transformers"},
          {"body", "Attention is all you need."},
          {"domain", "ml"},
          {"tags", {"nlp", "deep learning"}},
          {"source_agent", "a1"},
          {"source_task", "t1"},
          {"confidence", 0.8},
          {"embedding", {0.1, -0.25, 3.0}},
          {"embedder", "mini-lm/2"}};
}

void agents(Harness& h) {
  const auto who = h.who;
  h.who = admin();
  for (const char* id : {"a1", "a2"}) {
    h.ok("RegisterAgent", {{"agent_id", id},
                           {"name", id},
                           {"capabilities", json::array()},
                           {"domains", json::array()}});
  }
  h.who = who;
}

TEST_CASE("knowledge: record, revise, transfer, retract") {
  Harness h;
  agents(h);
  auto events = h.run("RecordKnowledge", record());
  REQUIRE(events.has_value());
  BusFixture f;
  const json d = data_of(events->front(), *f.keys);
  CHECK(d["title"] == "Transformers");
  CHECK(d["tags"] == json({"nlp", "deep learning"}));
  CHECK(d["confidence"] == 0.8);
  CHECK(d["embedding"] == json({0.1, -0.25, 3.0}));  // floats shown as sent
  CHECK(d["embedder"] == "mini-lm/2");
  const State& s = h.state<State>("knowledge-k1");
  CHECK(s.recorded);
  CHECK(s.owner == "a1");

  events = h.run("ReviseKnowledge", {{"knowledge_id", "k1"}, {"confidence", 0.9}, {"reason", "r"}});
  REQUIRE(events.has_value());
  const json r = data_of(events->front(), *f.keys);
  CHECK(r["confidence"] == 0.9);
  CHECK(!r.contains("title"));  // only what changed

  CHECK(h.ok("TransferKnowledge", {{"knowledge_id", "k1"}, {"to_agent", "a2"}}) ==
        "KnowledgeTransferred");
  CHECK(s.owner == "a2");
  CHECK(h.fails("TransferKnowledge", {{"knowledge_id", "k1"}, {"to_agent", "a2"}}).code ==
        "already_owner");
  CHECK(h.ok("RetractKnowledge", {{"knowledge_id", "k1"}, {"reason", "wrong"}}) ==
        "KnowledgeRetracted");
  CHECK(s.retracted);
  for (const auto& [type, body] : std::vector<std::pair<std::string, json>>{
           {"RetractKnowledge", {{"knowledge_id", "k1"}, {"reason", "r"}}},
           {"ReviseKnowledge", {{"knowledge_id", "k1"}, {"title", "t"}}},
           {"TransferKnowledge", {{"knowledge_id", "k1"}, {"to_agent", "a1"}}}}) {
    const auto e = h.fails(type, body);
    CHECK(e.kind == Failure::rule);
    CHECK(e.code == "knowledge_retracted");
  }
}

TEST_CASE("knowledge: rules") {
  Harness h;
  agents(h);
  CHECK(h.fails("ReviseKnowledge", {{"knowledge_id", "k1"}, {"title", "t"}}).code ==
        "knowledge_not_found");
  h.ok("RecordKnowledge", record());
  CHECK(h.fails("RecordKnowledge", record()).code == "knowledge_exists");
  CHECK(h.fails("TransferKnowledge", {{"knowledge_id", "k1"}, {"to_agent", "ghost"}}).code ==
        "agent_not_found");
  h.ok("RetireAgent", {{"agent_id", "a2"}, {"reason", "r"}});
  CHECK(h.fails("TransferKnowledge", {{"knowledge_id", "k1"}, {"to_agent", "a2"}}).code ==
        "agent_retired");
}

TEST_CASE("knowledge: validation") {
  Harness h;
  json bad = record();
  bad["confidence"] = 1.5;
  CHECK(h.fails("RecordKnowledge", bad).field == "/confidence");
  bad = record();
  bad.erase("confidence");
  CHECK(h.fails("RecordKnowledge", bad).code == "missing_field");
  bad = record();
  bad["embedding"] = {0.1, "x"};
  CHECK(h.fails("RecordKnowledge", bad).field == "/embedding/1");
  bad = record();
  bad["embedding"] = {1e300};
  CHECK(h.fails("RecordKnowledge", bad).field == "/embedding/0");
  bad = record();
  bad.erase("embedding");
  CHECK(h.fails("RecordKnowledge", bad).field == "/embedder");
  h.limits.max_embedding_dims = 2;
  CHECK(h.fails("RecordKnowledge", record()).field == "/embedding");
  h.limits.max_embedding_dims = 4096;
  h.limits.max_tags = 1;
  CHECK(h.fails("RecordKnowledge", record()).field == "/tags");
  h.limits.max_tags = 64;
  bad = record();
  bad["tags"] = {"ok", "bad\ttab"};
  CHECK(h.fails("RecordKnowledge", bad).field == "/tags/1");
  CHECK(h.fails("ReviseKnowledge", {{"knowledge_id", "k1"}, {"reason", "r"}}).code ==
        "missing_field");
}

TEST_CASE("knowledge: without an id it takes the command id") {
  Harness h;
  json body = record();
  body.erase("knowledge_id");
  h.ok("RecordKnowledge", body);
  CHECK(h.last_stream.starts_with("knowledge-cmd-"));
}

TEST_CASE("knowledge: agent-scoped principals own what they record") {
  Harness h;
  agents(h);
  h.who = agent_principal("a2");
  auto e = h.fails("RecordKnowledge", record());  // names a1 as the source
  CHECK(e.kind == Failure::forbidden);
  CHECK(e.code == "not_self");
  json mine = record("k2");
  mine.erase("source_agent");
  h.ok("RecordKnowledge", mine);
  CHECK(h.state<State>("knowledge-k2").owner == "a2");  // defaults to itself
  h.who = writer();
  h.ok("RecordKnowledge", record("k1"));
  h.who = agent_principal("a2");
  e = h.fails("ReviseKnowledge", {{"knowledge_id", "k1"}, {"title", "mine now"}});
  CHECK(e.code == "not_owner");
  CHECK(h.fails("RetractKnowledge", {{"knowledge_id", "k1"}, {"reason", "r"}}).code == "not_owner");
  h.ok("TransferKnowledge", {{"knowledge_id", "k2"}, {"to_agent", "a1"}});
  CHECK(h.fails("ReviseKnowledge", {{"knowledge_id", "k2"}, {"title", "t"}}).code == "not_owner");
}

TEST_CASE("knowledge: through the bus") {
  BusFixture f;
  f.ok("RegisterAgent", {{"agent_id", "a1"},
                         {"name", "a1"},
                         {"capabilities", json::array()},
                         {"domains", json::array()}});
  auto o = f.ok("RecordKnowledge", record());
  CHECK(o.stream == "knowledge-k1");
  CHECK(o.events[0].data["embedding"] == json({0.1, -0.25, 3.0}));
  f.ok("RetractKnowledge", {{"knowledge_id", "k1"}, {"reason", "r"}});
  const uint64_t head = f.head();
  CHECK(f.fails("ReviseKnowledge", {{"knowledge_id", "k1"}, {"body", "b"}}).code ==
        "knowledge_retracted");
  CHECK(f.head() == head);
}

}  // namespace
}  // namespace engram::test
