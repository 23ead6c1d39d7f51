#pragma once

// The agent aggregate (stream "agent-{agent_id}"): register, adapt, suspend,
// retire. Functions as described in commands/aggregate.h.

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands/aggregate.h"

namespace engram::commands::agent {

enum class Status : uint8_t { active, suspended, retired };
const char* status_name(Status s);

struct State {
  bool registered = false;
  Status status = Status::active;
  std::string name;
  std::vector<std::string> capabilities;
  std::vector<std::string> domains;
  std::string config;  // a FlexBuffer map; empty when none
  size_t approx_bytes() const;
};

struct Register {
  std::string agent_id;
  std::string name;
  std::optional<std::string> kind;
  std::vector<std::string> capabilities;
  std::vector<std::string> domains;
  std::string config;  // FlexBuffer
};
struct Adapt {
  std::string agent_id;
  std::optional<std::vector<std::string>> capabilities;
  std::optional<std::vector<std::string>> domains;
  std::optional<std::string> config;  // FlexBuffer
};
struct Suspend {
  std::string agent_id;
  std::string reason;
};
struct Retire {
  std::string agent_id;
  std::string reason;
};

struct Command {
  using State = agent::State;
  std::variant<Register, Adapt, Suspend, Retire> v;
};

inline constexpr std::array<std::string_view, 4> kCommandTypes = {"RegisterAgent", "AdaptAgent",
                                                                  "SuspendAgent", "RetireAgent"};

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc);
// The command's type, and its body as parse() reads it back.
std::string_view type_of(const Command& c);
nlohmann::json to_json(const Command& c);
std::string stream(const Command& c);
Needs needs(const Command& c);
result<void> authorize(const Command& c, const Principal& p);
result<Events> decide(const State& s, const Command& c, const Context& ctx);
const EventTable<State>& events();

}  // namespace engram::commands::agent
