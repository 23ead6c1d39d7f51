#pragma once

// The command bus: the write side's single entry point.
//
// Contract
// - A command comes typed (TypedRequest: an aggregate's command value, for
//   in-process callers such as sagas) or as JSON (CommandRequest: a type and
//   its documented body, docs/commands.md, for adapters). JSON is parsed into
//   the typed form; a typed command is checked by the same parser (its
//   to_json read back), so both forms obey the same field rules. A bad field
//   fails with kind malformed, naming the field as a JSON pointer.
// - Then, for either form: the principal must be allowed the command, the
//   target aggregate's state is loaded (through a cache bounded by
//   BusOptions; an aggregate whose stream grows without bound keeps bounded
//   state and reads single entities through the log's entity index), the
//   command is decided and the events are appended with the aggregate's
//   version as the expected version. Nothing is written unless every check
//   passes.
// - Without an expected version (or with "any" / "stream_exists"), a
//   command that loses a race (the stream moved) is decided again against
//   the new state, up to BusOptions::max_conflict_retries times; with an
//   exact one or "no_stream" a mismatch fails with kind conflict and the
//   actual version.
// - Idempotency key: the command id and the event ids are derived from
//   (principal subject, key, index) (command_id_for). The same key with the
//   same command returns the first outcome again (replayed = true) and
//   writes nothing, for as long as the log's dedupe window remembers the
//   ids; the same key with another command fails with code
//   idempotency_key_reused (kind conflict).
// - The command id, the causation id, the correlation id (or, when nil, the
//   command id) and the principal's subject (as actor) are recorded in every
//   event written.
//
// Threads (docs/architecture.md, "Threads")
// - All of a command's work (parsing, loading state, key lookups, deciding,
//   re-deciding after a lost race, idempotency lookups) and its `done` run
//   on the bus's executor: a pool of BusOptions::threads threads with
//   core::ThreadRole::bus, or BusOptions::executor when given. The log's
//   append callback only hands the outcome back to it; no bus work runs on
//   a log thread (asserted). The outcomes of one group commit are handled
//   in turn on one bus thread (core::SerialQueue: one wake-up per group,
//   not per command), so `done` must be short; re-decisions after a lost
//   race go back to the pool.
// - Admission is bounded: when BusOptions::max_queued_commands commands wait
//   for a thread, execute() refuses the next with kind overloaded (HTTP 503,
//   retry); while the bus is being destroyed, with kind unavailable
//   (shutting_down).
// - `done` is called exactly once, on a bus thread; only a command refused
//   at admission is answered on the caller's thread, before execute()
//   returns (so a caller must not hold a lock that its `done` takes).
// - Destroying the bus waits for the commands in flight to be answered.
//   The Log (and its key store) must outlive the bus.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "commands/aggregates.h"
#include "commands/errors.h"
#include "commands/limits.h"
#include "commands/principal.h"
#include "core/event.h"
#include "core/executor.h"
#include "core/expected_version.h"
#include "core/keystore.h"
#include "core/log.h"
#include "core/result.h"
#include "core/uuid.h"

namespace engram::commands {

// Who issues a command and in what context; both forms carry it.
struct CommandOrigin {
  Principal principal;
  // 1..128 printable ASCII characters (commands/idempotency.h). A saga
  // derives it from (instance, step, attempt), which makes the command id
  // deterministic (command_id_for).
  std::optional<std::string> idempotency_key;
  core::Uuid correlation_id;  // nil: the command id is used
  // What caused the command (the event or command it reacts to); nil for a
  // command a person or agent issued on its own. Recorded in every event
  // written, beside the command id, so audit can rebuild the causation tree.
  core::Uuid causation_id;
};

// A command as JSON, as an adapter receives it.
struct CommandRequest : CommandOrigin {
  std::string type;  // "RegisterAgent"
  std::string body;  // a JSON object; may hold "expected_version"
  // The body already parsed, by an adapter that refuses malformed JSON
  // itself (so it is parsed once); when set, `body` is not read.
  std::optional<nlohmann::json> parsed_body;
};

// A command as a value: task::Command{task::Assign{"t1", "a1"}}, ... An
// empty id of a creation command (RequestResearch's task_id,
// RecordKnowledge's knowledge_id, StoreMemory's memory_id) means the command
// id, as an absent one does in JSON.
struct TypedRequest : CommandOrigin {
  AnyCommand command;
  // nullopt: decide against the stream as it is and retry lost races (JSON
  // without "expected_version").
  std::optional<core::ExpectedVersion> expected_version;
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
  bool replayed = false;  // an earlier request with the same idempotency key
  std::vector<WrittenEvent> events;
  // {"stream", "version", "first_position", "last_position", "command_id",
  //  "replayed", "events": [{"position", "version", "type", "id", "data"}]}
  nlohmann::json to_json() const&;
  nlohmann::json to_json() &&;  // moves the events' data instead of copying it
};

struct BusOptions : Limits {
  size_t state_cache_entries = 100'000;
  size_t state_cache_bytes = 64 << 20;  // approximate size of cached aggregate states
  int max_conflict_retries = 3;
  // The bus's own pool (ThreadRole::bus): its threads, and how many
  // commands may wait for one before execute() answers overloaded.
  size_t threads = 4;
  size_t max_queued_commands = 10'000;
  // When set, the bus runs its work here instead of on a pool of its own
  // (threads and max_queued_commands are then unused): the executor's
  // try_post is the admission bound. It must outlive the bus, and its
  // threads must not be the log's.
  core::Executor* executor = nullptr;
};

struct BusStats {
  uint64_t commands_ok = 0;
  uint64_t commands_failed = 0;
  uint64_t commands_refused = 0;  // overloaded or stopping at admission (also counted as failed)
  uint64_t conflict_retries = 0;
  uint64_t replays = 0;
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t cache_entries = 0;
  uint64_t cache_bytes = 0;
};

class CommandBus {
 public:
  // Rebuilds the log's entity index first when it was made by another
  // extractor than this module's (kEntityIndexName), or by none (a log
  // written before the index existed): that reads the whole log once. When
  // that fails, status() says why and every command fails with it.
  CommandBus(core::Log& log, core::KeyStore& keys, BusOptions options = {});
  ~CommandBus();
  CommandBus(const CommandBus&) = delete;
  CommandBus& operator=(const CommandBus&) = delete;

  // Ready, or why every command fails (the entity index could not be
  // prepared: a read-only log, a storage error).
  core::result<void> status() const;

  using Done = std::function<void(result<CommandOutcome>)>;
  void execute(CommandRequest request, Done done);
  void execute(TypedRequest request, Done done);
  // execute() that waits; for tools and tests. Must not be called on a bus
  // thread (it would wait for itself) nor on an I/O or log thread.
  result<CommandOutcome> execute_sync(CommandRequest request);
  result<CommandOutcome> execute_sync(TypedRequest request);

  // The command id a keyed command of `subject` gets, known before it runs.
  static core::Uuid command_id_for(std::string_view subject, std::string_view idempotency_key);

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
