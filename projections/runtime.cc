#include "projections/runtime.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "core/logging.h"
#include "core/thread_role.h"

namespace engram::projections {
namespace {

// "name@v<version>" -> version; nullopt for another name or a bad suffix.
std::optional<uint32_t> version_of_store(std::string_view store, std::string_view name) {
  const std::string prefix = fmt::format("{}@v", name);
  if (store.substr(0, prefix.size()) != prefix) return std::nullopt;
  const std::string_view digits = store.substr(prefix.size());
  if (digits.empty() || digits.size() > 9) return std::nullopt;
  uint32_t v = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(ch - '0');
  }
  return v;
}

double version_gauge(const std::shared_ptr<Worker>& w) {
  return w ? static_cast<double>(w->projection().version()) : 0.0;
}

}  // namespace

core::result<std::unique_ptr<Runtime>> Runtime::start(
    const core::Log& log, core::ModelDb& models, std::vector<std::shared_ptr<Projection>> projections,
    WorkerOptions options, RuntimeOptions runtime_options) {
  std::unique_ptr<Runtime> rt(new Runtime(log, models, runtime_options));
  // By name, highest version first.
  std::map<std::string, std::vector<std::shared_ptr<Projection>>, std::less<>> by_name;
  for (auto& p : projections) by_name[std::string(p->name())].push_back(std::move(p));
  const std::vector<std::string> existing = models.stores();
  for (auto& [name, versions] : by_name) {
    std::sort(versions.begin(), versions.end(),
              [](const auto& a, const auto& b) { return a->version() > b->version(); });
    for (size_t i = 1; i < versions.size(); ++i) {
      if (versions[i]->version() == versions[i - 1]->version()) {
        return core::make_error(core::errc::invalid_argument,
                                fmt::format("projection {} is given twice at version {}", name,
                                            versions[i]->version()));
      }
    }
    const uint32_t target = versions.front()->version();
    Slot slot;
    slot.name = name;
    std::vector<uint32_t> others;  // versions with a store, besides the target
    for (const auto& store : existing) {
      auto v = version_of_store(store, name);
      if (v && *v != target) {
        others.push_back(*v);
        slot.stale_stores.push_back(store);
      }
    }
    auto target_worker = Worker::start(log, models, versions.front(), options);
    if (!target_worker) return target_worker.error();
    if (others.empty()) {
      slot.serving = std::move(*target_worker);
    } else {
      slot.building = std::move(*target_worker);
      // The newest older version whose code is here serves meanwhile.
      for (size_t i = 1; i < versions.size() && !slot.serving; ++i) {
        if (std::find(others.begin(), others.end(), versions[i]->version()) == others.end()) {
          continue;
        }
        auto legacy = Worker::start(log, models, versions[i], options);
        if (!legacy) return legacy.error();
        slot.serving = std::move(*legacy);
      }
      core::logging::write(
          core::logging::Level::info, "projection rebuild started",
          {{"projection", name},
           {"version", target},
           {"serving_version", slot.serving ? slot.serving->projection().version() : 0}});
    }
    slot.head_seen = log.head().position;
    rt->slots_.push_back(std::move(slot));
  }
  rt->watcher_ = std::thread([raw = rt.get()] {
    core::set_thread_role(core::ThreadRole::maintenance);
    raw->watch();
  });
  return rt;
}

Runtime::~Runtime() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  for (auto& w : workers()) w->stop();
}

void Runtime::watch() {
  std::unique_lock lock(mu_);
  for (;;) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(options_.swap_check_ms),
                      [&] { return stopping_; });
    if (stopping_) return;
    for (auto& slot : slots_) {
      if (!slot.building || !slot.rebuild_failure.empty()) continue;
      const core::Position head = log_.head().position;
      if (const WorkerStats st = slot.building->stats(); st.failed) {
        // It never catches up: say so once, and stop calling it a rebuild.
        // The old version (if any) keeps serving; the failed worker stays
        // for its stats until the runtime stops.
        slot.rebuild_failure = st.failure;
        core::logging::write(core::logging::Level::error, "projection rebuild failed",
                             {{"projection", slot.name},
                              {"version", slot.building->projection().version()},
                              {"reason", st.failure}});
        continue;
      }
      if (slot.building->position() < slot.head_seen) {
        slot.head_seen = head;
        continue;
      }
      // Caught up with where the head was one check ago: swap.
      std::shared_ptr<Worker> old = std::move(slot.serving);
      slot.serving = std::move(slot.building);
      const std::vector<std::string> stale = std::move(slot.stale_stores);
      slot.stale_stores.clear();
      lock.unlock();
      if (old) old->stop();
      for (const auto& store : stale) {
        if (auto r = models_.drop(store); !r) {
          core::logging::write(core::logging::Level::warn, "dropping a replaced model failed",
                               {{"store", store}, {"error", r.error().to_string()}});
        }
      }
      core::logging::write(core::logging::Level::info, "projection swapped in",
                           {{"projection", slot.name},
                            {"version", slot.serving->projection().version()},
                            {"position", slot.serving->position().value()}});
      lock.lock();
    }
  }
}

const Runtime::Slot* Runtime::slot(std::string_view name) const {
  for (const auto& s : slots_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::shared_ptr<Worker> Runtime::serving(std::string_view name) const {
  std::lock_guard lock(mu_);
  const Slot* s = slot(name);
  return s ? s->serving : nullptr;
}

Runtime::Status Runtime::status_of(const Slot& s) {
  Status st;
  st.serving_version = static_cast<uint32_t>(version_gauge(s.serving));
  if (s.building && s.rebuild_failure.empty()) {
    st.building_version = static_cast<uint32_t>(version_gauge(s.building));
  }
  if (s.serving) {
    WorkerStats ws = s.serving->stats();
    st.serving_position = s.serving->position();
    st.failed = ws.failed;
    st.unavailable = ws.failed;
    st.failure = std::move(ws.failure);
  }
  if (!st.failed && !s.rebuild_failure.empty()) {
    st.failed = true;
    st.unavailable = !s.serving;
    st.failure = fmt::format("rebuilding version {}: {}", s.building->projection().version(),
                             s.rebuild_failure);
  }
  return st;
}

std::optional<Runtime::Status> Runtime::status(std::string_view name) const {
  std::lock_guard lock(mu_);
  const Slot* s = slot(name);
  if (s == nullptr) return std::nullopt;
  return status_of(*s);
}

std::vector<std::pair<std::string, Runtime::Status>> Runtime::statuses() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, Status>> out;
  out.reserve(slots_.size());
  for (const auto& s : slots_) out.emplace_back(s.name, status_of(s));
  return out;
}

std::vector<std::shared_ptr<Worker>> Runtime::workers() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Worker>> out;
  for (const auto& s : slots_) {
    if (s.serving) out.push_back(s.serving);
    if (s.building) out.push_back(s.building);
  }
  return out;
}

void Runtime::register_metrics(core::metrics::Registry& registry) const {
  for (const auto& s : slots_) {
    const core::metrics::Labels labels = {{"projection", s.name}};
    const std::string name = s.name;
    const core::Log* log = &log_;
    // The serving worker, or the one building when nothing serves.
    auto current = [this, name]() -> std::shared_ptr<Worker> {
      std::lock_guard lock(mu_);
      const Slot* sl = slot(name);
      if (sl == nullptr) return nullptr;
      return sl->serving ? sl->serving : sl->building;
    };
    registry.gauge_fn("engram_projection_position", "Last position a projection applied.", labels,
                      [current] {
                        auto w = current();
                        return w ? static_cast<double>(w->position().value()) : 0.0;
                      });
    registry.gauge_fn("engram_projection_lag_events", "Log head minus the projection's position.",
                      labels, [current, log] {
                        auto w = current();
                        const uint64_t head = log->head().position.value();
                        const uint64_t at = w ? w->position().value() : 0;
                        return static_cast<double>(head > at ? head - at : 0);
                      });
    registry.gauge_fn("engram_projection_lag_seconds",
                      "0 when a projection is caught up, else the time since its last commit.",
                      labels, [current, log] {
                        auto w = current();
                        if (!w || w->position() >= log->head().position) return 0.0;
                        const WorkerStats st = w->stats();
                        const int64_t now_ms =
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
                        return st.last_commit_unix_ms == 0
                                   ? 0.0
                                   : static_cast<double>(now_ms - st.last_commit_unix_ms) / 1e3;
                      });
    registry.gauge_fn("engram_projection_failed",
                      "1 once a projection's serving worker or its rebuild has failed.", labels,
                      [this, name, current] {
                        auto st = status(name);
                        if (st && st->failed) return 1.0;
                        auto w = current();  // nothing serves: the one building
                        return w && w->stats().failed ? 1.0 : 0.0;
                      });
    registry.gauge_fn("engram_projection_version",
                      "The projection version serving queries; 0 while none does.", labels,
                      [this, name] {
                        auto st = status(name);
                        return st ? static_cast<double>(st->serving_version) : 0.0;
                      });
    registry.gauge_fn("engram_projection_rebuilding",
                      "1 while a new projection version is built beside the live one.", labels,
                      [this, name] {
                        auto st = status(name);
                        return st && st->building_version != 0 ? 1.0 : 0.0;
                      });
  }
}

}  // namespace engram::projections
