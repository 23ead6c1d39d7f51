#pragma once

// A projection worker: one thread that keeps one projection's read model
// following the log.
//
// Contract
// - start() opens (or creates) the projection's store and resumes after its
//   checkpoint: stored events first, then live ones, in batches of at most
//   max_batch_events, or of catch_up_batch_events while at least that many
//   events behind the head. Each batch is one apply() and one commit (data
//   and checkpoint together; core/model_store.h).
// - position() is the last committed position; wait_for(p) returns true
//   once position() >= p, false when the timeout runs out or the worker has
//   failed (read-your-writes for queries).
// - A failure (apply() or storage) is sticky: the worker stops, logs the
//   cause once, stats() says why, and the model stays at its last good
//   checkpoint.
// - The worker's thread has ThreadRole::projection.
// - The Log must outlive the worker. The destructor stops and joins.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/log.h"
#include "core/model_db.h"
#include "projections/projection.h"

namespace engram::projections {

struct WorkerOptions {
  // Events per batch when near the head: small batches keep the lag of a
  // live event short.
  size_t max_batch_events = 1000;
  // Events per batch while at least this many events behind the head (a
  // rebuild, a restart after downtime): bigger batches let apply() merge
  // more changes to one record and commit less often. Reads are capped by
  // LogOptions::max_read_count (10,000 events by default). 0: always
  // max_batch_events.
  size_t catch_up_batch_events = 10'000;
  // How long the worker waits for new events before checking for stop().
  std::chrono::milliseconds idle_wait_ms{50};
  // Fault point for tests: called after apply() and before the commit of
  // every batch, with the batch's last position.
  std::function<void(core::Position)> before_commit;
  // The store to build; empty: store_name(projection). A scratch store
  // (replay verify) is built under another name.
  std::string store;
  // Apply nothing after this position (a point-in-time model); 0: follow
  // the log for ever.
  core::Position until;
};

struct WorkerStats {
  uint64_t events_applied = 0;  // given to apply()
  uint64_t events_skipped = 0;  // of other types
  uint64_t batches = 0;
  core::Position position;  // committed
  int64_t last_commit_unix_ms = 0;
  bool failed = false;
  std::string failure;
};

class Worker {
 public:
  // The store is models.store(WorkerOptions::store, or store_name());
  // the log and models must outlive the worker.
  static core::result<std::unique_ptr<Worker>> start(const core::Log& log, core::ModelDb& models,
                                                     std::shared_ptr<Projection> projection,
                                                     WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  const Projection& projection() const { return *projection_; }
  const core::ModelStore& store() const { return *store_; }
  // The last position applied to the store and to the projection's indexes
  // outside it (projection.h).
  core::Position position() const {
    return core::Position(published_.load(std::memory_order_acquire));
  }
  bool wait_for(core::Position position, std::chrono::milliseconds timeout) const;
  // The same wait without blocking a thread: `done(reached)` is called once,
  // on the worker's thread or at once on this one, when position() reaches
  // `position` (true), or when `timeout` runs out, the worker fails or stops
  // (false). It must return quickly: hand the work on to another thread.
  // At most kMaxWaiters waits are pending; beyond that `done(false)` is
  // called at once. Settling k waiters costs O(k log n).
  static constexpr size_t kMaxWaiters = 10'000;
  void when_reached(core::Position position, std::chrono::milliseconds timeout,
                    std::function<void(bool)> done);
  WorkerStats stats() const;
  void stop();

 private:
  Worker(const core::Log& log, core::ModelDb& models, std::shared_ptr<Projection> projection,
         core::ModelStore& store, WorkerOptions options);
  void run();
  void follow();
  core::result<void> apply_batch(const std::vector<core::RecordedEvent>& events);
  // The events to read next after `at`: catch_up_batch_events while that
  // far behind the head, else max_batch_events.
  size_t batch_bound(core::Position at) const;
  void fail(std::string why);
  // open() and refresh() of the projection's outside indexes.
  core::result<void> open_indexes();
  std::vector<core::RecordedEvent> wanted(const std::vector<core::RecordedEvent>& events) const;
  // Calls the waiters whose position is reached or whose time is up.
  void settle_waiters(bool all);

  const core::Log& log_;
  core::ModelDb& models_;
  std::shared_ptr<Projection> projection_;
  core::ModelStore* store_;
  WorkerOptions options_;
  std::unordered_set<std::string> types_;  // empty: all
  std::atomic<uint64_t> published_{0};

  mutable std::mutex mu_;
  mutable std::condition_variable progressed_;
  WorkerStats stats_;
  bool stopping_ = false;
  // Pending when_reached() calls, guarded by mu_: by id, and ordered by
  // position and by deadline so that settling takes only the due ones.
  using Deadline = std::chrono::steady_clock::time_point;
  struct Waiter {
    core::Position position;
    Deadline deadline;
    std::function<void(bool)> done;
  };
  uint64_t next_waiter_ = 0;
  std::map<uint64_t, Waiter> waiters_;
  std::set<std::pair<uint64_t, uint64_t>> by_position_;  // (position, id)
  std::set<std::pair<Deadline, uint64_t>> by_deadline_;  // (deadline, id)
  std::thread thread_;
};

}  // namespace engram::projections
