#include "commands/generic_events.h"

#include <fmt/format.h>

#include <string>

#include "commands/aggregates.h"
#include "commands/errors.h"
#include "core/json.h"

namespace engram::commands {

result<void> check_generic_stream(std::string_view stream) {
  if (!is_domain_stream(stream)) return {};
  return forbidden("domain_stream",
                   fmt::format("'{}' belongs to the domain; send a command instead", stream));
}

namespace {

using nlohmann::json;

std::string member(std::string_view pointer, std::string_view name) {
  return std::string(pointer) + "/" + core::json_pointer_token(name);
}

// A JSON object as a FlexBuffer; `what` is the member's name.
result<std::string> object_to_flex(const json& v, std::string_view pointer, std::string_view what,
                                   const GenericLimits& limits) {
  if (!v.is_object()) {
    return malformed(member(pointer, what), "invalid_field",
                     fmt::format("'{}' must be a JSON object", what));
  }
  auto flex = core::json_to_flex(v, limits.max_json_depth);
  if (!flex) {
    return malformed(member(pointer, what), "invalid_field",
                     fmt::format("'{}': {}", what, flex.error().message));
  }
  return std::move(*flex);
}

}  // namespace

result<core::EventData> parse_generic_event(const json& event, std::string_view pointer,
                                            const GenericLimits& limits) {
  if (!event.is_object()) {
    return malformed(std::string(pointer), "invalid_field", "an event must be a JSON object");
  }
  for (const auto& [k, v] : event.items()) {
    if (k != "type" && k != "data" && k != "id" && k != "metadata") {
      return malformed(member(pointer, k), "unknown_field", fmt::format("unknown field '{}'", k));
    }
  }
  core::EventData out;
  out.payload_format = core::PayloadFormat::flexbuffer;

  const auto type = event.find("type");
  if (type == event.end()) {
    return malformed(member(pointer, "type"), "missing_field", "'type' is required");
  }
  if (!type->is_string() || type->get_ref<const std::string&>().empty()) {
    return malformed(member(pointer, "type"), "invalid_field", "'type' must be a non-empty string");
  }
  out.type = type->get<std::string>();

  if (const auto id = event.find("id"); id != event.end()) {
    auto u = id->is_string() ? core::Uuid::parse(id->get_ref<const std::string&>())
                             : std::optional<core::Uuid>();
    if (!u || u->is_nil()) {
      return malformed(member(pointer, "id"), "invalid_field", "'id' must be a non-nil UUID");
    }
    out.id = *u;
  }

  const auto data = event.find("data");
  if (data == event.end()) {
    return malformed(member(pointer, "data"), "missing_field",
                     "'data' is required (a JSON object)");
  }
  auto payload = object_to_flex(*data, pointer, "data", limits);
  if (!payload) return payload.error();
  out.payload = std::move(*payload);

  if (const auto meta = event.find("metadata"); meta != event.end()) {
    auto metadata = object_to_flex(*meta, pointer, "metadata", limits);
    if (!metadata) return metadata.error();
    out.metadata = std::move(*metadata);
  }
  return out;
}

result<GenericAppend> parse_generic_append(const json& body, const GenericLimits& limits) {
  if (!body.is_object()) return malformed("", "invalid_field", "the body must be a JSON object");
  for (const auto& [k, v] : body.items()) {
    if (k != "expected_version" && k != "events") {
      return malformed(member("", k), "unknown_field", fmt::format("unknown field '{}'", k));
    }
  }
  GenericAppend out;
  if (const auto ev = body.find("expected_version"); ev != body.end()) {
    auto expected = core::ExpectedVersion::from_json(*ev);
    if (!expected) {
      return malformed("/expected_version", "invalid_field",
                       fmt::format("'expected_version' must be {}", core::kExpectedVersionHelp));
    }
    out.expected = *expected;
  }
  const auto events = body.find("events");
  if (events == body.end()) return malformed("/events", "missing_field", "'events' is required");
  if (!events->is_array() || events->empty() || events->size() > limits.max_events) {
    return malformed("/events", "invalid_field",
                     fmt::format("'events' must be an array of 1 to {} events", limits.max_events));
  }
  out.events.reserve(events->size());
  for (size_t i = 0; i < events->size(); ++i) {
    auto e = parse_generic_event((*events)[i], fmt::format("/events/{}", i), limits);
    if (!e) return e.error();
    out.events.push_back(std::move(*e));
  }
  return out;
}

void derive_generic_event_ids(std::vector<core::EventData>& events, std::string_view subject,
                              std::string_view key) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (!events[i].id.is_nil()) continue;
    events[i].id =
        core::Uuid::from_name(fmt::format("engram/generic-event/v1\n{}\n{}\n{}", subject, key, i));
  }
}

core::Uuid generic_command_id(std::string_view subject, std::string_view key) {
  return core::Uuid::from_name(fmt::format("engram/generic-command/v1\n{}\n{}", subject, key));
}

}  // namespace engram::commands
