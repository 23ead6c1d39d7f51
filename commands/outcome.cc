#include "commands/bus.h"

namespace engram::commands {

nlohmann::json CommandOutcome::to_json() const& {
  return CommandOutcome(*this).to_json();
}

nlohmann::json CommandOutcome::to_json() && {
  nlohmann::json events_json = nlohmann::json::array();
  for (auto& e : events) {
    events_json.push_back({{"position", e.position},
                           {"version", e.version},
                           {"type", std::move(e.type)},
                           {"id", e.id.to_string()},
                           {"data", std::move(e.data)}});
  }
  return {{"stream", stream},
          {"version", version},
          {"first_position", first_position},
          {"last_position", last_position},
          {"command_id", command_id.to_string()},
          {"replayed", replayed},
          {"events", std::move(events_json)}};
}

}  // namespace engram::commands
