#pragma once

// The read side of one node: one worker per projection, started and
// stopped together, with their metrics.
//
// Metrics (per projection label): engram_projection_position (last applied
// position), engram_projection_lag_events (log head minus that),
// engram_projection_lag_seconds (0 when caught up, else the time since the
// last commit), engram_projection_failed (1 once the worker has failed).

#include <memory>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "core/metrics.h"
#include "projections/worker.h"

namespace engram::projections {

class Runtime {
 public:
  static core::result<std::unique_ptr<Runtime>> start(
      core::Log& log, std::vector<std::shared_ptr<Projection>> projections,
      WorkerOptions options = {});
  ~Runtime();  // stops every worker

  // The worker of the projection with this name; null when there is none.
  Worker* find(std::string_view name) const;
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  // Registers the gauges above; the registry must not outlive the runtime.
  void register_metrics(core::metrics::Registry& registry) const;

 private:
  explicit Runtime(core::Log& log) : log_(log) {}
  core::Log& log_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace engram::projections
