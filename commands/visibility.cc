#include "commands/visibility.h"

#include "commands/ids.h"

namespace engram::commands {
namespace {

// Admins not scoped to an agent see every memory.
bool sees_all_memories(const Principal& who) {
  return who.has(Role::admin) && !who.agent_id;
}

bool is_own_memory_stream(const Principal& who, std::string_view stream) {
  return who.agent_id && is_memory_stream(stream) &&
         stream.substr(kMemoryStreamPrefix.size()) == *who.agent_id;
}

}  // namespace

bool is_memory_stream(std::string_view stream) {
  return stream.starts_with(kMemoryStreamPrefix);
}

bool may_read_stream(const Principal& who, std::string_view stream) {
  return !who.agent_id || !is_memory_stream(stream) || is_own_memory_stream(who, stream);
}

bool may_search_memories(const Principal& who, std::string_view owner) {
  return who.has(Role::admin) || who.agent_id == owner;
}

bool sees_memory_content(const Principal& who, std::string_view stream) {
  return !is_memory_stream(stream) || sees_all_memories(who) || is_own_memory_stream(who, stream);
}

void redact_event(nlohmann::json& event, const Principal& who) {
  const auto stream = event.find("stream");
  if (stream == event.end() || !stream->is_string()) return;
  if (sees_memory_content(who, stream->get_ref<const std::string&>())) return;
  auto& data = event["data"];
  if (data.is_object() && data.contains("content")) {
    data["content"] = nullptr;
    data["content_redacted"] = true;
  }
}

void redact_events_within(nlohmann::json& answer, const Principal& who) {
  if (sees_all_memories(who)) return;
  if (answer.is_object() && answer.contains("data")) redact_event(answer, who);
  if (answer.is_structured()) {
    for (auto& item : answer.items()) redact_events_within(item.value(), who);
  }
}

}  // namespace engram::commands
