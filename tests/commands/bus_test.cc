#include "commands/bus.h"

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "commands/errors.h"
#include "commands/ids.h"
#include "core/flexjson.h"
#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::Failure;
using nlohmann::json;

json agent_body(const std::string& id) {
  return {
      {"agent_id", id}, {"name", "Agent " + id}, {"capabilities", {"search"}}, {"domains", {"ml"}}};
}

TEST_CASE("bus: agent → project → task, end to end") {
  BusFixture f;
  auto o = f.ok("RegisterAgent", agent_body("a1"));
  CHECK(o.stream == "agent-a1");
  CHECK(o.version == 1);
  CHECK(o.first_position == 1);
  CHECK(o.last_position == 1);
  CHECK(!o.replayed);
  REQUIRE(o.events.size() == 1);
  CHECK(o.events[0].type == "AgentRegistered");
  CHECK(o.events[0].data["name"] == "Agent a1");

  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}});
  o = f.ok("RequestResearch", {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "Find X"}});
  CHECK(o.stream == "task-t1");
  f.ok("AssignTask", {{"task_id", "t1"}, {"agent_id", "a1"}});
  f.ok("SubmitFindings", {{"task_id", "t1"}, {"summary", "X is Y"}}, agent_principal("a1"));
  f.ok("RequestCheckpoint", {{"task_id", "t1"}});
  f.ok("ApproveCheckpoint", {{"task_id", "t1"}}, reviewer());
  f.ok("OpenDevelopment", {{"task_id", "t1"}});
  f.ok("AdvanceProjectPhase", {{"project_id", "p1"}, {"to_phase", "development"}});
  f.ok("ReportTestResult", {{"task_id", "t1"}, {"passed", true}}, agent_principal("a1"));
  o = f.ok("CompleteTask", {{"task_id", "t1"}, {"summary", "done"}});
  CHECK(o.version == 8);
  CHECK(o.to_json()["events"][0]["type"] == "TaskCompleted");

  const auto events = f.all_events();
  REQUIRE(events.size() == 11);
  for (const auto& e : events) {
    CHECK(!e.command_id().is_nil());
    CHECK(e.correlation_id() == e.command_id());  // no correlation id given
    CHECK(e.payload_format() == core::PayloadFormat::flatbuffer);
    CHECK(e.schema_version() == 1);
  }
  CHECK(events[4].actor() == "agent:a1");
  const json rendered = f.bus.render_event(events.back());
  CHECK(rendered["type"] == "TaskCompleted");
  CHECK(rendered["stream"] == "task-t1");
  CHECK(rendered["data"]["summary"] == "done");
  CHECK(rendered["actor"] == "writer");
  CHECK(rendered["hash"].get<std::string>().size() == 64);
  CHECK(rendered["recorded_at"].get<std::string>().ends_with("Z"));
  CHECK(rendered["causation_id"].is_null());

  const auto verify = f.log->verify(core::Position(1), core::Position(UINT64_MAX));
  REQUIRE(verify.has_value());
  CHECK(verify->ok());
}

TEST_CASE("bus: the correlation id is recorded when given") {
  BusFixture f;
  commands::CommandRequest req;
  req.type = "RegisterAgent";
  req.body = agent_body("a1").dump();
  req.principal = writer();
  req.correlation_id = core::Uuid{1, 2};
  auto r = f.bus.execute_sync(req);
  REQUIRE(r.has_value());
  const auto events = f.all_events();
  CHECK(events[0].correlation_id() == core::Uuid{1, 2});
  CHECK(events[0].command_id() == r->command_id);
}

TEST_CASE("bus: a body the adapter parsed is taken as the text would be") {
  BusFixture f;
  commands::CommandRequest req;
  req.type = "RegisterAgent";
  req.parsed_body = agent_body("a1");
  req.principal = writer();
  req.idempotency_key = "key-parsed";
  auto r = f.bus.execute_sync(req);
  REQUIRE(r.has_value());
  CHECK(r->events.at(0).data["agent_id"] == "a1");
  // The same request as text is the same request: it replays.
  commands::CommandRequest text = req;
  text.parsed_body.reset();
  text.body = agent_body("a1").dump();
  auto again = f.bus.execute_sync(text);
  REQUIRE(again.has_value());
  CHECK(again->replayed);
  CHECK(again->command_id == r->command_id);

  commands::CommandRequest bad = req;
  bad.idempotency_key.reset();
  bad.parsed_body = json::array({1});
  auto refused = f.bus.execute_sync(bad);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().kind == Failure::malformed);
  CHECK(refused.error().code == "malformed_json");
}

TEST_CASE("bus: an idempotent retry replays, another body is refused") {
  BusFixture f;
  const auto first = f.ok("RegisterAgent", agent_body("a1"), writer(), "key-1");
  const uint64_t head = f.head();
  const auto again = f.ok("RegisterAgent", agent_body("a1"), writer(), "key-1");
  CHECK(again.replayed);
  CHECK(f.head() == head);
  CHECK(again.command_id == first.command_id);
  CHECK(again.first_position == first.first_position);
  CHECK(again.version == first.version);
  REQUIRE(again.events.size() == 1);
  CHECK(again.events[0].id == first.events[0].id);
  CHECK(again.events[0].data == first.events[0].data);
  CHECK(f.bus.stats().replays == 1);

  const auto e = f.fails("RegisterAgent", agent_body("a2"), writer(), "key-1");
  CHECK(e.kind == Failure::conflict);
  CHECK(e.code == "idempotency_key_reused");
  CHECK(f.fails("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"x"}}}, writer(), "key-1").code ==
        "idempotency_key_reused");
  CHECK(f.head() == head);

  // Keys belong to their subject: another principal's "key-1" is its own.
  f.ok("RegisterAgent", agent_body("a2"), admin(), "key-1");
  CHECK(f.head() == head + 1);

  // The key and the request digest travel in the first event's metadata.
  const json meta = f.bus.render_event(f.all_events()[0])["metadata"];
  CHECK(meta["idempotency_key"] == "key-1");
  CHECK(meta["request_digest"].get<std::string>().size() == 64);
}

TEST_CASE("bus: a keyed creation without an id makes the same id on retry") {
  BusFixture f;
  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}});
  const json body = {{"project_id", "p1"}, {"title", "Find X"}};
  const auto first = f.ok("RequestResearch", body, writer(), "req-7");
  CHECK(first.stream == "task-" + first.command_id.to_string());
  const auto again = f.ok("RequestResearch", body, writer(), "req-7");
  CHECK(again.replayed);
  CHECK(again.stream == first.stream);
  // Without a key every request makes a new task.
  const auto a = f.ok("RequestResearch", body);
  const auto b = f.ok("RequestResearch", body);
  CHECK(a.stream != b.stream);
}

TEST_CASE("bus: a keyed retry after later changes still replays") {
  BusFixture f;
  const auto first = f.ok("RegisterAgent", agent_body("a1"), writer(), "k");
  f.ok("SuspendAgent", {{"agent_id", "a1"}, {"reason", "r"}});
  // Deciding again would now fail (already registered); the replay wins.
  const auto again = f.ok("RegisterAgent", agent_body("a1"), writer(), "k");
  CHECK(again.replayed);
  CHECK(again.version == 1);
  CHECK(again.first_position == first.first_position);
}

TEST_CASE("bus: concurrent deliveries of one keyed request write once") {
  BusFixture f;
  f.ok("RegisterAgent", agent_body("a1"));
  constexpr int kThreads = 8;
  std::vector<std::optional<commands::result<commands::CommandOutcome>>> results(kThreads);
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      results[i] =
          f.run("ObservePattern",
                {{"domain", "ml"}, {"signature", "s"}, {"outcome", "success"}, {"reward", 1.5}},
                writer(), "observe-once");
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  uint64_t position = 0;
  for (const auto& r : results) {
    REQUIRE(r.has_value());
    REQUIRE_MESSAGE(r->has_value(), r->error().code, ": ", r->error().detail);
    if (position == 0) position = (*r)->first_position;
    CHECK((*r)->first_position == position);
  }
  CHECK(f.head() == 2);
}

TEST_CASE("bus: explicit expected versions") {
  BusFixture f;
  f.ok("RegisterAgent", agent_body("a1"));
  json body = {{"agent_id", "a1"}, {"domains", {"x"}}, {"expected_version", 1}};
  f.ok("AdaptAgent", body);
  const uint64_t head = f.head();
  auto e = f.fails("AdaptAgent", body);  // now at 2
  CHECK(e.kind == Failure::conflict);
  CHECK(e.code == "wrong_expected_version");
  REQUIRE(e.actual_version.has_value());
  CHECK(*e.actual_version == 2);

  body["expected_version"] = "no_stream";
  CHECK(f.fails("AdaptAgent", body).code == "wrong_expected_version");
  body["expected_version"] = "stream_exists";
  f.ok("AdaptAgent", body);
  body["expected_version"] = "any";
  f.ok("AdaptAgent", body);
  CHECK(f.fails("RegisterAgent", {{"agent_id", "a9"},
                                  {"name", "n"},
                                  {"capabilities", json::array()},
                                  {"domains", json::array()},
                                  {"expected_version", "stream_exists"}})
            .actual_version == 0);
  f.ok("RegisterAgent", {{"agent_id", "a9"},
                         {"name", "n"},
                         {"capabilities", json::array()},
                         {"domains", json::array()},
                         {"expected_version", "no_stream"}});

  for (const json& bad : {json(-1), json("latest"), json(1.5), json::array()}) {
    body["expected_version"] = bad;
    e = f.fails("AdaptAgent", body);
    CHECK(e.kind == Failure::malformed);
    CHECK(e.field == "/expected_version");
  }
  CHECK(f.head() == head + 3);
}

TEST_CASE("bus: concurrent commands with one expected version: exactly one wins") {
  BusFixture f;
  f.ok("RegisterAgent", agent_body("a1"));
  constexpr int kThreads = 8;
  std::atomic<int> wins{0}, conflicts{0};
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      auto r = f.run("AdaptAgent", {{"agent_id", "a1"},
                                    {"capabilities", {"c" + std::to_string(i)}},
                                    {"expected_version", 1}});
      if (r) {
        ++wins;
      } else if (r.error().code == "wrong_expected_version") {
        ++conflicts;
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  CHECK(wins == 1);
  CHECK(conflicts == kThreads - 1);
  CHECK(f.head() == 2);
}

// A caller's executor: one worker thread, as an event loop would be.
class Worker final : public core::Executor {
 public:
  Worker() : thread_([this] { loop(); }) {}
  ~Worker() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool try_post(core::Task fn) override {
    post(std::move(fn));
    return true;
  }
  void post(core::Task fn) override {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(fn));
      ++posted;
    }
    cv_.notify_all();
  }
  std::atomic<int> posted{0};

 private:
  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<core::Task> queue_;
  bool stop_ = false;
  std::thread thread_;
};

TEST_CASE("bus: concurrent commands without an expected version all succeed by retrying") {
  auto worker = std::make_shared<Worker>();
  commands::BusOptions options;
  options.max_conflict_retries = 64;
  bool posted = false;
  SUBCASE("on the bus's own threads") {}
  SUBCASE("on the caller's executor") {
    posted = true;
  }
  if (posted) options.executor = worker.get();
  BusFixture f(options);
  constexpr int kThreads = 6;
  constexpr int kEach = 10;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int k = 0; k < kEach; ++k) {
        auto r = f.run("ObservePattern", {{"domain", "ml"},
                                          {"signature", "shared"},
                                          {"outcome", k % 2 ? "success" : "failure"},
                                          {"reward", k}});
        if (r)
          ++ok;
        else
          MESSAGE(r.error().code, ": ", r.error().detail);
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  CHECK(ok == kThreads * kEach);
  const auto stats = f.bus.stats();
  CHECK(stats.commands_ok == kThreads * kEach);
  if (posted) CHECK(worker->posted >= static_cast<int>(stats.conflict_retries));
  const auto version = f.log->stream_version("pattern-" + commands::pattern_id("ml", "shared"));
  REQUIRE(version.has_value());
  CHECK(version->value() == kThreads * kEach);
}

TEST_CASE("bus: a writer the cache did not see is caught up by a retry") {
  BusFixture f;
  f.ok("RegisterAgent", agent_body("a1"));
  f.ok("SuspendAgent", {{"agent_id", "a1"}, {"reason", "r"}});  // cached at version 2
  // Someone appends behind the bus's back (a follower promoted, a tool).
  Harness h;
  h.ok("RegisterAgent", agent_body("a1"));
  auto events = h.run("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"x"}}});
  REQUIRE(events.has_value());
  core::EventData d;
  d.type = events->front().type;
  d.payload_format = core::PayloadFormat::flatbuffer;
  d.payload = events->front().payload;
  REQUIRE(f.log->append("agent-a1", core::ExpectedVersion::exact(core::StreamVersion(2)),
                        std::span(&d, 1)));

  auto o = f.ok("RetireAgent", {{"agent_id", "a1"}, {"reason", "r"}});
  CHECK(o.version == 4);
  CHECK(f.bus.stats().conflict_retries == 1);
  // An explicit expectation that only the log can confirm is accepted too.
  REQUIRE(f.log->append("agent-a1", core::ExpectedVersion::exact(core::StreamVersion(4)),
                        std::span(&d, 1)));
  CHECK(f.fails("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"y"}}, {"expected_version", 5}})
            .code == "agent_retired");
}

TEST_CASE("bus: bad input changes nothing") {
  BusFixture f;
  f.ok("RegisterAgent", agent_body("a1"));
  const uint64_t head = f.head();
  struct Case {
    std::string type;
    std::string body;
    Failure kind;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"RegisterAgent", "{not json", Failure::malformed, "malformed_json"},
      {"RegisterAgent", "[1, 2]", Failure::malformed, "malformed_json"},
      {"RegisterAgent", "", Failure::malformed, "malformed_json"},
      {"LaunchRocket", "{}", Failure::unknown_command, "unknown_command"},
      {"RegisterAgent", agent_body("a1").dump(), Failure::rule, "agent_already_registered"},
      {"RegisterAgent", R"({"agent_id": "a2"})", Failure::malformed, "missing_field"},
      {"SuspendAgent", R"({"agent_id": "zz", "reason": "r"})", Failure::not_found,
       "agent_not_found"},
      {"StoreMemory", R"({"owner": "o", "content": "c", "importance": 2})", Failure::malformed,
       "invalid_field"},
      {"ObservePattern",
       R"({"domain": "d", "signature": "s", "outcome": "success", "reward": 1e10})",
       Failure::malformed, "invalid_field"},
      {"RecordKnowledge",
       R"({"title": "t", "body": "b", "domain": "d", "confidence": 0.5, "embedding": []})",
       Failure::malformed, "invalid_field"},
  };
  for (const auto& c : cases) {
    commands::CommandRequest req;
    req.type = c.type;
    req.body = c.body;
    req.principal = writer();
    auto r = f.bus.execute_sync(req);
    REQUIRE_MESSAGE(!r.has_value(), c.type, " ", c.body);
    CHECK_MESSAGE(r.error().kind == c.kind, c.body);
    CHECK_MESSAGE(r.error().code == c.code, c.body, " -> ", r.error().detail);
  }
  CHECK(f.head() == head);
  CHECK(f.bus.stats().commands_failed == cases.size());
}

TEST_CASE("bus: authorization by role") {
  BusFixture f;
  const auto reader = principal({commands::Role::reader});
  const auto replicator = principal({commands::Role::replicator});
  for (const auto& who : {reader, replicator, principal({})}) {
    const auto e = f.fails("RegisterAgent", agent_body("a1"), who);
    CHECK(e.kind == Failure::forbidden);
    CHECK(e.code == "role_not_allowed");
  }
  CHECK(f.fails("RegisterAgent", agent_body("a1"), reviewer()).code == "role_not_allowed");
  f.ok("RegisterAgent", agent_body("a1"), admin());
  f.ok("CreateProject", {{"project_id", "p1"}, {"name", "P"}});
  f.ok("RequestResearch", {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "T"}});
  f.ok("AssignTask", {{"task_id", "t1"}, {"agent_id", "a1"}});
  f.ok("SubmitFindings", {{"task_id", "t1"}, {"summary", "s"}});
  f.ok("RequestCheckpoint", {{"task_id", "t1"}});
  CHECK(f.fails("ApproveCheckpoint", {{"task_id", "t1"}}, writer()).code == "role_not_allowed");
  CHECK(f.fails("RejectCheckpoint", {{"task_id", "t1"}}, reader).code == "role_not_allowed");
  f.ok("RejectCheckpoint", {{"task_id", "t1"}}, admin());
  f.ok("SubmitFindings", {{"task_id", "t1"}, {"summary", "s2"}});
  f.ok("RequestCheckpoint", {{"task_id", "t1"}});
  f.ok("ApproveCheckpoint", {{"task_id", "t1"}}, reviewer());
}

TEST_CASE("bus: rendering generic and unknown events") {
  BusFixture f;
  auto payload = core::json_to_flex({{"hello", "world"}, {"n", 3}});
  REQUIRE(payload.has_value());
  core::EventData generic;
  generic.type = "Greeting";
  generic.payload = *payload;
  core::EventData unknown;
  unknown.type = "Mystery";
  unknown.payload_format = core::PayloadFormat::flatbuffer;
  unknown.payload = std::string("\x01\x02\x03", 3);
  const std::vector<core::EventData> events = {generic, unknown};
  REQUIRE(f.log->append("chat-1", core::ExpectedVersion::any(), events));
  const auto stored = f.all_events();
  json j = f.bus.render_event(stored[0]);
  CHECK(j["data"] == json({{"hello", "world"}, {"n", 3}}));
  CHECK(!j.contains("data_encoding"));
  CHECK(j["metadata"].is_null());
  CHECK(j["command_id"].is_null());
  j = f.bus.render_event(stored[1]);
  CHECK(j["data"] == "AQID");
  CHECK(j["data_encoding"] == "base64");
  // A domain type whose payload does not verify is shown raw, too.
  core::EventData fake;
  fake.type = "AgentRegistered";
  fake.payload_format = core::PayloadFormat::flatbuffer;
  fake.payload = "nonsense";
  REQUIRE(f.log->append("chat-2", core::ExpectedVersion::any(), std::span(&fake, 1)));
  CHECK(f.bus.render_event(f.all_events()[2])["data_encoding"] == "base64");
}

TEST_CASE("bus: command types and domain streams") {
  const auto& types = commands::CommandBus::command_types();
  CHECK(types.size() == 27);
  CHECK(types.front() == "RegisterAgent");
  CHECK(types.back() == "RetirePattern");
  for (const char* s : {"agent-a", "project-p", "task-t", "knowledge-k", "memory-m", "pattern-p"}) {
    CHECK(commands::CommandBus::is_domain_stream(s));
  }
  for (const char* s : {"agents", "chat-1", "order-7", "Agent-a", "memo-1"}) {
    CHECK(!commands::CommandBus::is_domain_stream(s));
  }
}

TEST_CASE("aggregates: every event type is declared once, with its entity where it has one") {
  const auto types = commands::event_types();
  CHECK(types.size() == 28);
  CHECK(std::set<std::string_view>(types.begin(), types.end()).size() == types.size());
  CHECK(types.front() == "AgentRegistered");
  CHECK(types.back() == "PatternRetired");

  Harness h;
  const auto entity = [&](const std::string& type, const json& body) {
    auto events = h.run(type, body);
    REQUIRE(events.has_value());
    const auto& e = events->front();
    return commands::entity_of(
        h.last_stream, e.type,
        std::span(reinterpret_cast<const uint8_t*>(e.payload.data()), e.payload.size()));
  };
  CHECK(entity("RegisterAgent", agent_body("a1")) == std::nullopt);
  const json memory = {{"owner", "o"}, {"memory_id", "m1"}, {"content", "c"}, {"importance", 1}};
  CHECK(entity("StoreMemory", memory) == "m1");
  CHECK(entity("ForgetMemory", {{"owner", "o"}, {"memory_id", "m1"}}) == "m1");
  CHECK(entity("ForgetSubject", {{"owner", "o"}}) == std::string(commands::memory::kSubjectEntity));
  // Only in the stream of its own aggregate.
  auto stored = h.run("StoreMemory", {{"owner", "o"}, {"content", "c"}, {"importance", 1}});
  REQUIRE(stored.has_value());
  const auto& p = stored->front().payload;
  const std::span bytes(reinterpret_cast<const uint8_t*>(p.data()), p.size());
  CHECK(commands::entity_of("memory-o", "MemoryStored", bytes).has_value());
  CHECK(commands::entity_of("agent-o", "MemoryStored", bytes) == std::nullopt);
  CHECK(commands::entity_of("chat-1", "MemoryStored", bytes) == std::nullopt);
}

TEST_CASE("bus: the state cache serves repeated commands") {
  BusFixture f;
  f.ok("RegisterAgent", agent_body("a1"));
  const auto before = f.bus.stats();
  f.ok("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"x"}}});
  f.ok("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"y"}}});
  const auto after = f.bus.stats();
  CHECK(after.cache_hits == before.cache_hits + 2);
  CHECK(after.cache_misses == before.cache_misses);
  CHECK(after.cache_entries == 1);
  CHECK(after.cache_bytes > 0);

  commands::BusOptions tiny;
  tiny.state_cache_entries = 1;
  BusFixture g(tiny);
  g.ok("RegisterAgent", agent_body("a1"));
  g.ok("RegisterAgent", agent_body("a2"));
  CHECK(g.bus.stats().cache_entries == 1);
  g.ok("AdaptAgent", {{"agent_id", "a1"}, {"domains", {"x"}}});  // rebuilt from the log
  CHECK(g.bus.stats().cache_misses == 3);
}

TEST_CASE("bus: log errors map onto failures") {
  using core::errc;
  CHECK(commands::from_log(core::make_error(errc::overloaded, "")).kind == Failure::overloaded);
  CHECK(commands::from_log(core::make_error(errc::read_only, "")).kind == Failure::unavailable);
  CHECK(commands::from_log(core::make_error(errc::shutting_down, "")).kind == Failure::unavailable);
  CHECK(commands::from_log(core::make_error(errc::io_error, "")).kind == Failure::internal);
  CHECK(commands::from_log(core::make_error(errc::corruption, "")).kind == Failure::internal);
  CHECK(commands::from_log(core::make_error(errc::invalid_argument, "")).kind ==
        Failure::malformed);
}

TEST_CASE("bus: an event too large for the log is malformed, and nothing is written") {
  core::LogOptions lo;
  lo.max_event_bytes = 4096;
  TempDir dir;
  auto log = open_or_die(dir.path(), lo);
  auto keys = test::open_keys_or_die(dir.path());
  commands::CommandBus bus(*log, *keys);
  commands::CommandRequest req;
  req.type = "CreateProject";
  req.body = json({{"project_id", "p1"}, {"name", std::string(5000, 'n')}}).dump();
  req.principal = writer();
  auto r = bus.execute_sync(req);
  REQUIRE(!r.has_value());
  CHECK(r.error().kind == Failure::malformed);
  CHECK(r.error().code == "too_large");
  CHECK(log->head().position.value() == 0);
}

}  // namespace
}  // namespace engram::test
