#include "commands/aggregates.h"

#include <array>
#include <unordered_map>

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

using Renderer = std::optional<nlohmann::json> (*)(std::string_view, std::span<const uint8_t>,
                                                   const RenderContext&);

template <size_t N>
void add_renderers(std::unordered_map<std::string_view, Renderer>& out,
                   const std::array<std::string_view, N>& types, Renderer r) {
  for (std::string_view t : types) out.emplace(t, r);
}

std::unordered_map<std::string_view, Renderer> make_renderers() {
  std::unordered_map<std::string_view, Renderer> m;
  add_renderers(m, agent::kEventTypes, &agent::render);
  add_renderers(m, project::kEventTypes, &project::render);
  add_renderers(m, task::kEventTypes, &task::render);
  add_renderers(m, knowledge::kEventTypes, &knowledge::render);
  add_renderers(m, memory::kEventTypes, &memory::render);
  add_renderers(m, pattern::kEventTypes, &pattern::render);
  return m;
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

bool role_allows(const CommandSpec& spec, const Principal& p) {
  return p.has(Role::admin) || p.has(spec.review ? Role::reviewer : Role::writer);
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

core::result<void> evolve(AnyState& s, std::string_view type, std::span<const uint8_t> payload) {
  return std::visit([&](auto& state) { return evolve(state, type, payload); }, s);
}

size_t approx_bytes(const AnyState& s) {
  return std::visit([](const auto& state) { return state.approx_bytes(); }, s);
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
  static const std::unordered_map<std::string_view, Renderer> renderers = make_renderers();
  const auto it = renderers.find(type);
  if (it == renderers.end()) return std::nullopt;
  return it->second(type, payload, rc);
}

}  // namespace engram::commands
