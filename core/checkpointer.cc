#include "core/checkpointer.h"

#include <pthread.h>

#include <chrono>

#include "core/assert.h"
#include "core/log_tree.h"
#include "core/logging.h"
#include "core/thread_role.h"

namespace engram::core {

Checkpointer::Checkpointer(Log& log, SigningKey key, CheckpointFile file,
                           CheckpointerOptions options)
    : log_(log), key_(std::move(key)), file_(std::move(file)), options_(options) {
  ENGRAM_ASSERT(options_.every_events >= 1 && options_.interval_ms >= 100);
  if (auto existing = read_newest_checkpoint(file_.path()); existing && existing->has_value()) {
    const Checkpoint& newest = **existing;
    if (newest.log_id == log_.log_id() && newest.key == key_.public_key() &&
        newest.position <= log_.head().position) {
      last_signed_ = newest.position;
    }
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "engram-checkpt");
    set_thread_role(ThreadRole::maintenance);
    run();
  });
}

Checkpointer::~Checkpointer() {
  stop();
}

void Checkpointer::run() {
  using namespace std::chrono;
  constexpr milliseconds kPollStep(200);  // how late a stop or an interval may be noticed
  auto next_due = steady_clock::now() + milliseconds(options_.interval_ms);
  for (;;) {
    Position last;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      last = last_signed_;
    }
    const bool enough = log_.wait_for(Position(last.value() + options_.every_events), kPollStep);
    const bool due = steady_clock::now() >= next_due;
    if (!enough && !due) continue;
    if (auto r = sign_now(); !r) {
      logging::write(logging::Level::error, "checkpoint failed",
                     {{"error", r.error().to_string()}});
    }
    next_due = steady_clock::now() + milliseconds(options_.interval_ms);
  }
}

result<Position> Checkpointer::sign_now() {
  std::lock_guard lock(mu_);
  const Head head = log_.head();
  if (head.position <= last_signed_) return last_signed_;
  auto root = LogTree(log_).root(head.position);
  if (!root) return root.error();
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const Checkpoint c =
      Checkpoint::sign(key_, log_.log_id(), head.position, head.hash, *root, now_ns);
  if (auto w = file_.append(c); !w) return w.error();
  last_signed_ = head.position;
  ++signed_count_;
  logging::write(logging::Level::debug, "checkpoint signed",
                 {{"position", head.position.value()}, {"key_id", key_.public_key().id()}});
  return last_signed_;
}

void Checkpointer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (auto r = sign_now(); !r) {
    logging::write(logging::Level::error, "final checkpoint failed",
                   {{"error", r.error().to_string()}});
  }
}

uint64_t Checkpointer::signed_count() const {
  std::lock_guard lock(mu_);
  return signed_count_;
}

}  // namespace engram::core
