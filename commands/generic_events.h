#pragma once

// Generic events: raw events a client appends to a stream the domain does
// not own, through `engram append` (one event per NDJSON line) or
// `POST /v1/streams/{stream}` (a body of events). One parser serves both, so
// the CLI and the API accept exactly the same events.
//
// An event is a JSON object with these members and no others:
//   "type"      required, a non-empty string
//   "data"      required, a JSON object (stored as a FlexBuffer)
//   "id"        optional, a non-nil UUID; re-sending it deduplicates
//   "metadata"  optional, a JSON object (stored as a FlexBuffer)
// The log applies its own bounds after this (type and event bytes,
// events per append).
//
// Errors are CommandErrors of kind malformed: code missing_field,
// invalid_field or unknown_field, `field` the JSON pointer of the member
// ("/events/2/type"), `detail` naming it.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "commands/errors.h"
#include "core/event.h"
#include "core/expected_version.h"
#include "core/flexjson.h"
#include "core/uuid.h"

namespace engram::commands {

// Generic events go only to streams the domain does not own: a domain
// stream ("agent-…", "memory-…", commands/aggregates.h) is written by its
// commands alone, which keep its rules and seal memories. A domain stream is
// refused with kind forbidden, code domain_stream.
result<void> check_generic_stream(std::string_view stream);

struct GenericLimits {
  size_t max_events = 100;  // per request body
  size_t max_json_depth = core::kMaxJsonDepth;
};

// One event; `pointer` is where it sits in the document ("" for a whole
// NDJSON line, "/events/2" in a body).
result<core::EventData> parse_generic_event(const nlohmann::json& event, std::string_view pointer,
                                            const GenericLimits& limits);

struct GenericAppend {
  core::ExpectedVersion expected = core::ExpectedVersion::any();
  std::vector<core::EventData> events;
};

// A request body: {"expected_version": optional, core/expected_version.h's
// JSON form (default any), "events": [1..max_events events]}.
result<GenericAppend> parse_generic_append(const nlohmann::json& body, const GenericLimits& limits);

// With an Idempotency-Key, the ids are functions of (subject, key), so a
// retried request makes the same ids and the log's dedupe answers it with
// the first result: every event without an id gets one from its index, and
// the append's command id comes from generic_command_id.
void derive_generic_event_ids(std::vector<core::EventData>& events, std::string_view subject,
                              std::string_view key);
core::Uuid generic_command_id(std::string_view subject, std::string_view key);

}  // namespace engram::commands
