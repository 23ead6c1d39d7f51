#pragma once

// The read side of one node: one worker per projection, started and
// stopped together, with their metrics, and version changes done beside
// the live model.
//
// Version changes
// - For each projection name the highest version given is the target. When
//   the log's database holds a store of another version of that name (the
//   model an earlier release built), the target is built beside it, from the
//   start of the log, while queries keep being served:
//   - by a lower version given in the same list (a release may keep the old
//     class for one upgrade), whose worker keeps following the log;
//   - else by nobody: serving() is null (the API answers 503) rather than
//     showing a model that is half built or was made by code that is gone.
// - The target is swapped in once it has reached the head the log had at
//   the previous check (checks every swap_check_ms): the old worker stops
//   and every other version's store is dropped. Readers still holding the
//   old worker keep reading what it had (core::Log keeps dropped stores
//   readable until it closes).
// - Without a store of another version the target serves at once, while it
//   catches up (queries carry its position; min_position waits).
// - A rebuild that fails is logged once with its cause and reported by
//   status() and engram_projection_failed; it is no longer "rebuilding".
//   Whatever served before keeps serving.
//
// Metrics (per projection label): engram_projection_position (last applied
// position), engram_projection_lag_events (log head minus that),
// engram_projection_lag_seconds (0 when caught up, else the time since the
// last commit), engram_projection_failed (1 once the serving worker or a
// rebuild has failed; status() says why),
// engram_projection_version (the version serving queries; 0: none) and
// engram_projection_rebuilding (1 while a new version builds beside).

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/metrics.h"
#include "core/model_db.h"
#include "projections/worker.h"

namespace engram::projections {

struct RuntimeOptions {
  uint64_t swap_check_ms = 50;
};

class Runtime {
 public:
  // The stores live in `models`; the log and models must outlive the runtime.
  static core::result<std::unique_ptr<Runtime>> start(
      const core::Log& log, core::ModelDb& models,
      std::vector<std::shared_ptr<Projection>> projections, WorkerOptions options = {},
      RuntimeOptions runtime_options = {});
  ~Runtime();  // stops every worker

  // The worker serving queries for this projection name; null when there is
  // none (unknown name, or a rebuild with nothing to serve meanwhile).
  std::shared_ptr<Worker> serving(std::string_view name) const;

  struct Status {
    uint32_t serving_version = 0;   // 0: nothing serves
    core::Position serving_position;  // the serving worker's last applied position
    uint32_t building_version = 0;  // 0: no rebuild under way (or it failed)
    bool failed = false;            // the serving worker or the rebuild failed
    // Queries to this name fail until an operator acts: the serving worker
    // failed, or nothing serves and the rebuild failed. A failed rebuild
    // beside a healthy serving worker is `failed` but not `unavailable`.
    bool unavailable = false;
    std::string failure;  // why
  };
  std::optional<Status> status(std::string_view name) const;
  // Every projection name's status, in the order the projections were given.
  std::vector<std::pair<std::string, Status>> statuses() const;

  // Every running worker (serving and building).
  std::vector<std::shared_ptr<Worker>> workers() const;
  // Registers the gauges above; the registry must not outlive the runtime.
  void register_metrics(core::metrics::Registry& registry) const;

 private:
  struct Slot {
    std::string name;
    std::shared_ptr<Worker> serving;
    std::shared_ptr<Worker> building;
    std::vector<std::string> stale_stores;  // dropped at the swap
    core::Position head_seen;
    std::string rebuild_failure;  // set once `building` failed
  };
  Runtime(const core::Log& log, core::ModelDb& models, RuntimeOptions options)
      : log_(log), models_(models), options_(options) {}
  void watch();  // the swap thread
  const Slot* slot(std::string_view name) const;
  static Status status_of(const Slot& s);  // under mu_

  const core::Log& log_;
  core::ModelDb& models_;
  RuntimeOptions options_;
  mutable std::mutex mu_;  // guards slots_' workers
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::vector<Slot> slots_;
  std::thread watcher_;
};

}  // namespace engram::projections
