#include "commands/aggregates.h"

#include <fmt/format.h>

#include <array>
#include <unordered_map>
#include <utility>

#include "commands/event_table.h"
#include "commands/ids.h"

namespace engram::commands {
namespace {

template <typename C,
          result<C> (*Parse)(std::string_view, const nlohmann::json&, const ParseContext&)>
result<AnyCommand> parse_as(std::string_view type, const nlohmann::json& body,
                            const ParseContext& pc) {
  auto c = Parse(type, body, pc);
  if (!c) return c.error();
  return AnyCommand(std::move(*c));
}

template <typename C,
          result<C> (*Parse)(std::string_view, const nlohmann::json&, const ParseContext&),
          size_t N>
void add_specs(std::vector<CommandSpec>& out, const std::array<std::string_view, N>& types) {
  for (std::string_view t : types) {
    out.push_back({t, t == "ApproveCheckpoint" || t == "RejectCheckpoint", &parse_as<C, Parse>});
  }
}

std::vector<CommandSpec> make_specs() {
  std::vector<CommandSpec> specs;
  add_specs<agent::Command, agent::parse>(specs, agent::kCommandTypes);
  add_specs<project::Command, project::parse>(specs, project::kCommandTypes);
  add_specs<task::Command, task::parse>(specs, task::kCommandTypes);
  add_specs<knowledge::Command, knowledge::parse>(specs, knowledge::kCommandTypes);
  add_specs<memory::Command, memory::parse>(specs, memory::kCommandTypes);
  add_specs<pattern::Command, pattern::parse>(specs, pattern::kCommandTypes);
  return specs;
}

// Each aggregate's event table, by its state's type.
const EventTable<agent::State>& table_of(const agent::State*) {
  return agent::events();
}
const EventTable<project::State>& table_of(const project::State*) {
  return project::events();
}
const EventTable<task::State>& table_of(const task::State*) {
  return task::events();
}
const EventTable<knowledge::State>& table_of(const knowledge::State*) {
  return knowledge::events();
}
const EventTable<memory::State, memory::Memory>& table_of(const memory::State*) {
  return memory::events();
}
const EventTable<pattern::State>& table_of(const pattern::State*) {
  return pattern::events();
}
template <typename State>
const auto& table_of() {
  return table_of(static_cast<const State*>(nullptr));
}

// Calls f.operator()<State>() for every aggregate, in documentation order.
template <typename F>
void for_each_aggregate(F&& f) {
  [&]<size_t... I>(std::index_sequence<I...>) {
    (f.template operator()<std::variant_alternative_t<I, AnyState>>(), ...);
  }
  (std::make_index_sequence<std::variant_size_v<AnyState>>{});
}

using Renderer = std::optional<nlohmann::json> (*)(std::string_view, std::span<const uint8_t>,
                                                   const RenderContext&);

template <typename State>
std::optional<nlohmann::json> render_as(std::string_view type, std::span<const uint8_t> payload,
                                        const RenderContext& rc) {
  return table_of<State>().render(type, payload, rc);
}

// Every domain event type's renderer.
const std::unordered_map<std::string_view, Renderer>& renderers() {
  static const auto map = [] {
    std::unordered_map<std::string_view, Renderer> m;
    for_each_aggregate([&]<typename State>() {
      for (const auto& d : table_of<State>().events) m.emplace(d.type, &render_as<State>);
    });
    return m;
  }();
  return map;
}

}  // namespace

std::span<const CommandSpec> command_specs() {
  static const std::vector<CommandSpec> specs = make_specs();
  return specs;
}

const CommandSpec* find_command(std::string_view type) {
  for (const auto& spec : command_specs()) {
    if (spec.type == type) return &spec;
  }
  return nullptr;
}

result<void> authorize_role(const CommandSpec& spec, const Principal& p) {
  if (!p.is_system && p.subject.starts_with(kSystemSubjectPrefix)) {
    return forbidden(
        "reserved_subject",
        fmt::format("subjects starting with \"{}\" are the system's", kSystemSubjectPrefix));
  }
  if (!p.has(Role::admin) && !p.has(spec.review ? Role::reviewer : Role::writer)) {
    return forbidden("role_not_allowed", fmt::format("{} needs the role {} or admin", spec.type,
                                                     spec.review ? "reviewer" : "writer"));
  }
  if (spec.review && p.is_system) {
    return forbidden(
        "human_review_required",
        fmt::format("{} is a person's decision; \"{}\" is the system", spec.type, p.subject));
  }
  return {};
}

bool is_domain_stream(std::string_view stream) {
  return initial_state(stream).has_value();
}

std::optional<AnyState> initial_state(std::string_view stream) {
  if (stream.starts_with(kAgentStreamPrefix)) return AnyState(agent::State{});
  if (stream.starts_with(kProjectStreamPrefix)) return AnyState(project::State{});
  if (stream.starts_with(kTaskStreamPrefix)) return AnyState(task::State{});
  if (stream.starts_with(kKnowledgeStreamPrefix)) return AnyState(knowledge::State{});
  if (stream.starts_with(kMemoryStreamPrefix)) return AnyState(memory::State{});
  if (stream.starts_with(kPatternStreamPrefix)) return AnyState(pattern::State{});
  return std::nullopt;
}

core::result<void> evolve(AnyState& s, const EventView& e) {
  return std::visit([&](auto& state) { return table_of(&state).evolve(state, e); }, s);
}

size_t approx_bytes(const AnyState& s) {
  return std::visit([](const auto& state) { return state.approx_bytes(); }, s);
}

std::span<const std::string_view> state_entities(std::string_view stream) {
  if (stream.starts_with(kMemoryStreamPrefix)) return memory::kStateEntities;
  return {};
}

std::string_view type_of(const AnyCommand& c) {
  return std::visit([](const auto& cmd) { return type_of(cmd); }, c);
}

nlohmann::json to_json(const AnyCommand& c) {
  return std::visit([](const auto& cmd) { return to_json(cmd); }, c);
}

std::string stream_of(const AnyCommand& c) {
  return std::visit([](const auto& cmd) { return stream(cmd); }, c);
}

Needs needs_of(const AnyCommand& c) {
  return std::visit([](const auto& cmd) { return needs(cmd); }, c);
}

result<void> authorize(const AnyCommand& c, const Principal& p) {
  return std::visit([&](const auto& cmd) { return authorize(cmd, p); }, c);
}

result<Events> decide(const AnyState& s, const AnyCommand& c, const Context& ctx) {
  return std::visit(
      [&](const auto& cmd) {
        using State = typename std::decay_t<decltype(cmd)>::State;
        const auto* state = std::get_if<State>(&s);
        ENGRAM_ASSERT_MSG(state != nullptr, "the state belongs to another aggregate");
        return decide(*state, cmd, ctx);
      },
      c);
}

std::optional<nlohmann::json> render_domain(std::string_view type, std::span<const uint8_t> payload,
                                            const RenderContext& rc) {
  const auto& map = renderers();
  const auto it = map.find(type);
  if (it == map.end()) return std::nullopt;
  return it->second(type, payload, rc);
}

std::vector<std::string_view> event_types() {
  std::vector<std::string_view> out;
  for_each_aggregate([&]<typename State>() {
    for (const auto& d : table_of<State>().events) out.push_back(d.type);
  });
  return out;
}

std::optional<std::string> entity_of(std::string_view stream, std::string_view type,
                                     std::span<const uint8_t> payload) {
  auto state = initial_state(stream);
  if (!state) return std::nullopt;
  return std::visit([&](const auto& s) { return table_of(&s).entity(type, payload); }, *state);
}

std::string entity_of(const core::RecordedEvent& e) {
  if (e.payload_format() != core::PayloadFormat::flatbuffer) return {};
  return entity_of(e.stream(), e.type(), e.payload()).value_or(std::string());
}

}  // namespace engram::commands
