#include "adapters/http/feed.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/assert.h"

namespace engram::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kHeartbeat = ": heartbeat\n\n";

// One subscription. `types` and `render` are fixed; the rest is guarded by
// Feed::Core::mu.
struct Sub {
  Sub(uint64_t after, std::vector<std::string> t, FeedRender r, Clock::time_point now)
      : types(std::move(t)), render(std::move(r)), position(after), last_sent(now) {}

  const std::vector<std::string> types;
  const FeedRender render;

  // idle: the consumer holds the last piece (or has not pulled yet);
  // waiting: a pull is pending; serving: the feed thread builds its piece;
  // ended: cut off, cancelled or stopped (pulls get nullopt).
  enum class State { idle, waiting, serving, ended };
  State state = State::idle;
  uint64_t position;  // every matching event up to here was delivered
  bool live = false;  // has caught up with the head at least once
  Clock::time_point last_sent;
  BodyStream::Deliver pending;  // while waiting

  bool wants(std::string_view type) const {
    return types.empty() || std::find(types.begin(), types.end(), type) != types.end();
  }
};

std::string sse_event(uint64_t position, std::string_view type, std::string_view data) {
  return fmt::format("id: {}\nevent: {}\ndata: {}\n\n", position, type, data);
}

std::string sse_cutoff(uint64_t position, std::string_view reason) {
  const nlohmann::json data = {{"position", position}, {"reason", reason}};
  return "event: cutoff\ndata: " +
         data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

}  // namespace

core::result<std::vector<std::string>> parse_feed_types(std::string_view list) {
  std::vector<std::string> out;
  if (list.empty()) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("'types' must list 1..{} event types", kMaxFeedTypes));
  }
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view name = list.substr(0, comma);
    if (name.empty() || name.size() > kMaxFeedTypeBytes) {
      return core::make_error(
          core::errc::invalid_argument,
          fmt::format("'types' names must be 1..{} bytes, separated by commas", kMaxFeedTypeBytes));
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) out.emplace_back(name);
    if (out.size() > kMaxFeedTypes) {
      return core::make_error(core::errc::invalid_argument,
                              fmt::format("'types' lists more than {} types", kMaxFeedTypes));
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

struct Feed::Core {
  Core(const core::Log& l, FeedOptions o) : log(l), options(o) {}

  const core::Log& log;
  const FeedOptions options;
  std::atomic<uint64_t> cutoffs{0};

  mutable std::mutex mu;
  std::condition_variable cv;              // a pull, a new subscriber, stop()
  std::vector<std::shared_ptr<Sub>> subs;  // open ones
  bool stopping = false;
  std::thread thread;  // started with the first subscriber

  // A pull taken by the thread, with what it needs outside the lock.
  struct Job {
    std::shared_ptr<Sub> sub;
    BodyStream::Deliver deliver;
    uint64_t position = 0;
    bool cut_off = false;
  };

  void remove(const std::shared_ptr<Sub>& s) {  // mu held
    subs.erase(std::remove(subs.begin(), subs.end(), s), subs.end());
  }

  void pull(const std::shared_ptr<Sub>& s, BodyStream::Deliver deliver) {
    {
      std::lock_guard lock(mu);
      if (s->state != Sub::State::ended) {
        ENGRAM_ASSERT_MSG(s->state == Sub::State::idle, "one pull at a time");
        s->pending = std::move(deliver);
        s->state = Sub::State::waiting;
        cv.notify_one();
        return;
      }
    }
    deliver(std::nullopt);
  }

  void cancel(const std::shared_ptr<Sub>& s) {
    BodyStream::Deliver deliver;
    {
      std::lock_guard lock(mu);
      if (s->state == Sub::State::ended) return;
      if (s->state == Sub::State::waiting) deliver = std::move(s->pending);
      s->pending = nullptr;
      // A piece being built is dropped when the thread sees this.
      s->state = Sub::State::ended;
      remove(s);
    }
    if (deliver) deliver(std::nullopt);
  }

  // Builds the piece for one pull (outside the lock), then delivers it, or
  // leaves the pull pending when the filter let nothing through.
  void serve(Job& job, uint64_t head) {
    Sub& s = *job.sub;
    std::string piece;
    uint64_t position = job.position;
    bool end = false;
    if (job.cut_off) {
      piece = sse_cutoff(position, "slow consumer");
      end = true;
      cutoffs.fetch_add(1);
    } else if (position < head) {
      try {
        auto events = log.read_all(core::Position(position + 1), options.max_chunk_events);
        if (!events) {
          piece = sse_cutoff(position, "log read failed: " + events.error().message);
          end = true;
        } else {
          for (const auto& e : *events) {
            if (s.wants(e.type())) {
              std::string block = sse_event(e.position().value(), e.type(), s.render(e));
              // Stops before the bound; an event alone over it goes alone.
              if (!piece.empty() && piece.size() + block.size() > options.max_chunk_bytes) break;
              piece += block;
            }
            position = e.position().value();
          }
        }
      } catch (const std::exception& ex) {
        // Rendering (JSON) failed: end the stream where it stands, so the
        // client can see why and the thread goes on serving the others.
        piece = sse_cutoff(position, fmt::format("rendering failed: {}", ex.what()));
        end = true;
      }
    }
    const auto now = Clock::now();
    std::optional<std::string> out;
    BodyStream::Deliver deliver = std::move(job.deliver);
    {
      std::lock_guard lock(mu);
      if (s.state != Sub::State::ended) {
        s.position = position;
        if (piece.empty() && now - s.last_sent >= milliseconds(options.heartbeat_ms)) {
          piece = kHeartbeat;
        }
        if (piece.empty()) {
          // Everything read was filtered out: the pull stays pending.
          s.pending = std::move(deliver);
          s.state = Sub::State::waiting;
          return;
        }
        s.last_sent = now;
        s.state = end ? Sub::State::ended : Sub::State::idle;
        if (end) remove(job.sub);
        out = std::move(piece);
      }
    }
    deliver(std::move(out));
  }

  void run() {
    std::unique_lock lock(mu);
    const auto beat = milliseconds(options.heartbeat_ms);
    while (!stopping) {
      const uint64_t head = log.head().position.value();
      const auto now = Clock::now();
      std::vector<Job> jobs;
      bool busy = false;     // a consumer is writing: its next pull wakes us
      bool waiting = false;  // a pull waits for the head to move
      auto next_beat = Clock::time_point::max();
      for (const auto& s : subs) {
        if (s->state == Sub::State::idle) busy = true;
        if (s->state != Sub::State::waiting) continue;
        if (s->position >= head) s->live = true;
        const bool cut_off =
            s->live && head > s->position && head - s->position > options.max_lag_events;
        if (cut_off || s->position < head || now - s->last_sent >= beat) {
          jobs.push_back({s, std::move(s->pending), s->position, cut_off});
          s->pending = nullptr;
          s->state = Sub::State::serving;
        } else {
          waiting = true;
          next_beat = std::min(next_beat, s->last_sent + beat);
        }
      }
      if (!jobs.empty()) {
        lock.unlock();
        for (auto& job : jobs) serve(job, head);
        lock.lock();
        continue;
      }
      if (waiting && !busy) {
        // Everyone waits at the head: sleep until it moves, a heartbeat is
        // due, or kFeedHeadWaitMs passed (to see new subscribers).
        const auto until = std::min(next_beat, now + milliseconds(kFeedHeadWaitMs));
        lock.unlock();
        log.wait_for(core::Position(head + 1), std::chrono::ceil<milliseconds>(until - now));
        lock.lock();
      } else if (waiting) {
        cv.wait_until(lock, std::min(next_beat, now + milliseconds(kFeedPollMs)));
      } else {
        cv.wait(lock);
      }
    }
  }
};

namespace {

class FeedStream final : public BodyStream {
 public:
  FeedStream(std::shared_ptr<Feed::Core> core, std::shared_ptr<Sub> sub)
      : core_(std::move(core)), sub_(std::move(sub)) {}
  ~FeedStream() override { core_->cancel(sub_); }
  void pull(Deliver deliver) override { core_->pull(sub_, std::move(deliver)); }
  void cancel() override { core_->cancel(sub_); }

 private:
  std::shared_ptr<Feed::Core> core_;
  std::shared_ptr<Sub> sub_;
};

}  // namespace

Feed::Feed(const core::Log& log, FeedOptions options)
    : core_(std::make_shared<Core>(log, options)) {}

Feed::~Feed() {
  stop();
}

core::result<std::shared_ptr<BodyStream>> Feed::subscribe(core::Position after,
                                                          std::vector<std::string> types,
                                                          FeedRender render) {
  auto sub =
      std::make_shared<Sub>(after.value(), std::move(types), std::move(render), Clock::now());
  {
    std::lock_guard lock(core_->mu);
    if (core_->stopping) {
      return core::make_error(core::errc::shutting_down, "the live feed is stopping");
    }
    if (core_->subs.size() >= core_->options.max_subscribers) {
      return core::make_error(core::errc::overloaded,
                              fmt::format("max_subscribers ({}) subscriptions are open",
                                          core_->options.max_subscribers));
    }
    core_->subs.push_back(sub);
    Core* c = core_.get();
    if (!core_->thread.joinable()) core_->thread = std::thread([c] { c->run(); });
  }
  core_->cv.notify_one();
  return std::shared_ptr<BodyStream>(std::make_shared<FeedStream>(core_, std::move(sub)));
}

void Feed::stop() {
  std::vector<BodyStream::Deliver> pending;
  std::thread thread;
  {
    std::lock_guard lock(core_->mu);
    core_->stopping = true;
    for (const auto& s : core_->subs) {
      if (s->state == Sub::State::waiting) pending.push_back(std::move(s->pending));
      s->pending = nullptr;
      s->state = Sub::State::ended;
    }
    core_->subs.clear();
    thread = std::move(core_->thread);
  }
  core_->cv.notify_all();
  for (auto& deliver : pending) deliver(std::nullopt);
  if (thread.joinable()) thread.join();
}

size_t Feed::subscribers() const {
  std::lock_guard lock(core_->mu);
  return core_->subs.size();
}

uint64_t Feed::cutoffs() const {
  return core_->cutoffs.load();
}

const FeedOptions& Feed::options() const {
  return core_->options;
}

}  // namespace engram::http
