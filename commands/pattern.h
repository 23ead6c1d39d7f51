#pragma once

// The pattern aggregate (stream "pattern-{pattern_id}", pattern_id =
// pattern_id(domain, signature) in commands/ids.h): observe an outcome of a
// pattern, retire it. Functions as described in commands/aggregate.h.

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "commands/aggregate.h"

namespace engram::commands::pattern {

// The largest |reward| an observation may carry.
inline constexpr double kMaxRewardMagnitude = 1e9;

inline constexpr std::array<std::string_view, 2> kOutcomeNames = {"success", "failure"};

struct State {
  bool observed = false;
  bool retired = false;
  size_t approx_bytes() const;
};

struct Observe {
  std::string pattern_id;
  std::string domain;
  std::string signature;
  std::string context;  // FlexBuffer; empty when none
  bool success = false;
  double reward = 0;
  std::optional<std::string> agent_id;
};
struct Retire {
  std::string pattern_id;
  std::string reason;
};

struct Command {
  using State = pattern::State;
  std::variant<Observe, Retire> v;
};

inline constexpr std::array<std::string_view, 2> kCommandTypes = {"ObservePattern",
                                                                  "RetirePattern"};

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc);
// The command's type, and its body as parse() reads it back.
std::string_view type_of(const Command& c);
nlohmann::json to_json(const Command& c);
std::string stream(const Command& c);
Needs needs(const Command& c);
result<void> authorize(const Command& c, const Principal& p);
result<Events> decide(const State& s, const Command& c, const Context& ctx);
const EventTable<State>& events();

}  // namespace engram::commands::pattern
