#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "core/log.h"

namespace engram::core {

// The acknowledged head of the log, published by the writer after each
// fsynced group and awaited by readers.
class HeadState {
 public:
  explicit HeadState(Head initial) : head_(initial), position_(initial.position.value()) {}

  Head get() const {
    std::lock_guard lock(mu_);
    return head_;
  }
  Position position() const { return Position(position_.load(std::memory_order_acquire)); }
  // For readers that only need a number without the lock (compaction filter).
  const std::atomic<uint64_t>& position_atomic() const { return position_; }

  void publish(const Head& h) {
    {
      std::lock_guard lock(mu_);
      head_ = h;
      position_.store(h.position.value(), std::memory_order_release);
    }
    cv_.notify_all();
  }

  bool wait_for(Position p, std::chrono::milliseconds timeout) const {
    if (position() >= p) return true;
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return head_.position >= p; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Head head_;
  std::atomic<uint64_t> position_;
};

}  // namespace engram::core
