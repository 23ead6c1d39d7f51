#pragma once

// Who issues a command: a person or an agent (as established by an adapter
// from a verified token), or the system itself (a saga, a maintenance job).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace engram::commands {

enum class Role : uint8_t { admin, writer, reviewer, reader, replicator };
const char* role_name(Role r) noexcept;
std::optional<Role> parse_role(std::string_view name) noexcept;

// System principals' subjects start with this; the bus refuses it from any
// other principal, so no token can make events that read as the system's.
inline constexpr std::string_view kSystemSubjectPrefix = "system:";

struct Principal {
  std::string subject;  // recorded as the events' actor
  std::vector<Role> roles;
  std::optional<std::string> agent_id;  // set: agent-scoped; may act only as this agent
  // The system acting on its own (Principal::system): not a person, so it
  // never stands in for one where a person must decide (docs/commands.md,
  // "Authorization").
  bool is_system = false;

  bool has(Role r) const;

  // The system principal `name` (for example "saga:onboarding"): subject
  // "system:" + name, the role writer, no agent scope. It may issue every
  // command a writer may, and no checkpoint review: approving or rejecting
  // a human checkpoint needs a person, whatever roles a principal holds.
  static Principal system(std::string_view name);
};

}  // namespace engram::commands
