#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace engram::core {

// A signal from one thread to one waiter, on a raw futex: one-shot, or
// reused by a waiter that reset()s it between rounds.
// std::atomic::wait in libstdc++ spins with sched_yield before it sleeps;
// with dozens of waiters on two cores that spinning takes the CPU the writer
// needs (it was a quarter of all cycles under load). Here a waiter sleeps in
// the kernel at once, and signal() makes a syscall only if one is asleep.
class Completion {
 public:
  bool is_set() const { return ref().load(std::memory_order_acquire) == kSet; }

  void wait() {
    uint32_t s = kUnset;
    if (ref().compare_exchange_strong(s, kSleeping, std::memory_order_acquire)) s = kSleeping;
    while (s != kSet) {
      syscall(SYS_futex, &state_, FUTEX_WAIT_PRIVATE, kSleeping, nullptr, nullptr, 0);
      s = ref().load(std::memory_order_acquire);
    }
  }

  void signal() {
    if (ref().exchange(kSet, std::memory_order_release) == kSleeping) {
      syscall(SYS_futex, &state_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }

  // Unset again, for the next round. Only the waiter calls it, after its
  // wait() returned and before it lets anyone signal the next round (a
  // late wake-up from the round before is absorbed by wait()).
  void reset() { ref().store(kUnset, std::memory_order_relaxed); }

 private:
  static constexpr uint32_t kUnset = 0, kSet = 1, kSleeping = 2;
  std::atomic_ref<uint32_t> ref() const { return std::atomic_ref<uint32_t>(state_); }
  alignas(std::atomic_ref<uint32_t>::required_alignment) mutable uint32_t state_ = kUnset;
};

}  // namespace engram::core
