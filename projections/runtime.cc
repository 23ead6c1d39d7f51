#include "projections/runtime.h"

#include <chrono>

namespace engram::projections {

core::result<std::unique_ptr<Runtime>> Runtime::start(
    core::Log& log, std::vector<std::shared_ptr<Projection>> projections, WorkerOptions options) {
  std::unique_ptr<Runtime> rt(new Runtime(log));
  for (auto& p : projections) {
    auto w = Worker::start(log, std::move(p), options);
    if (!w) return w.error();
    rt->workers_.push_back(std::move(*w));
  }
  return rt;
}

Runtime::~Runtime() {
  for (auto& w : workers_) w->stop();
}

Worker* Runtime::find(std::string_view name) const {
  for (const auto& w : workers_) {
    if (w->projection().name() == name) return w.get();
  }
  return nullptr;
}

void Runtime::register_metrics(core::metrics::Registry& registry) const {
  for (const auto& w : workers_) {
    const core::metrics::Labels labels = {{"projection", std::string(w->projection().name())}};
    const Worker* worker = w.get();
    const core::Log* log = &log_;
    registry.gauge_fn("engram_projection_position", "Last position a projection applied.", labels,
                      [worker] { return static_cast<double>(worker->position().value()); });
    registry.gauge_fn("engram_projection_lag_events", "Log head minus the projection's position.",
                      labels, [worker, log] {
                        const uint64_t head = log->head().position.value();
                        const uint64_t at = worker->position().value();
                        return static_cast<double>(head > at ? head - at : 0);
                      });
    registry.gauge_fn("engram_projection_lag_seconds",
                      "0 when a projection is caught up, else the time since its last commit.",
                      labels, [worker, log] {
                        if (worker->position() >= log->head().position) return 0.0;
                        const WorkerStats s = worker->stats();
                        const int64_t now_ms =
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
                        return s.last_commit_unix_ms == 0
                                   ? 0.0
                                   : static_cast<double>(now_ms - s.last_commit_unix_ms) / 1e3;
                      });
    registry.gauge_fn("engram_projection_failed", "1 once a projection's worker has failed.",
                      labels, [worker] { return worker->stats().failed ? 1.0 : 0.0; });
  }
}

}  // namespace engram::projections
