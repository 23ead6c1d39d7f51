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

#include <cstdint>
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
};

// The store name of a projection version: "<name>@v<version>".
std::string store_name(const Projection& p);

}  // namespace engram::projections
