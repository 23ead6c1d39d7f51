#pragma once

// A gate that holds a thread at a chosen piece of work until released, so a
// test can act while that work is in progress without relying on timing
// (VectorIndex::Options::before_publish's writer, a pool's thread).

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <string_view>

namespace engram::test {

class Gate {
 public:
  // The hook: holds the calling writer when `work` is what arm() named
  // (once per arm()).
  void hook(std::string_view work) {
    std::unique_lock lock(mu_);
    if (armed_.empty() || work != armed_) return;
    armed_.clear();
    holding_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    holding_ = false;
  }
  void arm(std::string work) {
    std::lock_guard lock(mu_);
    armed_ = std::move(work);
    released_ = false;
  }
  void wait_until_holding() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return holding_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string armed_;  // the work to hold; empty: none
  bool holding_ = false;
  bool released_ = false;
};

// Runs `f` on another thread while the gate holds a writer and returns what
// it returns. If `f` has not finished after a minute (a bound for a
// deadlock, not a timing: it waits for the held write), the test fails and
// the gate is released.
template <typename F>
auto run_while_held(Gate& gate, F f) {
  auto pending = std::async(std::launch::async, std::move(f));
  const bool finished = pending.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  if (!finished) gate.release();
  REQUIRE_MESSAGE(finished, "it waited for the write in progress");
  return pending.get();
}

}  // namespace engram::test
