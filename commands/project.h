#pragma once

// The project aggregate (stream "project-{project_id}"): create, advance its
// phase (research → development → testing → done, one step at a time; one
// step back only as a compensation), archive. Functions as described in
// commands/aggregate.h.

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "commands/aggregate.h"

namespace engram::commands::project {

enum class Phase : uint8_t { research, development, testing, done };
inline constexpr std::array<std::string_view, 4> kPhaseNames = {"research", "development",
                                                                "testing", "done"};

struct State {
  bool created = false;
  bool archived = false;
  Phase phase = Phase::research;
  std::string name;
  size_t approx_bytes() const;
};

struct Create {
  std::string project_id;
  std::string name;
  std::optional<std::string> description;
};
// A step forward, or with compensation_of a step back (ProjectPhaseReverted).
struct Advance {
  std::string project_id;
  Phase to_phase = Phase::research;
  std::optional<std::string> compensation_of;
  std::optional<std::string> reason;
};
struct Archive {
  std::string project_id;
  std::string reason;
};

struct Command {
  using State = project::State;
  std::variant<Create, Advance, Archive> v;
};

inline constexpr std::array<std::string_view, 3> kCommandTypes = {
    "CreateProject", "AdvanceProjectPhase", "ArchiveProject"};

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc);
// The command's type, and its body as parse() reads it back.
std::string_view type_of(const Command& c);
nlohmann::json to_json(const Command& c);
std::string stream(const Command& c);
Needs needs(const Command& c);
result<void> authorize(const Command& c, const Principal& p);
result<Events> decide(const State& s, const Command& c, const Context& ctx);
const EventTable<State>& events();

}  // namespace engram::commands::project
