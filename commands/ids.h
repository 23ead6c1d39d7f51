#pragma once

// Aggregate ids, the streams they live on, and ids derived from an
// Idempotency-Key.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/uuid.h"

namespace engram::commands {

// Stream prefixes owned by the domain; an aggregate's stream is prefix + id.
inline constexpr std::string_view kAgentStreamPrefix = "agent-";
inline constexpr std::string_view kProjectStreamPrefix = "project-";
inline constexpr std::string_view kTaskStreamPrefix = "task-";
inline constexpr std::string_view kKnowledgeStreamPrefix = "knowledge-";
inline constexpr std::string_view kMemoryStreamPrefix = "memory-";
inline constexpr std::string_view kPatternStreamPrefix = "pattern-";

// Pattern ids are this many lowercase hex digits of SHA-256(domain "\0" signature).
inline constexpr size_t kPatternIdHexDigits = 16;

// An aggregate id: 1..max_bytes of [A-Za-z0-9_.:-], starting with a letter or
// digit (so a UUID's text form is one).
bool valid_id(std::string_view id, size_t max_bytes);

std::string stream_name(std::string_view prefix, std::string_view id);

std::string pattern_id(std::string_view domain, std::string_view signature);
bool valid_pattern_id(std::string_view id);

// With an Idempotency-Key the command id and the event ids are functions of
// (subject, key), so two deliveries of one request make the same ids and
// collide in the log's dedupe instead of writing twice.
core::Uuid keyed_command_id(std::string_view subject, std::string_view key);
core::Uuid keyed_event_id(std::string_view subject, std::string_view key, uint64_t index);

// The ids of one command's events, known before deciding because sealed
// memory content is bound to its event id. With an Idempotency-Key they are
// derived from (subject, key, index); otherwise they are fresh UUIDv7s, made
// once and reused when the decision is retried.
class EventIds {
 public:
  static EventIds keyed(std::string subject, std::string key);
  static EventIds fresh();
  core::Uuid at(size_t index) const;

 private:
  std::optional<std::string> subject_;
  std::optional<std::string> key_;
  mutable std::vector<core::Uuid> fresh_;
};

}  // namespace engram::commands
