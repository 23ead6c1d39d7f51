#include "commands/memory.h"

#include <doctest/doctest.h>

#include <cstring>

#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::Failure;
using nlohmann::json;

const std::string kSecret = "my bank PIN is 4711 and I love Zanzibar";

json store(const std::string& id, double importance = 0.5) {
  return {{"owner", "alice"},         {"memory_id", id},      {"content", kSecret + " #" + id},
          {"importance", importance}, {"tags", {"personal"}}, {"embedding", {0.5, 0.25, -1.0}},
          {"embedder", "mini-lm/2"}};
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_CASE("memory: store, reinforce, forget") {
  Harness h;
  CHECK(h.ok("StoreMemory", store("m1", 0.7)) == "MemoryStored");
  REQUIRE(h.memory("alice", "m1").has_value());
  CHECK(h.memory("alice", "m1")->importance == doctest::Approx(0.7));
  CHECK(h.fails("StoreMemory", store("m1")).code == "memory_exists");

  CHECK(h.ok("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m1"}}) == "MemoryReinforced");
  CHECK(h.memory("alice", "m1")->importance == doctest::Approx(0.8));  // default amount 0.1
  h.ok("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m1"}, {"amount", 0.5}});
  CHECK(h.memory("alice", "m1")->importance == 1.0);  // capped
  CHECK(
      h.fails("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m1"}, {"amount", 2}}).field ==
      "/amount");

  CHECK(h.fails("ForgetMemory", {{"owner", "alice"}, {"memory_id", "m9"}}).code ==
        "memory_not_found");
  CHECK(h.ok("ForgetMemory", {{"owner", "alice"}, {"memory_id", "m1"}}) == "MemoryForgotten");
  auto e = h.fails("ForgetMemory", {{"owner", "alice"}, {"memory_id", "m1"}});
  CHECK(e.kind == Failure::rule);
  CHECK(e.code == "memory_forgotten");
  CHECK(h.fails("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m1"}}).code ==
        "memory_forgotten");
  e = h.fails("ReinforceMemory", {{"owner", "bob"}, {"memory_id", "m1"}});
  CHECK(e.kind == Failure::not_found);
}

TEST_CASE("memory: forgetting the subject forgets every memory") {
  Harness h;
  h.ok("StoreMemory", store("m1"));
  h.ok("StoreMemory", store("m2"));
  CHECK(h.ok("ForgetSubject", {{"owner", "alice"}, {"reason", "GDPR request"}}) ==
        "SubjectForgotten");
  CHECK(h.memory("alice", "m1")->forgotten);
  CHECK(h.memory("alice", "m2")->forgotten);
  CHECK(h.fails("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m2"}}).code ==
        "memory_forgotten");
  h.ok("StoreMemory", store("m3"));  // new memories are welcome
  CHECK(!h.memory("alice", "m3")->forgotten);
}

TEST_CASE("memory: validation and agent scope") {
  Harness h;
  json bad = store("m1");
  bad["importance"] = -0.1;
  CHECK(h.fails("StoreMemory", bad).field == "/importance");
  bad = store("m1");
  bad.erase("content");
  CHECK(h.fails("StoreMemory", bad).field == "/content");
  h.limits.max_text_bytes = 8;
  CHECK(h.fails("StoreMemory", store("m1")).field == "/content");
  h.limits = {};

  h.who = agent_principal("bob");
  auto e = h.fails("StoreMemory", store("m1"));
  CHECK(e.kind == Failure::forbidden);
  CHECK(e.code == "not_own_memory");
  CHECK(h.fails("ForgetSubject", {{"owner", "alice"}}).code == "not_own_memory");
  h.who = agent_principal("alice");
  h.ok("StoreMemory", store("m1"));
  h.ok("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m1"}});
}

TEST_CASE("memory: content is sealed at rest and shredded with the key") {
  BusFixture f;
  auto o = f.ok("StoreMemory", store("m1"));
  CHECK(o.stream == "memory-alice");
  CHECK(o.events[0].data["content"] == kSecret + " #m1");  // the writer sees its content
  f.ok("StoreMemory", store("m2"));
  f.ok("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m1"}, {"amount", 0.2}});

  // Neither the content nor the embedding's bytes are anywhere in the log.
  const float embedding[] = {0.5f, 0.25f, -1.0f};
  const std::string embedding_bytes(reinterpret_cast<const char*>(embedding), sizeof(embedding));
  for (const auto& e : f.all_events()) {
    CHECK(!contains(e.bytes(), "Zanzibar"));
    CHECK(!contains(e.bytes(), embedding_bytes));
  }

  auto events = f.all_events();
  json j = f.bus.render_event(events[0]);
  CHECK(j["data"]["content"] == kSecret + " #m1");
  CHECK(j["data"]["embedding"] == json({0.5, 0.25, -1.0}));
  CHECK(j["data"]["content_forgotten"] == false);
  CHECK(j["data"]["key_generation"] == 1);
  CHECK(j["data"]["tags"] == json({"personal"}));

  o = f.ok("ForgetSubject", {{"owner", "alice"}, {"reason", "asked"}});
  CHECK(o.events[0].data["key_generation"] == 1);
  auto key = f.keys->get("alice");
  REQUIRE(key.has_value());
  CHECK(!key->has_value());

  events = f.all_events();
  for (size_t i : {0, 1}) {
    j = f.bus.render_event(events[i]);
    CHECK(j["data"]["content"].is_null());
    CHECK(j["data"]["embedding"].is_null());
    CHECK(j["data"]["content_forgotten"] == true);
  }
  const auto verify = f.log->verify(core::Position(1), core::Position(UINT64_MAX));
  REQUIRE(verify.has_value());
  CHECK(verify->ok());
  CHECK(verify->events_checked == events.size());

  // Forgotten memories stay forgotten; new ones get a fresh key.
  CHECK(f.fails("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m1"}}).code ==
        "memory_forgotten");
  o = f.ok("StoreMemory", store("m3"));
  CHECK(o.events[0].data["key_generation"] == 2);
  CHECK(o.events[0].data["content"] == kSecret + " #m3");
  CHECK(f.bus.render_event(f.all_events().back())["data"]["content"] == kSecret + " #m3");
  CHECK(f.bus.render_event(events[0])["data"]["content_forgotten"] == true);

  // Forgetting again destroys nothing more.
  o = f.ok("ForgetSubject", {{"owner", "alice"}});
  CHECK(o.events[0].data["key_generation"] == 2);
  o = f.ok("ForgetSubject", {{"owner", "alice"}});
  CHECK(o.events[0].data["key_generation"] == 0);
}

TEST_CASE("memory: a keyed StoreMemory replays with its content") {
  BusFixture f;
  const auto first = f.ok("StoreMemory", store("m1"), writer(), "mem-1");
  const auto again = f.ok("StoreMemory", store("m1"), writer(), "mem-1");
  CHECK(again.replayed);
  CHECK(again.events[0].data == first.events[0].data);
  CHECK(f.head() == 1);
  // Without a memory_id the key also fixes the id.
  json body = store("x");
  body.erase("memory_id");
  const auto a = f.ok("StoreMemory", body, writer(), "mem-2");
  const auto b = f.ok("StoreMemory", body, writer(), "mem-2");
  CHECK(b.replayed);
  CHECK(a.events[0].data["memory_id"] == b.events[0].data["memory_id"]);
  CHECK(a.events[0].data["memory_id"] == a.command_id.to_string());
}

TEST_CASE("memory: agents keep to their own memories through the bus") {
  BusFixture f;
  const uint64_t head = f.head();
  const auto e = f.fails("StoreMemory", store("m1"), agent_principal("bob"));
  CHECK(e.code == "not_own_memory");
  CHECK(f.head() == head);
  auto key = f.keys->get("alice");
  REQUIRE(key.has_value());
  CHECK(!key->has_value());  // refused before any key was made
  f.ok("StoreMemory", store("m1"), agent_principal("alice"));
}

TEST_CASE("memory: the owner's state stays the same size however many memories it holds") {
  BusFixture f;
  f.ok("StoreMemory", store("m0"));
  const uint64_t bytes = f.bus.stats().cache_bytes;
  for (int i = 1; i <= 40; ++i) f.ok("StoreMemory", store("m" + std::to_string(i)));
  CHECK(f.bus.stats().cache_bytes == bytes);
  // Each decision about one memory reads that memory's latest event.
  f.ok("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m7"}, {"amount", 0.25}});
  CHECK(f.fails("StoreMemory", store("m7")).code == "memory_exists");
  const auto o = f.ok("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m7"}});
  CHECK(o.events[0].data["importance"] == doctest::Approx(0.85));
}

TEST_CASE("memory: a bus with a cold cache reads the owner through the entity index") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  auto keys = open_keys_or_die(dir.path());
  {
    commands::CommandBus bus(*log, *keys);
    auto run = [&](const std::string& type, const json& body) {
      auto r = run_on(bus, type, body);
      REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().detail));
    };
    run("StoreMemory", store("old"));
    run("StoreMemory", store("kept"));
    run("ForgetSubject", {{"owner", "alice"}});
    run("StoreMemory", store("new"));
  }
  commands::CommandBus bus(*log, *keys);
  auto run = [&](const std::string& type, const json& body) { return run_on(bus, type, body); };
  // Forgotten with the subject, though its own events say nothing of it.
  auto r = run("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "old"}});
  REQUIRE(!r.has_value());
  CHECK(r.error().code == "memory_forgotten");
  r = run("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "new"}});
  REQUIRE(r.has_value());
  CHECK(r->version == 5);
  r = run("StoreMemory", store("kept"));
  REQUIRE(!r.has_value());
  CHECK(r.error().code == "memory_exists");
  CHECK(bus.stats().cache_misses >= 1);
}

TEST_CASE("memory: a log written before the entity index is migrated by the bus") {
  // Memory events appended without their entity, as a log from before the
  // index holds them.
  Harness h;
  std::vector<core::EventData> old;
  for (const json& body : {store("m1", 0.4), store("m2")}) {
    auto events = h.run("StoreMemory", body);
    REQUIRE(events.has_value());
    core::EventData e = event(events->front().type, std::move(events->front().payload));
    e.payload_format = core::PayloadFormat::flatbuffer;
    old.push_back(std::move(e));
  }
  auto forgot = h.run("ForgetMemory", {{"owner", "alice"}, {"memory_id", "m2"}});
  REQUIRE(forgot.has_value());
  core::EventData e = event(forgot->front().type, std::move(forgot->front().payload));
  e.payload_format = core::PayloadFormat::flatbuffer;
  old.push_back(std::move(e));

  TempDir dir;
  auto log = open_or_die(dir.path());
  auto keys = open_keys_or_die(dir.path());
  REQUIRE(log->append("memory-alice", core::ExpectedVersion::no_stream(), old).has_value());
  auto name = log->entity_index_name();
  REQUIRE(name.has_value());
  CHECK(*name != commands::kEntityIndexName);

  commands::CommandBus bus(*log, *keys);
  REQUIRE(bus.status().has_value());
  name = log->entity_index_name();
  REQUIRE(name.has_value());
  CHECK(*name == commands::kEntityIndexName);
  auto run = [&](const std::string& type, const json& body) { return run_on(bus, type, body); };
  auto r = run("StoreMemory", store("m1"));
  REQUIRE(!r.has_value());
  CHECK(r.error().code == "memory_exists");
  r = run("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m1"}, {"amount", 0.1}});
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().detail));
  CHECK(r->version == 4);
  CHECK(r->events[0].data["importance"] == doctest::Approx(0.5));
  r = run("ForgetMemory", {{"owner", "alice"}, {"memory_id", "m2"}});
  REQUIRE(!r.has_value());
  CHECK(r.error().code == "memory_forgotten");
  CHECK(run("StoreMemory", store("m3")).has_value());

  // A second bus finds the index made by the same extractor and keeps it.
  commands::CommandBus again(*log, *keys);
  REQUIRE(again.status().has_value());
}

}  // namespace
}  // namespace engram::test
