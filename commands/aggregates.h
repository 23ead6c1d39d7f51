#pragma once

// The aggregates as one set: every command type with the role it needs,
// every aggregate's state by stream prefix, and every domain event through
// its aggregate's event table (commands/event_table.h). The bus works
// through these and knows no aggregate.

#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands/agent.h"
#include "commands/aggregate.h"
#include "commands/knowledge.h"
#include "commands/memory.h"
#include "commands/pattern.h"
#include "commands/project.h"
#include "commands/task.h"
#include "core/event.h"

namespace engram::commands {

using AnyState = std::variant<agent::State, project::State, task::State, knowledge::State,
                              memory::State, pattern::State>;
using AnyCommand = std::variant<agent::Command, project::Command, task::Command, knowledge::Command,
                                memory::Command, pattern::Command>;

struct CommandSpec {
  std::string_view type;
  // Checkpoint reviews need reviewer (or admin) and a person; everything
  // else writer (or admin).
  bool review = false;
  result<AnyCommand> (*parse)(std::string_view type, const nlohmann::json& body,
                              const ParseContext& pc) = nullptr;
};

// Every command type, in documentation order.
std::span<const CommandSpec> command_specs();
const CommandSpec* find_command(std::string_view type);
// Whether the principal may issue commands of this type at all: forbidden
// with reserved_subject (a subject only the system may have, on another
// principal), role_not_allowed (its roles do not admit it) or
// human_review_required (a system principal and a checkpoint review).
result<void> authorize_role(const CommandSpec& spec, const Principal& p);

bool is_domain_stream(std::string_view stream);
// The empty state of the aggregate that owns `stream`; nullopt for a
// generic stream.
std::optional<AnyState> initial_state(std::string_view stream);
// The state after one stored event (its aggregate's event table);
// errc::corruption when the event is not the aggregate's or does not verify.
core::result<void> evolve(AnyState& s, const EventView& e);
size_t approx_bytes(const AnyState& s);

// How the state of `stream` is rebuilt when it is not cached: empty, by
// folding every event from version 1; otherwise from the latest events of
// these entities alone (found through the log's entity index), for an
// aggregate whose stream grows without bound while its state does not
// (memory::kStateEntities).
std::span<const std::string_view> state_entities(std::string_view stream);

// The command's type ("AssignTask") and its JSON body, which the type's
// parser reads back to the same command.
std::string_view type_of(const AnyCommand& c);
nlohmann::json to_json(const AnyCommand& c);

std::string stream_of(const AnyCommand& c);
Needs needs_of(const AnyCommand& c);
result<void> authorize(const AnyCommand& c, const Principal& p);
// `s` must be the state of the command's aggregate (initial_state(stream_of(c))).
result<Events> decide(const AnyState& s, const AnyCommand& c, const Context& ctx);

// A domain event's JSON; nullopt when the type is not a domain event or the
// payload does not verify.
std::optional<nlohmann::json> render_domain(std::string_view type, std::span<const uint8_t> payload,
                                            const RenderContext& rc);

// Every domain event type, aggregate by aggregate in documentation order.
std::vector<std::string_view> event_types();

// The log's entity index (core/log.h) as this module fills it: the name of
// the extractor below (a new name makes the bus rebuild the index), and
// which entity of its stream a domain event is about (a memory id; the
// owner as memory::kSubjectEntity for SubjectForgotten). nullopt for events
// about their whole stream, events of other streams, and payloads that do
// not verify.
inline constexpr std::string_view kEntityIndexName = "engram.commands.entities/1";
std::optional<std::string> entity_of(std::string_view stream, std::string_view type,
                                     std::span<const uint8_t> payload);
// The same over a stored event, in the shape Log::rebuild_entity_index takes.
std::string entity_of(const core::RecordedEvent& e);

}  // namespace engram::commands
