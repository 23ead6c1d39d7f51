#pragma once

// What the aggregates share. Each aggregate module (agent, project, task,
// knowledge, memory, pattern) offers the same functions over its own types:
//
//   parse(type, body, ParseContext)  → Command | CommandError (malformed)
//   stream(Command)                  → the aggregate's stream
//   needs(Command)                   → other state the decision reads (Needs)
//   authorize(Command, Principal)    → forbidden when an agent-scoped principal
//                                      names another agent
//   decide(State, Command, Context)  → Events | CommandError (pure)
//   evolve(State&, type, payload)    → the state after one stored event
//   render(type, payload, RenderContext) → the event's JSON "data"
//
// Events are FlatBuffers of the domain tables in schemas/domain/, one table
// per event type, named like the type.

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "commands/bus.h"
#include "commands/ids.h"
#include "core/keystore.h"
#include "core/uuid.h"

namespace engram::commands {

namespace agent {
struct State;
}
namespace project {
struct State;
}

// An event a decision emits: a FlatBuffer of the domain table named `type`.
struct NewEvent {
  std::string type;
  std::string payload;
};
using Events = std::vector<NewEvent>;

// What a command reads besides its own aggregate; the bus loads it.
enum class KeyUse : uint8_t {
  none,
  seal,     // the owner's live key, made when missing (StoreMemory)
  destroy,  // destroy the owner's key before appending (ForgetSubject)
};
struct Needs {
  std::string agent_id;  // load agent-{agent_id}
  std::string project_id;
  KeyUse key = KeyUse::none;
  std::string key_owner;
};

struct ParseContext {
  const BusOptions& limits;
  // The command id's text form: the id of an aggregate a creation command
  // makes without naming it.
  std::string command_id;
};

struct Context {
  Context(const Principal& p, const EventIds& i) : principal(p), ids(i) {}

  const Principal& principal;
  const EventIds& ids;
  // Needs::agent_id / project_id, loaded (an unknown aggregate is an empty
  // state); null when the command needs none.
  const agent::State* agent = nullptr;
  const project::State* project = nullptr;
  // KeyUse::seal: the owner's live key.
  std::optional<core::OwnerKey> key;
  // KeyUse::destroy: the generation destroyed (0: none was live).
  uint64_t destroyed_generation = 0;
};

struct RenderContext {
  // For decrypting memory content; a destroyed key renders it as forgotten.
  const core::KeyStore& keys;
};

}  // namespace engram::commands
