#pragma once

// The audit queries: who did what, when, why, and has anything been
// altered. One implementation serves `engram audit` (on a stopped server's
// data dir, or a running one's through a RocksDB secondary instance) and the
// admin routes under /v1/audit/ (on the server's own log). Every answer is
// JSON, documented in docs/cli.md; the CLI renders tables from the same
// objects.
//
// Content follows CommandBus::render_event: memory content is shown while
// its owner's key exists and is null with "content_forgotten": true once the
// subject was forgotten (never an error, and verification still passes,
// since the chain covers the ciphertext).
//
// Errors: errc::invalid_argument for bad input (a position past the head,
// no checkpoint covering a position), errc::not_found for an unknown stream
// or correlation, errc::overloaded when the audit index trails the log by
// more than the bound, storage errors as they come.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "core/checkpoint.h"
#include "core/keystore.h"
#include "core/log.h"
#include "core/model_store.h"

namespace engram::audit {

using json = nlohmann::json;

inline constexpr size_t kMaxHistoryEvents = 10'000;
inline constexpr size_t kMaxTraceEvents = 10'000;
inline constexpr size_t kMaxActorEvents = 10'000;

struct Sources {
  core::Log& log;
  // Renders an event row's content (CommandBus::render_event, or
  // commands::render_event_json over the data dir's key store).
  std::function<json(const core::RecordedEvent&)> render;
  // The audit projection's store (projections/audit.h); null when none exists.
  const core::ModelStore* index = nullptr;
  // The data dir's checkpoint file (core::DataDir::checkpoints_file()).
  std::filesystem::path checkpoints;
};

// Every event of `stream` from version `from_version`, at most `limit`
// (<= kMaxHistoryEvents): {"stream", "version" (the stream's version),
// "events": [event rows], "truncated"}. An event row: {"position",
// "stream", "version", "type", "id", "recorded_at", "actor", "command_id",
// "causation_id", "correlation_id", "data", ...} as render_event.
core::result<json> history(const Sources& s, std::string_view stream, uint64_t from_version,
                           size_t limit);

// The causation tree of one correlation: {"correlation_id", "events" (how
// many), "truncated", "roots": [command nodes]}. A command node:
// {"command_id", "caused_by", "actor", "stream", "events": [event nodes],
// "caused": [command nodes caused by the command itself]}; an event node is
// an event row with "caused": [command nodes whose causation id is the
// event's id]. Events of other correlations that a traced message caused are
// followed too (a saga may start its own), up to kMaxTraceEvents.
core::result<json> trace(const Sources& s, const core::Uuid& correlation);

// What one actor did in [since_ns, until_ns], at most `limit`
// (<= kMaxActorEvents), after the cursor position `after` (0: from the
// start): {"actor", "events": [event rows], "truncated", "next_cursor"
// (the last position, when truncated)}.
core::result<json> actor(const Sources& s, std::string_view actor, int64_t since_ns,
                         int64_t until_ns, core::Position after, size_t limit);

// The aggregate owning `stream` as of log position `at` (commands/inspect.h):
// {"stream", "at", "version", "position", "recorded_at", "state"}.
core::result<json> state(const Sources& s, std::string_view stream, core::Position at);

// The signed checkpoints in the data dir's file: {"public_key", "key_id",
// "checkpoints": [checkpoint JSON]}, oldest first.
core::result<json> checkpoints(const Sources& s);

// An inclusion proof of the event at `position` against a signed checkpoint:
// the one of tree size `tree_size` when given, else the newest that covers
// the position. {"format": "engram-inclusion-proof-v1", "position",
// "tree_size", "event_hash", "envelope" (base64: the stored event, so a
// verifier recomputes its hash), "path": [hex], "checkpoint": {...}}.
core::result<json> inclusion_proof(const Sources& s, core::Position position,
                                   std::optional<core::Position> tree_size);

// A consistency proof between two signed checkpoints, named by their tree
// sizes: {"format": "engram-consistency-proof-v1", "old": {...}, "new":
// {...}, "path": [hex]}.
core::result<json> consistency_proof(const Sources& s, core::Position old_size,
                                     core::Position new_size);

// Checks a proof document with no database: the checkpoints' signatures
// (under `trusted` when given, else the key the checkpoint names, which
// "key_pinned": false reports), the envelope's hash, and the Merkle path.
// {"ok", "kind": "inclusion"|"consistency", "key_id", "key_pinned",
// "problem" (when not ok)}.
json verify_proof(const json& proof, const std::optional<core::PublicKey>& trusted);

struct VerifyOptions {
  core::Position from{1};
  core::Position to{UINT64_MAX};
  // Checkpoints to hold the log to: an exported file, else the data dir's
  // own (when it exists). Each must be signed by `trusted` (else by the data
  // dir's public key file, <data>/audit/signing-key.pem.pub).
  std::optional<std::filesystem::path> checkpoints_file;
  std::optional<core::PublicKey> trusted;
  std::filesystem::path public_key_file;  // the data dir's, used when `trusted` is unset
  size_t threads = 2;
  std::function<void(uint64_t, uint64_t)> progress;
};

// The hash chain (core::Log::verify), then every checkpoint: its signature,
// its log id, that the log still reaches its position, that the event there
// still has its head hash and that the tree over the first `position`
// events still has its root. {"ok", "events_checked", "head_position",
// "head_hash", "tree_root", "index_entries_checked", "tree_nodes_checked",
// "first_bad_position", "problem", "checkpoints": {"file", "checked",
// "key_id", "ok", "first_bad" : {"position", "problem"},
// "newer_than_verified"}}. A checkpoint beyond the log's head fails as a drop
// unless the log (a secondary following a running writer) has reached it
// by the time it is read: then it and the later ones were signed after the
// verify's view and are counted in "newer_than_verified".
core::result<json> verify(const Sources& s, const VerifyOptions& o);

}  // namespace engram::audit
