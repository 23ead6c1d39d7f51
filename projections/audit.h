#pragma once

// The audit index: which events belong to a correlation, which a message
// caused, and what an actor did when. It lets `engram audit trace` and
// `audit actor` answer from an index instead of a scan of the log.
//
// Layout in the store (values are empty; every integer is big-endian):
//   c <correlation id: 16> <position: 8>        events of one correlation
//   k <causation id: 16> <position: 8>          events caused by one message
//   a <actor> \0 <recorded_at_ns + 2^63: 8> <position: 8>
//                                               events by actor, in time order
// Nil ids are not indexed. Actors never contain NUL (the log refuses control
// characters), so one actor's keys are contiguous.
//
// Queries read the index up to its checkpoint and then the log's tail past
// it, so their answers are complete up to the log's head even while the
// projection trails (or has never run: a data dir written before it). The
// tail they will scan is bounded (kMaxTailScanEvents); past that they fail
// with errc::overloaded rather than scan the whole log.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "core/model_store.h"
#include "core/uuid.h"
#include "projections/projection.h"

namespace engram::projections {

class AuditProjection final : public Projection {
 public:
  static constexpr std::string_view kName = "audit";
  static constexpr uint32_t kVersion = 1;
  std::string_view name() const override { return kName; }
  uint32_t version() const override { return kVersion; }
  std::vector<std::string> event_types() const override { return {}; }
  core::result<void> apply(std::span<const core::RecordedEvent> events,
                           core::ModelStore::Batch& batch) override;
};

inline constexpr uint64_t kMaxTailScanEvents = 1'000'000;
inline constexpr size_t kMaxAuditIndexResults = 10'000;

// Positions found by one query, in ascending order of their keys.
struct AuditHits {
  std::vector<core::Position> positions;
  bool truncated = false;  // more matched than the limit allowed
  // Past the index's checkpoint, the log's tail was scanned (this many events).
  uint64_t tail_scanned = 0;
};

// `store` is the audit projection's store, or null when there is none; the
// answers cover the log up to `head`.
core::result<AuditHits> events_of_correlation(const core::ModelStore* store, const core::Log& log,
                                              core::Position head, const core::Uuid& correlation,
                                              size_t limit);
core::result<AuditHits> events_caused_by(const core::ModelStore* store, const core::Log& log,
                                         core::Position head, const core::Uuid& cause,
                                         size_t limit);
// Events by `actor` recorded in [since_ns, until_ns], starting after the
// event at `after` when it is non-zero (a cursor: the last position of the
// previous page).
core::result<AuditHits> events_of_actor(const core::ModelStore* store, const core::Log& log,
                                        core::Position head, std::string_view actor,
                                        int64_t since_ns, int64_t until_ns, core::Position after,
                                        size_t limit);

}  // namespace engram::projections
