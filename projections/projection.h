#pragma once

// A projection: a named, versioned, deterministic state machine over the
// log that maintains one read model.
//
// Contract
// - apply() gets events in log order, only of the types event_types()
//   names (all types when it names none), and writes its read model through
//   `batch` only: no other side effects. The runtime commits the batch with
//   the position of the last event seen, atomically, so each event changes
//   the model exactly once even across crashes and retries.
// - apply() must be deterministic: the same events give the same writes, so
//   a rebuild from the log reproduces the model byte for byte.
// - An error from apply() stops the projection (its worker reports it); it
//   is never skipped silently.
// - Changing what apply() writes requires a new version(): the runtime keeps
//   each version in its own store ("<name>@v<version>") and builds a new one
//   from the start of the log.
//
// Indexes outside the store (optional)
// A projection may also keep an index the store cannot hold, such as a
// Xapian database or a FAISS index, derived from the store's data and kept
// in the store's directory (core::Log::model_dir). The worker calls, on its
// own thread:
// 1. open(store, dir) once, before anything else: the index loads what it
//    has and returns the position that reflects (a snapshot's tag; 0 when
//    empty), at most store.checkpoint().
// 2. refresh(events, store) with the log's events after that position up to
//    the checkpoint, in order and in batches, when there are any: the index
//    re-reads from the store whatever those events touched (the store is
//    already past them).
// 3. committed(store, position) after each commit: the index takes in what
//    the last apply() changed. A failure stops the worker, as apply()'s.
// 4. close(store) at stop: a chance to write a snapshot.
// Queries see a position only after committed() returned for it, so
// read-your-writes covers the index too. The index must be safe to read
// from query threads while the worker changes it.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/model_store.h"
#include "core/result.h"

namespace engram::projections {

class Projection {
 public:
  virtual ~Projection() = default;
  virtual std::string_view name() const = 0;  // [a-z0-9_.-], stable
  virtual uint32_t version() const = 0;       // >= 1
  // The event types apply() consumes; empty: every type.
  virtual std::vector<std::string> event_types() const = 0;
  virtual core::result<void> apply(std::span<const core::RecordedEvent> events,
                                   core::ModelStore::Batch& batch) = 0;

  virtual core::result<core::Position> open(const core::ModelStore& store,
                                            const std::filesystem::path& dir) {
    (void)dir;
    return store.checkpoint();
  }
  virtual core::result<void> refresh(std::span<const core::RecordedEvent> events,
                                     const core::ModelStore& store) {
    (void)events;
    (void)store;
    return {};
  }
  virtual core::result<void> committed(const core::ModelStore& store, core::Position position) {
    (void)store;
    (void)position;
    return {};
  }
  virtual void close(const core::ModelStore& store) { (void)store; }
};

// The store name of a projection version: "<name>@v<version>".
std::string store_name(const Projection& p);

}  // namespace engram::projections
