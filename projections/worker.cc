#include "projections/worker.h"

#include <fmt/format.h>

#include "core/assert.h"
#include "core/logging.h"
#include "core/thread_role.h"

namespace engram::projections {
namespace {

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string store_name(const Projection& p) {
  return fmt::format("{}@v{}", p.name(), p.version());
}

core::result<std::unique_ptr<Worker>> Worker::start(const core::Log& log, core::ModelDb& models,
                                                    std::shared_ptr<Projection> projection,
                                                    WorkerOptions options) {
  ENGRAM_ASSERT(projection != nullptr);
  if (projection->version() == 0) {
    return core::make_error(core::errc::invalid_argument, "projection versions start at 1");
  }
  if (options.max_batch_events == 0) {
    return core::make_error(core::errc::invalid_argument, "max_batch_events must be > 0");
  }
  auto store = models.store(options.store.empty() ? store_name(*projection) : options.store);
  if (!store) return store.error();
  std::unique_ptr<Worker> w(
      new Worker(log, models, std::move(projection), **store, std::move(options)));
  w->thread_ = std::thread([raw = w.get()] {
    core::set_thread_role(core::ThreadRole::projection);
    raw->run();
  });
  return w;
}

Worker::Worker(const core::Log& log, core::ModelDb& models, std::shared_ptr<Projection> projection,
               core::ModelStore& store, WorkerOptions options)
    : log_(log),
      models_(models),
      projection_(std::move(projection)),
      store_(&store),
      options_(std::move(options)) {
  for (auto& t : projection_->event_types()) types_.insert(std::move(t));
  stats_.position = store_->checkpoint();
}

Worker::~Worker() {
  stop();
}

void Worker::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  progressed_.notify_all();
  if (thread_.joinable()) thread_.join();
  settle_waiters(true);
}

void Worker::when_reached(core::Position position, std::chrono::milliseconds timeout,
                          std::function<void(bool)> done) {
  {
    std::lock_guard lock(mu_);
    if (this->position() < position && !stats_.failed && !stopping_ &&
        waiters_.size() < kMaxWaiters) {
      const uint64_t id = next_waiter_++;
      const Deadline deadline = std::chrono::steady_clock::now() + timeout;
      waiters_.emplace(id, Waiter{position, deadline, std::move(done)});
      by_position_.emplace(position.value(), id);
      by_deadline_.emplace(deadline, id);
      return;
    }
  }
  done(this->position() >= position);
}

void Worker::settle_waiters(bool all) {
  std::vector<std::pair<std::function<void(bool)>, bool>> ready;
  {
    std::lock_guard lock(mu_);
    const core::Position at = position();
    auto take = [&](uint64_t id) {
      auto it = waiters_.find(id);
      ENGRAM_ASSERT(it != waiters_.end());
      Waiter& w = it->second;
      const bool reached = at >= w.position;
      by_position_.erase({w.position.value(), id});
      by_deadline_.erase({w.deadline, id});
      ready.emplace_back(std::move(w.done), reached);
      waiters_.erase(it);
    };
    if (all || stats_.failed || stopping_) {
      while (!waiters_.empty()) take(waiters_.begin()->first);
    } else {
      while (!by_position_.empty() && by_position_.begin()->first <= at.value()) {
        take(by_position_.begin()->second);
      }
      const Deadline now = std::chrono::steady_clock::now();
      while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
        take(by_deadline_.begin()->second);
      }
    }
  }
  for (auto& [done, reached] : ready) done(reached);
}

bool Worker::wait_for(core::Position position, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  progressed_.wait_for(lock, timeout, [&] {
    return this->position() >= position || stats_.failed || stopping_;
  });
  return this->position() >= position;
}

WorkerStats Worker::stats() const {
  std::lock_guard lock(mu_);
  WorkerStats s = stats_;
  s.position = position();
  return s;
}

void Worker::fail(std::string why) {
  // Once, with the cause: the worker stops here, so it cannot fail again.
  core::logging::write(core::logging::Level::error, "projection failed",
                       {{"store", store_->name()}, {"reason", why}});
  {
    std::lock_guard lock(mu_);
    stats_.failed = true;
    stats_.failure = std::move(why);
  }
  progressed_.notify_all();
  settle_waiters(true);
}

std::vector<core::RecordedEvent> Worker::wanted(
    const std::vector<core::RecordedEvent>& events) const {
  std::vector<core::RecordedEvent> out;
  for (const auto& e : events) {
    if (types_.count(std::string(e.type())) > 0) out.push_back(e);
  }
  return out;
}

core::result<void> Worker::apply_batch(const std::vector<core::RecordedEvent>& events) {
  ENGRAM_ASSERT(!events.empty());
  // Only a projection that names its types needs a filtered copy.
  std::vector<core::RecordedEvent> filtered;
  if (!types_.empty()) filtered = wanted(events);
  const std::span<const core::RecordedEvent> chosen =
      types_.empty() ? std::span<const core::RecordedEvent>(events) : filtered;
  auto batch = store_->batch();
  if (!chosen.empty()) {
    if (auto r = projection_->apply(chosen, batch); !r) return r;
  }
  const core::Position last = events.back().position();
  if (options_.before_commit) options_.before_commit(last);
  if (auto r = store_->commit(batch, last); !r) return r;
  if (auto r = projection_->committed(*store_, last); !r) return r;
  published_.store(last.value(), std::memory_order_release);
  {
    std::lock_guard lock(mu_);
    stats_.events_applied += chosen.size();
    stats_.events_skipped += events.size() - chosen.size();
    ++stats_.batches;
    stats_.last_commit_unix_ms = unix_ms_now();
  }
  progressed_.notify_all();
  settle_waiters(false);
  return {};
}

size_t Worker::batch_bound(core::Position at) const {
  const size_t catch_up = options_.catch_up_batch_events;
  if (catch_up <= options_.max_batch_events) return options_.max_batch_events;
  const uint64_t head = log_.head().position.value();
  const uint64_t behind = head > at.value() ? head - at.value() : 0;
  return behind >= catch_up ? catch_up : options_.max_batch_events;
}

core::result<void> Worker::open_indexes() {
  const std::filesystem::path dir = models_.files_dir(store_->name());
  auto at = projection_->open(*store_, dir);
  if (!at) return at.error();
  const core::Position checkpoint = store_->checkpoint();
  if (*at > checkpoint) {
    return core::make_error(core::errc::corruption,
                            fmt::format("the index in {} is at position {}, past its store's "
                                        "checkpoint {}",
                                        dir.string(), at->value(), checkpoint.value()));
  }
  core::Subscription tail(log_, *at);
  while (tail.position() < checkpoint) {
    auto events = tail.next(options_.max_batch_events, std::chrono::milliseconds(0));
    if (!events) return events.error();
    if (events->empty()) break;  // the log ends before the checkpoint: nothing more to read
    while (!events->empty() && events->back().position() > checkpoint) events->pop_back();
    if (events->empty()) break;
    std::vector<core::RecordedEvent> filtered;
    if (!types_.empty()) filtered = wanted(*events);
    const auto& chosen = types_.empty() ? *events : filtered;
    if (!chosen.empty()) {
      if (auto r = projection_->refresh(chosen, *store_); !r) return r;
    }
  }
  published_.store(checkpoint.value(), std::memory_order_release);
  return {};
}

void Worker::run() {
  if (auto r = open_indexes(); !r) {
    return fail(fmt::format("{}: opening its indexes: {}", store_name(*projection_),
                            r.error().to_string()));
  }
  follow();
  projection_->close(*store_);
}

void Worker::follow() {
  progressed_.notify_all();  // open_indexes() published the checkpoint
  settle_waiters(false);
  auto subscription = log_.subscribe(store_->checkpoint());
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    auto events = subscription->next(batch_bound(subscription->position()), options_.idle_wait_ms);
    if (!events) {
      return fail(fmt::format("reading the log: {}", events.error().to_string()));
    }
    if (options_.until.value() != 0) {
      while (!events->empty() && events->back().position() > options_.until) events->pop_back();
      if (events->empty() && store_->checkpoint() >= options_.until) {
        // A point-in-time model is complete: wait for stop().
        settle_waiters(false);
        std::unique_lock lock(mu_);
        progressed_.wait_for(lock, options_.idle_wait_ms, [&] { return stopping_; });
        continue;
      }
    }
    if (events->empty()) {
      settle_waiters(false);  // deadlines
      continue;
    }
    if (auto r = apply_batch(*events); !r) {
      return fail(fmt::format("{} at positions {}..{}: {}", store_name(*projection_),
                              events->front().position().value(), events->back().position().value(),
                              r.error().to_string()));
    }
  }
}

}  // namespace engram::projections
