#pragma once

// Test support for the commands module.
//
// Harness: the aggregates' pure functions (parse, authorize, decide, evolve)
// over in-memory states, with no log, for rule tests. It keeps each
// entity's latest event, as the log's entity index would.
// BusFixture: a real Log in a temp dir with a CommandBus over it, set up as
// `engram serve` sets it up (the bus's own pool of ThreadRole::bus threads),
// so the tests run commands through the production thread split.

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "commands/aggregates.h"
#include "commands/bus.h"
#include "core/log.h"
#include "tests/support/log_fixture.h"
#include "tests/support/temp_dir.h"

namespace engram::test {

inline commands::Principal principal(std::vector<commands::Role> roles,
                                     std::optional<std::string> agent_id = std::nullopt,
                                     std::string subject = "tester") {
  return commands::Principal{std::move(subject), std::move(roles), std::move(agent_id)};
}
inline commands::Principal writer() {
  return principal({commands::Role::writer}, {}, "writer");
}
inline commands::Principal admin() {
  return principal({commands::Role::admin}, {}, "admin");
}
inline commands::Principal reviewer() {
  return principal({commands::Role::reviewer}, {}, "reviewer");
}
inline commands::Principal agent_principal(const std::string& id) {
  return principal({commands::Role::writer}, id, "agent:" + id);
}

class Harness {
 public:
  commands::Principal who = writer();
  commands::BusOptions limits;
  // The key StoreMemory seals with.
  core::OwnerKey key{1, core::AeadKey{}};
  uint64_t destroyed_generation = 1;

  // Decides `type` with `body` and, when it is accepted, applies the events.
  commands::result<commands::Events> run(const std::string& type, const nlohmann::json& body) {
    const auto* spec = commands::find_command(type);
    REQUIRE_MESSAGE(spec != nullptr, type);
    const commands::ParseContext pc{limits, "cmd-" + std::to_string(++counter_)};
    auto command = spec->parse(type, body, pc);
    if (!command) return command.error();
    if (auto r = commands::authorize(*command, who); !r) return r.error();
    const std::string stream = commands::stream_of(*command);
    const commands::Needs needs = commands::needs_of(*command);
    const auto ids = commands::EventIds::keyed("harness", pc.command_id);
    commands::Context ctx(who, ids);
    if (!needs.agent_id.empty()) {
      ctx.agent = &std::get<commands::agent::State>(state_of("agent-" + needs.agent_id));
    }
    if (!needs.project_id.empty()) {
      ctx.project = &std::get<commands::project::State>(state_of("project-" + needs.project_id));
    }
    if (needs.key == commands::KeyUse::seal) ctx.key = key;
    if (needs.key == commands::KeyUse::destroy) ctx.destroyed_generation = destroyed_generation;
    if (!needs.entity.empty()) ctx.entity_event = latest_event(stream, needs.entity);
    auto events = commands::decide(state_of(stream), *command, ctx);
    if (!events) return events;
    for (const auto& e : *events) {
      const std::span<const uint8_t> payload(reinterpret_cast<const uint8_t*>(e.payload.data()),
                                             e.payload.size());
      const uint64_t version = ++versions_[stream];
      REQUIRE(commands::evolve(state_of(stream), {e.type, payload, version}).has_value());
      if (auto entity = commands::entity_of(stream, e.type, payload)) {
        entities_[{stream, *entity}] = Stored{e.type, e.payload, version};
      }
    }
    last_stream = stream;
    return events;
  }

  // A memory as the bus would decide about it; nullopt when it has no event.
  std::optional<commands::memory::Memory> memory(const std::string& owner,
                                                 const std::string& memory_id) {
    const std::string stream = "memory-" + owner;
    const auto latest = latest_event(stream, memory_id);
    if (!latest) return std::nullopt;
    auto m = commands::memory::memory_of(state<commands::memory::State>(stream), *latest);
    REQUIRE(m.has_value());
    return *m;
  }

  // Runs a command that must be accepted; returns its one event's type.
  std::string ok(const std::string& type, const nlohmann::json& body) {
    auto r = run(type, body);
    REQUIRE_MESSAGE(r.has_value(), type, " ", body.dump(), " -> ",
                    r ? "" : r.error().code + ": " + r.error().detail);
    REQUIRE(r->size() == 1);
    return r->front().type;
  }
  // Runs a command that must be rejected; returns the error.
  commands::CommandError fails(const std::string& type, const nlohmann::json& body) {
    auto r = run(type, body);
    REQUIRE_MESSAGE(!r.has_value(), type, " ", body.dump(), " was accepted");
    return r.error();
  }

  commands::AnyState& state_of(const std::string& stream) {
    auto it = states_.find(stream);
    if (it == states_.end()) {
      auto initial = commands::initial_state(stream);
      REQUIRE(initial.has_value());
      it = states_.emplace(stream, std::move(*initial)).first;
    }
    return it->second;
  }
  template <typename S>
  const S& state(const std::string& stream) {
    return std::get<S>(state_of(stream));
  }

  std::string last_stream;

 private:
  struct Stored {
    std::string type;
    std::string payload;
    uint64_t version = 0;
  };

  std::optional<commands::EventView> latest_event(const std::string& stream,
                                                  const std::string& entity) const {
    const auto it = entities_.find({stream, entity});
    if (it == entities_.end()) return std::nullopt;
    const Stored& e = it->second;
    return commands::EventView{
        e.type,
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(e.payload.data()),
                                 e.payload.size()),
        e.version};
  }

  std::map<std::string, commands::AnyState> states_;
  std::map<std::string, uint64_t> versions_;
  std::map<std::pair<std::string, std::string>, Stored> entities_;
  uint64_t counter_ = 0;
};

// The JSON data of an event a decision emitted.
inline nlohmann::json data_of(const commands::NewEvent& e, const core::KeyStore& keys) {
  const commands::RenderContext rc{keys};
  auto j = commands::render_domain(
      e.type,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(e.payload.data()),
                               e.payload.size()),
      rc);
  REQUIRE(j.has_value());
  return *j;
}

// Runs one JSON command through `bus` and waits for its answer.
inline commands::result<commands::CommandOutcome> run_on(
    commands::CommandBus& bus, const std::string& type, const nlohmann::json& body,
    const commands::Principal& who = writer(),
    std::optional<std::string> idempotency_key = std::nullopt) {
  commands::CommandRequest req;
  req.type = type;
  req.body = body.dump();
  req.principal = who;
  req.idempotency_key = std::move(idempotency_key);
  return bus.execute_sync(std::move(req));
}

// A data dir's log, key store and read models, as `engram serve` opens
// them, with a bus over them.
struct BusFixture {
  explicit BusFixture(commands::BusOptions options = {})
      : log(open_or_die(dir.path())),
        keys(open_keys_or_die(dir.path())),
        models(open_models_or_die(dir.path())),
        bus(*log, *keys, std::move(options)) {
    REQUIRE(bus.status().has_value());
  }

  commands::result<commands::CommandOutcome> run(
      const std::string& type, const nlohmann::json& body,
      const commands::Principal& who = writer(),
      std::optional<std::string> idempotency_key = std::nullopt) {
    return run_on(bus, type, body, who, std::move(idempotency_key));
  }
  commands::CommandOutcome ok(const std::string& type, const nlohmann::json& body,
                              const commands::Principal& who = writer(),
                              std::optional<std::string> idempotency_key = std::nullopt) {
    auto r = run(type, body, who, std::move(idempotency_key));
    REQUIRE_MESSAGE(r.has_value(), type, " ", body.dump(), " -> ",
                    r ? "" : r.error().code + ": " + r.error().detail);
    return std::move(*r);
  }
  commands::CommandError fails(const std::string& type, const nlohmann::json& body,
                               const commands::Principal& who = writer(),
                               std::optional<std::string> idempotency_key = std::nullopt) {
    auto r = run(type, body, who, std::move(idempotency_key));
    REQUIRE_MESSAGE(!r.has_value(), type, " ", body.dump(), " was accepted");
    return r.error();
  }
  std::vector<core::RecordedEvent> all_events() const {
    auto events = log->read_all(core::Position(1), 10'000);
    REQUIRE(events.has_value());
    return std::move(*events);
  }
  uint64_t head() const { return log->head().position.value(); }

  TempDir dir;
  std::unique_ptr<core::Log> log;
  std::unique_ptr<core::RocksKeyStore> keys;
  std::unique_ptr<core::ModelDb> models;
  commands::CommandBus bus;
};

}  // namespace engram::test
