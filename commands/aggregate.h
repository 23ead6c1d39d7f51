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
//   events()                         → its event table (commands/event_table.h):
//                                      every event type once, with its evolve,
//                                      its JSON and the entity it is about
//
// Events are FlatBuffers of the domain tables in schemas/domain/, one table
// per event type, named like the type.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands/errors.h"
#include "commands/ids.h"
#include "commands/limits.h"
#include "commands/principal.h"
#include "core/keystore.h"
#include "core/uuid.h"

namespace engram::commands {

namespace agent {
struct State;
}
namespace project {
struct State;
}

// A command's type name, for a command variant whose alternatives are in
// the order of `types` (an aggregate's kCommandTypes).
template <typename Variant, size_t N>
std::string_view type_name(const Variant& v, const std::array<std::string_view, N>& types) {
  static_assert(std::variant_size_v<Variant> == N);
  return types[v.index()];
}

// An event a decision emits: a FlatBuffer of the domain table named `type`.
struct NewEvent {
  std::string type;
  std::string payload;
};
using Events = std::vector<NewEvent>;

// A stored (or just decided) event as evolve reads it.
struct EventView {
  std::string_view type;
  std::span<const uint8_t> payload;
  uint64_t version = 0;  // its version in its stream
};

// What a command reads besides its own aggregate's state; the bus loads it.
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
  // An entity of the command's own stream (a memory id) whose latest event
  // the decision reads, found through the log's entity index; empty: none.
  std::string entity;
};

struct ParseContext {
  const Limits& limits;
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
  // Needs::entity's latest event in the command's stream, at a version no
  // older than the state's; nullopt when the entity has none.
  std::optional<EventView> entity_event;
};

// For aggregates whose events are about the stream as a whole.
struct NoEntity {};
// An aggregate's events (commands/event_table.h).
template <typename State, typename Entity = NoEntity>
struct EventTable;

struct RenderContext {
  // For decrypting memory content; a destroyed key renders it as forgotten.
  const core::KeyStore& keys;
};

}  // namespace engram::commands
