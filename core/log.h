#pragma once

// The event log: engram's single source of truth.
//
// Contract
// - Positions are global, gap-free and start at 1. A stream's versions are
//   contiguous and start at 1; version 0 means "no such stream".
// - append() is atomic: all of its events are stored, contiguously in
//   position and version, or none is. It returns only after the events are
//   fsynced (RocksDB WriteOptions::sync); a returned position is durable.
// - Idempotency: re-appending events whose ids are already stored on the
//   same stream with the same content returns the original result (with
//   deduplicated = true) and writes nothing, across restarts, as long as the
//   original is within the dedupe window (LogOptions::dedupe_window_events).
//   The same id with other content, another stream, or only some ids of an
//   earlier append already stored, is errc::duplicate_id_conflict.
// - Every event is hash-chained: hash = SHA-256 over the previous hash and
//   the event's canonical bytes (docs/log-format.md). verify() walks it.
// - A wrong_expected_version error is returned only once the version it
//   reports (actual_version) is durable and readable, so a caller may
//   re-read and retry at once.
// - A failed write or fsync is sticky: every later append fails with
//   errc::read_only and health() says why. Reads keep working.
// - A full append queue fails fast with errc::overloaded; nothing waits
//   without bound.
// - Readers never block the writer, and see only acknowledged events: reads
//   stop at head().
// - Thread-safe: every method may be called from any thread. A Subscription
//   must not outlive its Log.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/data_dir.h"
#include "core/event.h"
#include "core/expected_version.h"
#include "core/metrics.h"
#include "core/named_type.h"
#include "core/result.h"
#include "core/sha256.h"

namespace rocksdb {
class Env;
}

namespace engram::core {

struct LogOptions {
  // Open: create the directory and log when missing.
  bool create_if_missing = true;
  // Open without taking the directory lock, for inspecting a log another
  // process may be writing (replay, audit). Sees the log as of open; append
  // fails with errc::read_only.
  bool read_only = false;
  // With read_only: open as a RocksDB secondary instance that keeps its own
  // files here. It follows a running writer without blocking it, survives
  // the writer's compactions, and catch_up() brings in what was written
  // since. A secondary may see the newest group before its fsync returns.
  std::filesystem::path secondary_dir;

  // Group commit. Appends wait in a queue of at most max_queue_requests;
  // the writer takes up to max_group_requests / max_group_bytes of them into
  // one RocksDB WriteBatch and one fsync.
  size_t max_queue_requests = 16384;
  size_t max_group_requests = 2048;
  size_t max_group_bytes = 16 << 20;

  // One append: at most this many events and bytes (payload + metadata per
  // event, summed); larger requests fail with errc::invalid_argument.
  size_t max_events_per_append = 1000;
  size_t max_event_bytes = 1 << 20;
  size_t max_append_bytes = 8 << 20;
  size_t max_stream_name_bytes = 256;
  size_t max_event_type_bytes = 128;
  size_t max_actor_bytes = 256;
  size_t max_entity_bytes = 256;  // EventData::entity

  // An event id is remembered for idempotency while the log holds fewer than
  // this many events after it. Older ids are forgotten (compaction drops
  // them), and re-appending one stores a new event.
  uint64_t dedupe_window_events = 10'000'000;

  // Stream heads the writer keeps in memory; misses read RocksDB.
  size_t stream_head_cache_entries = 100'000;
  // Upper bound on max_count for a single read.
  size_t max_read_count = 10'000;
  // RocksDB block cache shared by all column families.
  size_t block_cache_bytes = 128 << 20;
  // How long the writer polls for the next append before it sleeps. A
  // futex wake-up costs tens of microseconds on a VM, so polling helps a
  // lone appender; under many concurrent appenders on few cores the polling
  // takes CPU from them, and 0 is better (the HTTP server uses 0).
  uint64_t writer_spin_ns = 50'000;

  // Where recorded-at times come from; null means the system clock.
  std::shared_ptr<Clock> clock;
  // The RocksDB environment; null means the default. Tests pass one whose
  // file system fails writes or fsyncs on demand (core/fault_fs.h).
  std::shared_ptr<rocksdb::Env> env;
};

struct AppendResult {
  Position first;             // position of the first event
  Position last;              // position of the last event
  StreamVersion version;      // the stream's version after the append (= last event's version)
  bool deduplicated = false;  // true: an earlier identical append; nothing was written
};

struct Head {
  Position position;  // last acknowledged event, 0 when the log is empty
  Hash256 hash{};     // its hash; all zero when the log is empty
};

enum class Direction { forward, backward };

struct Health {
  bool writable = true;
  std::string reason;  // why not, when not
};

struct VerifyReport {
  uint64_t events_checked = 0;
  Head head;  // the last verified event
  // A whole-log verify (from 1 to the head) also recomputes the Merkle tree
  // and compares every stored node, and checks the stream index and stream
  // heads against the events.
  bool whole_log = false;
  Hash256 tree_root{};  // the tree over events 1..head.position (whole_log only)
  uint64_t tree_nodes_checked = 0;
  uint64_t index_entries_checked = 0;
  uint64_t streams_checked = 0;
  // Set when the chain is broken: the first bad position and what is wrong
  // (position 0 when the problem is not at one event, as a stream head).
  std::optional<Position> first_bad;
  std::string problem;
  bool ok() const { return !first_bad.has_value(); }
};

// Counters for metrics and benchmarks; monotonic since open.
struct LogStats {
  uint64_t append_requests = 0;
  uint64_t events_appended = 0;
  uint64_t deduplicated_requests = 0;
  uint64_t groups_committed = 0;              // WriteBatches written
  uint64_t syncs = 0;                         // WAL syncs (one may cover several groups)
  uint64_t sync_nanos_total = 0;              // time spent in them
  uint64_t queue_depth = 0;                   // now
  uint64_t max_group_requests = 0;            // largest group so far
  metrics::HistogramSnapshot group_requests;  // requests per group
  metrics::HistogramSnapshot sync_seconds;    // WAL sync latency
};

class Subscription;
struct AppendRequest;

class Log {
 public:
  // Opens (or creates) the log of the data directory `dir` (the log's
  // RocksDB is at its root, DataDir::log_dir()). A writable open of a data
  // dir written by an older engram migrates it first: the keys and read
  // models it kept inside the log move to their own databases
  // (core/data_dir.h). Errors: errc::not_found (no log and
  // !create_if_missing), errc::locked (another process has it open for
  // writing), errc::corruption (meta and events disagree), errc::io_error,
  // errc::invalid_argument (inconsistent options; a read-only open of a
  // data dir that still needs the migration).
  static result<std::unique_ptr<Log>> open(const DataDir& dir, const LogOptions& options = {});
  static result<std::unique_ptr<Log>> open(const std::filesystem::path& dir,
                                           const LogOptions& options = {});
  // Drains queued appends (they complete normally), then closes.
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Appends `events` to `stream` if its version satisfies `expected`.
  // Blocks until the group holding the append is fsynced, so it must not be
  // called on an I/O or log thread (core/thread_role.h; asserted).
  result<AppendResult> append(std::string_view stream, ExpectedVersion expected,
                              std::span<const EventData> events, const AppendContext& context = {});

  // The same append without blocking a thread through the fsync (for event
  // loops). If the append was queued, returns success and later calls
  // `done` exactly once with the outcome, on one of the log's threads
  // (ThreadRole::log_writer or log_syncer): it must only hand the outcome
  // to another thread (an Executor, an event loop) and return; anything
  // more delays every later group commit (docs/architecture.md, "Threads"). If it was not queued (bad
  // input, overloaded, read-only, closing) the error is returned here and
  // `done` is never called.
  using AppendCallback = std::function<void(result<AppendResult>)>;
  result<void> append_async(std::string_view stream, ExpectedVersion expected,
                            std::span<const EventData> events, const AppendContext& context,
                            AppendCallback done);

  // Events of one stream starting at version `from` (forward: from, from+1,
  // ...; backward: from, from-1, ...). Backward from StreamVersion(UINT64_MAX)
  // starts at the last event. At most min(max_count, max_read_count) events.
  result<std::vector<RecordedEvent>> read_stream(std::string_view stream, StreamVersion from,
                                                 size_t max_count, Direction direction) const;
  // Events of all streams from position `from` forward, in position order.
  result<std::vector<RecordedEvent>> read_all(Position from, size_t max_count) const;
  // The stream's current version; 0 when it does not exist.
  result<StreamVersion> stream_version(std::string_view stream) const;

  Head head() const;
  // Waits until head() >= position or the timeout runs out; returns whether
  // the position was reached.
  bool wait_for(Position position, std::chrono::milliseconds timeout) const;

  // A cursor that delivers every event after `after`: stored ones first,
  // then new ones as they are acknowledged.
  std::unique_ptr<Subscription> subscribe(Position after) const;

  // Walks the hash chain over [from, to] (to capped at head), checking every
  // envelope, position, link and hash, and that meta's head hash matches.
  // Over the whole log it also checks the Merkle tree's stored nodes, the
  // stream index and the stream heads (VerifyReport::whole_log). `threads`
  // workers (at most 16) read and check chunks of 2^16 positions each; 0
  // checks them on the calling thread.
  // `progress(done, total)` is called now and then when given.
  result<VerifyReport> verify(Position from, Position to,
                              const std::function<void(uint64_t, uint64_t)>& progress = {},
                              size_t threads = 2) const;

  // The log's id; signed checkpoints name it. It belongs to the log, not to
  // the node that holds it: a replica of this log has the same id.
  const Uuid& log_id() const;

  // A secondary open (LogOptions::secondary_dir): takes in what the writer
  // has written since, and returns the new head. errc::invalid_argument on
  // any other open.
  result<Head> catch_up();

  // The entity index (EventData::entity): the position of the latest
  // acknowledged event of `stream` that named `entity`; nullopt when none
  // did. One RocksDB seek; it never reads the stream.
  result<std::optional<Position>> latest_entity_event(std::string_view stream,
                                                      std::string_view entity) const;
  // What names the entities of stored events (the domain knows, core does
  // not): the entity of one event, or empty.
  using EntityExtractor = std::function<std::string(const RecordedEvent&)>;
  // The name given to the last rebuild_entity_index(); empty when none ran.
  result<std::string> entity_index_name() const;
  // Rebuilds the entity index from every stored event with `extract` and
  // records `name` (1..64 bytes), so a caller whose extractor changes (or a
  // log written before the index existed) rebuilds once. Reads the whole
  // log; call it at start, before any append that names entities.
  // errc::read_only on a read-only log.
  result<void> rebuild_entity_index(std::string_view name, const EntityExtractor& extract);

  // The event stored under this id while the dedupe window remembers it;
  // nullopt when it is unknown, forgotten or not yet acknowledged.
  result<std::optional<RecordedEvent>> find_event(const Uuid& id) const;

  Health health() const;
  LogStats stats() const;
  const DataDir& dir() const;

  struct Impl;

 private:
  friend class LogTree;
  explicit Log(std::unique_ptr<Impl> impl);
  result<void> prepare(std::string_view stream, ExpectedVersion expected,
                       std::span<const EventData> events, const AppendContext& context,
                       AppendRequest& req) const;
  std::unique_ptr<Impl> impl_;
};

class Subscription {
 public:
  Subscription(const Log& log, Position after) : log_(log), last_(after) {}
  // Up to max_count events after the last delivered one; when caught up,
  // waits up to `timeout` for more. An empty result means none arrived.
  result<std::vector<RecordedEvent>> next(size_t max_count, std::chrono::milliseconds timeout);
  // The position of the last delivered event.
  Position position() const { return last_; }

 private:
  const Log& log_;
  Position last_;
};

}  // namespace engram::core
