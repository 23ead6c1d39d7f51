// The bus's thread contract (commands/bus.h, "Threads"), with the bus set
// up as `engram serve` sets it up: its own pool, the default BusOptions.

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "commands/bus.h"
#include "core/thread_role.h"
#include "tests/commands/harness.h"

namespace engram::test {
namespace {

using commands::Failure;
using nlohmann::json;

// The log's key store, recording the thread role of every call: the bus
// asks for a StoreMemory's key while deciding, so each call is a decision
// (or a re-decision after a lost race) seen from the thread it ran on.
// Calls may be held at a gate, to fill the bus's queue.
class RecordingKeys final : public core::KeyStore {
 public:
  explicit RecordingKeys(core::KeyStore& inner) : inner_(inner) {}

  core::result<core::OwnerKey> get_or_create(std::string_view owner) override {
    record();
    return inner_.get_or_create(owner);
  }
  core::result<std::optional<core::OwnerKey>> get(std::string_view owner) const override {
    return inner_.get(owner);
  }
  core::result<uint64_t> destroy(std::string_view owner) override {
    record();
    return inner_.destroy(owner);
  }

  std::multiset<core::ThreadRole> roles() const {
    std::lock_guard lock(mu_);
    return roles_;
  }
  void close_gate() {
    std::lock_guard lock(mu_);
    gate_closed_ = true;
  }
  void open_gate() {
    {
      std::lock_guard lock(mu_);
      gate_closed_ = false;
    }
    cv_.notify_all();
  }
  // Waits until `n` calls are held at the closed gate.
  void wait_held(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return held_ >= n; });
  }

 private:
  void record() {
    std::unique_lock lock(mu_);
    roles_.insert(core::thread_role());
    ++held_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !gate_closed_; });
    --held_;
  }

  core::KeyStore& inner_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::multiset<core::ThreadRole> roles_;
  bool gate_closed_ = false;
  size_t held_ = 0;
};

json store(const std::string& id) {
  return {{"owner", "alice"}, {"memory_id", id}, {"content", "c " + id}, {"importance", 0.5}};
}

commands::CommandRequest request(const std::string& type, const json& body) {
  commands::CommandRequest req;
  req.type = type;
  req.body = body.dump();
  req.principal = writer();
  return req;
}

TEST_CASE("bus threads: decisions, re-decisions and completions run on bus threads") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  auto key_store = open_keys_or_die(dir.path());
  RecordingKeys keys(*key_store);
  commands::BusOptions options;  // what `engram serve` starts with
  options.max_conflict_retries = 64;
  commands::CommandBus bus(*log, keys, options);

  std::mutex mu;
  std::multiset<core::ThreadRole> done_roles;
  auto run = [&](const json& body) {
    auto r = bus.execute_sync(request("StoreMemory", body));
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().code + ": " + r.error().detail));
  };
  run(store("m0"));  // cached at version 1

  // A writer the bus did not see: its next decision against the cached
  // state loses the race and is decided again.
  Harness h;
  auto behind = h.run("StoreMemory", store("x"));
  REQUIRE(behind.has_value());
  core::EventData d;
  d.type = behind->front().type;
  d.payload_format = core::PayloadFormat::flatbuffer;
  d.payload = behind->front().payload;
  REQUIRE(log->append("memory-alice", core::ExpectedVersion::any(), std::span(&d, 1)));
  run(store("m1"));
  CHECK(bus.stats().conflict_retries == 1);

  // And a race: many commands on one stream at once.
  constexpr int kThreads = 4;
  constexpr int kEach = 10;
  std::atomic<bool> go{false};
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kEach; ++i) {
        std::promise<void> answer;
        bus.execute(request("StoreMemory", store(fmt::format("r{}-{}", t, i))),
                    [&](commands::result<commands::CommandOutcome> r) {
                      {
                        std::lock_guard lock(mu);
                        done_roles.insert(core::thread_role());
                      }
                      if (r) ++answered;
                      answer.set_value();
                    });
        answer.get_future().wait();
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  CHECK(answered == kThreads * kEach);

  const auto stats = bus.stats();
  MESSAGE("conflict retries in the race: ", stats.conflict_retries - 1);
  // Every decision, the first and each one after a lost race, and every
  // answer ran on a bus thread: none on the log's writer or syncer, none on
  // the caller's.
  const auto decided = keys.roles();
  CHECK(decided.size() == 2 + 1 + kThreads * kEach + (stats.conflict_retries - 1));
  CHECK(decided.count(core::ThreadRole::bus) == decided.size());
  CHECK(done_roles.size() == kThreads * kEach);
  CHECK(done_roles.count(core::ThreadRole::bus) == done_roles.size());
}

TEST_CASE("bus threads: a full bus answers overloaded at once, and recovers") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  auto key_store = open_keys_or_die(dir.path());
  RecordingKeys keys(*key_store);
  commands::BusOptions options;
  options.threads = 1;
  options.max_queued_commands = 1;
  auto bus = std::make_unique<commands::CommandBus>(*log, keys, options);

  // The one thread is held inside a decision; one more command waits.
  keys.close_gate();
  std::promise<commands::result<commands::CommandOutcome>> first, second;
  bus->execute(request("StoreMemory", store("m1")), [&](auto r) { first.set_value(std::move(r)); });
  keys.wait_held(1);
  bus->execute(request("StoreMemory", store("m2")),
               [&](auto r) { second.set_value(std::move(r)); });

  // The next is refused on the caller's thread, before execute returns.
  std::optional<commands::result<commands::CommandOutcome>> refused;
  bus->execute(request("StoreMemory", store("m3")), [&](auto r) {
    CHECK(core::thread_role() == core::ThreadRole::unassigned);
    refused = std::move(r);
  });
  REQUIRE(refused.has_value());
  REQUIRE(!refused->has_value());
  CHECK(refused->error().kind == Failure::overloaded);
  CHECK(refused->error().code == "overloaded");
  CHECK(bus->stats().commands_refused == 1);

  keys.open_gate();
  CHECK(first.get_future().get().has_value());
  CHECK(second.get_future().get().has_value());
  auto again = bus->execute_sync(request("StoreMemory", store("m3")));
  CHECK(again.has_value());
  CHECK(log->head().position.value() == 3);
}

TEST_CASE("bus threads: destroying the bus waits for the commands in flight") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  auto keys = open_keys_or_die(dir.path());
  auto bus = std::make_unique<commands::CommandBus>(*log, *keys);
  constexpr int kCommands = 20;
  std::atomic<int> answered{0};
  for (int i = 0; i < kCommands; ++i) {
    bus->execute(request("RegisterAgent", {{"agent_id", fmt::format("a{}", i)}, {"name", "n"}}),
                 [&](auto r) {
                   CHECK(r.has_value());
                   ++answered;
                 });
  }
  bus.reset();
  CHECK(answered == kCommands);
  CHECK(log->head().position.value() == kCommands);
}

TEST_CASE("bus threads: a caller's executor runs the bus's work") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  auto keys = open_keys_or_die(dir.path());
  core::ThreadPool pool(core::ThreadPoolOptions{"callers", 2, 16, core::ThreadRole::maintenance});
  commands::BusOptions options;
  options.executor = &pool;
  {
    commands::CommandBus bus(*log, *keys, options);
    std::promise<core::ThreadRole> role;
    bus.execute(request("CreateProject", {{"project_id", "p1"}, {"name", "P"}}), [&](auto r) {
      CHECK(r.has_value());
      role.set_value(core::thread_role());
    });
    CHECK(role.get_future().get() == core::ThreadRole::maintenance);
  }
  pool.stop();
  CHECK(pool.stats().tasks_run == 2);  // the decision, then the completion
}

}  // namespace
}  // namespace engram::test
