#pragma once

// The command bus: the write side's single entry point.
//
// Contract
// - execute() takes a command as JSON (its documented form, docs/commands.md),
//   validates it (a bad field fails with kind malformed, naming the field),
//   checks that the principal may issue it, rebuilds the target aggregate's
//   state from its stream (through a cache bounded by BusOptions), decides,
//   and appends the resulting events with the aggregate's version as the
//   expected version. Nothing is written unless every check passes.
// - When the request carries no expected_version and the append loses a race
//   (the stream moved), the bus re-decides against the new state, up to
//   BusOptions::max_conflict_retries times; with an explicit expected_version
//   a mismatch fails with kind conflict and the actual version.
// - Idempotency-Key: event ids are derived from (principal subject, key,
//   index). The same key with the same command type and body returns the
//   first outcome again (replayed = true) and writes nothing, for as long as
//   the log's dedupe window remembers the ids; the same key with another
//   body fails with code idempotency_key_reused (kind conflict).
// - The command id, the causation id, the correlation id (or, when nil, the
//   command id) and the principal's subject (as actor) are recorded in every
//   event written.
// - done is called exactly once, possibly on one of the log's threads; it
//   must return quickly.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/keystore.h"
#include "core/log.h"
#include "core/result.h"
#include "core/uuid.h"

namespace engram::commands {

enum class Role : uint8_t { admin, writer, reviewer, reader, replicator };
const char* role_name(Role r) noexcept;
std::optional<Role> parse_role(std::string_view name) noexcept;

// Who is asking, as established by the adapter (a verified token).
struct Principal {
  std::string subject;  // recorded as the events' actor
  std::vector<Role> roles;
  std::optional<std::string> agent_id;  // set: agent-scoped; may act only as this agent
  bool has(Role r) const;
};

struct CommandRequest {
  std::string type;  // "RegisterAgent"
  std::string body;  // a JSON object; may hold "expected_version"
  Principal principal;
  std::optional<std::string> idempotency_key;
  core::Uuid correlation_id;  // nil: the command id is used
  // What caused the command (the event or command it reacts to); nil for a
  // command a person or agent issued on its own. Recorded in every event
  // written, beside the command id, so audit can rebuild the causation tree.
  core::Uuid causation_id;
};

struct WrittenEvent {
  uint64_t position = 0;
  uint64_t version = 0;
  std::string type;
  core::Uuid id;
  nlohmann::json data;  // the decoded payload (render_event's "data")
};

struct CommandOutcome {
  std::string stream;
  uint64_t version = 0;  // the stream's version after the command
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  core::Uuid command_id;
  bool replayed = false;  // an earlier request with the same Idempotency-Key
  std::vector<WrittenEvent> events;
  // {"stream", "version", "first_position", "last_position", "command_id",
  //  "replayed", "events": [{"position", "version", "type", "id", "data"}]}
  nlohmann::json to_json() const;
};

// What went wrong, for the adapter to map onto its protocol.
enum class Failure : uint8_t {
  malformed,        // bad JSON or field (HTTP 400)
  unknown_command,  // no such command type (404)
  forbidden,        // the principal may not do this (403)
  not_found,        // the aggregate the command targets does not exist (404)
  conflict,         // expected version mismatch, idempotency key reuse (409)
  rule,             // a domain rule forbids it (422)
  overloaded,       // the log's queue is full (503, retry)
  unavailable,      // the log is read-only or closing (503)
  internal,         // storage failed (500)
};

struct CommandError {
  Failure kind = Failure::internal;
  std::string code;    // stable machine name: "agent_not_active", "invalid_field"
  std::string detail;  // for people
  std::string field;   // the offending field (JSON pointer, "/confidence"), when one is
  std::optional<uint64_t> actual_version;  // with conflicts
};

template <typename T>
using result = core::result<T, CommandError>;

struct BusOptions {
  size_t state_cache_entries = 100'000;
  size_t state_cache_bytes = 64 << 20;  // approximate size of cached aggregate states
  int max_conflict_retries = 3;
  size_t max_events_per_command = 100;
  size_t max_embedding_dims = 4096;
  size_t max_text_bytes = 256 << 10;  // title, body, content...
  size_t max_tags = 64;
  size_t max_id_bytes = 128;
  // Runs retries off the log's threads; null runs them inline.
  std::function<void(std::function<void()>)> post;
};

struct BusStats {
  uint64_t commands_ok = 0;
  uint64_t commands_failed = 0;
  uint64_t conflict_retries = 0;
  uint64_t replays = 0;
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t cache_entries = 0;
  uint64_t cache_bytes = 0;
};

class CommandBus {
 public:
  CommandBus(core::Log& log, core::KeyStore& keys, BusOptions options = {});
  ~CommandBus();
  CommandBus(const CommandBus&) = delete;
  CommandBus& operator=(const CommandBus&) = delete;

  using Done = std::function<void(result<CommandOutcome>)>;
  void execute(CommandRequest request, Done done);
  // execute() that waits; for tools and tests. Must not be called on a log thread.
  result<CommandOutcome> execute_sync(CommandRequest request);

  // Every command type, in documentation order.
  static const std::vector<std::string_view>& command_types();
  // Streams owned by the domain ("agent-…", "project-…", …): the generic
  // stream endpoint must not write them.
  static bool is_domain_stream(std::string_view stream);

  // An event as JSON: {"position", "stream", "version", "type", "id",
  // "schema_version", "command_id", "causation_id", "correlation_id",
  // "actor", "recorded_at" (RFC 3339 UTC), "data", "metadata", "hash",
  // "prev_hash"}. Domain payloads are decoded by their schema, FlexBuffers as
  // JSON; memory content is decrypted when its owner's key still exists and
  // is null (with "content_forgotten": true) when it does not.
  nlohmann::json render_event(const core::RecordedEvent& event) const;

  BusStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace engram::commands
