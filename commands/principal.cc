#include "commands/principal.h"

#include <algorithm>

namespace engram::commands {

const char* role_name(Role r) noexcept {
  switch (r) {
    case Role::admin:
      return "admin";
    case Role::writer:
      return "writer";
    case Role::reviewer:
      return "reviewer";
    case Role::reader:
      return "reader";
    case Role::replicator:
      return "replicator";
  }
  return "unknown";
}

std::optional<Role> parse_role(std::string_view name) noexcept {
  for (Role r : {Role::admin, Role::writer, Role::reviewer, Role::reader, Role::replicator}) {
    if (name == role_name(r)) return r;
  }
  return std::nullopt;
}

bool Principal::has(Role r) const {
  return std::find(roles.begin(), roles.end(), r) != roles.end();
}

Principal Principal::system(std::string_view name) {
  Principal p;
  p.subject = std::string(kSystemSubjectPrefix) + std::string(name);
  p.roles = {Role::writer};
  p.is_system = true;
  return p;
}

}  // namespace engram::commands
