#pragma once

// The aggregates as one set: every command type with the role it needs,
// every aggregate's state by stream prefix, and every domain event's
// renderer by type. The bus works through these and knows no aggregate.

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

namespace engram::commands {

using AnyState = std::variant<agent::State, project::State, task::State, knowledge::State,
                              memory::State, pattern::State>;
using AnyCommand = std::variant<agent::Command, project::Command, task::Command, knowledge::Command,
                                memory::Command, pattern::Command>;

struct CommandSpec {
  std::string_view type;
  // Checkpoint reviews need reviewer (or admin); everything else writer (or admin).
  bool review = false;
  result<AnyCommand> (*parse)(std::string_view type, const nlohmann::json& body,
                              const ParseContext& pc) = nullptr;
};

// Every command type, in documentation order.
std::span<const CommandSpec> command_specs();
const CommandSpec* find_command(std::string_view type);
// Whether the principal's roles admit the command.
bool role_allows(const CommandSpec& spec, const Principal& p);

bool is_domain_stream(std::string_view stream);
// The empty state of the aggregate that owns `stream`; nullopt for a
// generic stream.
std::optional<AnyState> initial_state(std::string_view stream);
core::result<void> evolve(AnyState& s, std::string_view type, std::span<const uint8_t> payload);
size_t approx_bytes(const AnyState& s);

std::string stream_of(const AnyCommand& c);
Needs needs_of(const AnyCommand& c);
result<void> authorize(const AnyCommand& c, const Principal& p);
// `s` must be the state of the command's aggregate (initial_state(stream_of(c))).
result<Events> decide(const AnyState& s, const AnyCommand& c, const Context& ctx);

// A domain event's JSON; nullopt when the type is not a domain event or the
// payload does not verify.
std::optional<nlohmann::json> render_domain(std::string_view type, std::span<const uint8_t> payload,
                                            const RenderContext& rc);

}  // namespace engram::commands
