#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace engram::core {

// Wall-clock time as seen by the log (the recorded-at of events). Behind an
// interface so tests control time.
class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds since the Unix epoch.
  virtual int64_t now_ns() const = 0;
};

std::shared_ptr<Clock> system_clock();

// A clock that moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ns) : now_ns_(start_ns) {}
  int64_t now_ns() const override { return now_ns_.load(std::memory_order_relaxed); }
  void set_ns(int64_t ns) { now_ns_.store(ns, std::memory_order_relaxed); }
  void advance_ns(int64_t delta_ns) { now_ns_.fetch_add(delta_ns, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace engram::core
