#pragma once

// Test support for the commands module.
//
// Harness: the aggregates' pure functions (parse, authorize, decide, evolve)
// over in-memory states, with no log, for rule tests.
// BusFixture: a real Log in a temp dir with a CommandBus over it.

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
    auto events = commands::decide(state_of(stream), *command, ctx);
    if (!events) return events;
    for (const auto& e : *events) {
      const std::span<const uint8_t> payload(reinterpret_cast<const uint8_t*>(e.payload.data()),
                                             e.payload.size());
      REQUIRE(commands::evolve(state_of(stream), e.type, payload).has_value());
    }
    last_stream = stream;
    return events;
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
  std::map<std::string, commands::AnyState> states_;
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

struct BusFixture {
  explicit BusFixture(commands::BusOptions options = {})
      : log(open_or_die(dir.path())), bus(*log, log->keys(), std::move(options)) {}

  commands::result<commands::CommandOutcome> run(
      const std::string& type, const nlohmann::json& body,
      const commands::Principal& who = writer(),
      std::optional<std::string> idempotency_key = std::nullopt) {
    commands::CommandRequest req;
    req.type = type;
    req.body = body.dump();
    req.principal = who;
    req.idempotency_key = std::move(idempotency_key);
    return bus.execute_sync(std::move(req));
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
  commands::CommandBus bus;
};

}  // namespace engram::test
