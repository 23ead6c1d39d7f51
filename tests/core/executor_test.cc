// Thread pools (core/executor.h) and the thread-role checks (core/thread_role.h).

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/executor.h"
#include "core/thread_role.h"
#include "tests/support/gate.h"

using namespace engram::core;

namespace {

// Runs `fn` in a forked child and says whether the child aborted (a failed
// ENGRAM_ASSERT). The child runs only `fn`, on its one thread.
bool aborts(const std::function<void()>& fn) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // doctest's crash handler would report the child's abort as a failure.
    std::signal(SIGABRT, SIG_DFL);
    fn();
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

// Occupies one thread of a pool from construction until release().
class Blocker {
 public:
  explicit Blocker(ThreadPool& pool) {
    gate_.arm("block");
    pool.post([this] { gate_.hook("block"); });
    gate_.wait_until_holding();
  }
  void release() { gate_.release(); }

 private:
  engram::test::Gate gate_;
};

}  // namespace

TEST_CASE("thread pool: runs every task on its threads, with its role") {
  ThreadPool pool({"test-pool", 2, 1000, ThreadRole::query});
  std::atomic<int> ran{0};
  std::atomic<int> wrong_role{0};
  for (int i = 0; i < 500; ++i) {
    REQUIRE(pool.try_post([&] {
      if (thread_role() != ThreadRole::query) wrong_role.fetch_add(1);
      ran.fetch_add(1);
    }));
  }
  pool.stop();  // runs what is queued
  CHECK(ran.load() == 500);
  CHECK(wrong_role.load() == 0);
  CHECK(pool.stats().tasks_run == 500);
  CHECK_FALSE(pool.try_post([] {}));  // stopped
}

TEST_CASE("thread pool: a full queue refuses at once, post() still queues") {
  ThreadPool pool({"test-pool", 1, 2, ThreadRole::bus});
  Blocker blocker(pool);  // the one thread, until released
  std::atomic<int> ran{0};
  CHECK(pool.try_post([&] { ran.fetch_add(1); }));
  CHECK(pool.try_post([&] { ran.fetch_add(1); }));
  CHECK_FALSE(pool.try_post([&] { ran.fetch_add(100); }));  // 2 queued: full
  CHECK(pool.stats().tasks_refused == 1);
  pool.post([&] { ran.fetch_add(1); });  // a continuation is never refused
  CHECK(pool.stats().queued == 3);
  blocker.release();
  pool.stop();
  CHECK(ran.load() == 3);
}

TEST_CASE("thread pool: posts from many threads wake sleeping threads and none is stranded") {
  // A lost wake-up would leave tasks queued while every thread sleeps: the
  // count would stop short (stop() would then run them, so it is checked
  // before).
  ThreadPool pool({"test-pool", 2, 100'000, ThreadRole::bus});
  constexpr int kPosters = 4;
  constexpr int kEach = 5000;
  std::mutex mu;
  std::condition_variable cv;
  int ran = 0;
  std::atomic<int> refused{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < kPosters; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto task = [&] {
          std::lock_guard lock(mu);
          if (++ran == kPosters * kEach) cv.notify_all();
        };
        if (t % 2 == 0) {
          if (!pool.try_post(task)) refused.fetch_add(1);
        } else {
          pool.post(task);
        }
        if (i % 64 == 0) std::this_thread::yield();  // let the pool's threads go idle now and then
      }
    });
  }
  for (auto& p : posters) p.join();
  REQUIRE(refused.load() == 0);
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(120), [&] { return ran == kPosters * kEach; });
    CHECK(ran == kPosters * kEach);
  }
  pool.stop();
}

TEST_CASE("thread pool: a burst spreads over the idle threads (tasks that wait for each other all run)") {
  // Each task waits until all of them run at once: that needs every thread,
  // woken one after another as each takes a task and leaves more queued.
  constexpr int kThreads = 4;
  ThreadPool pool({"test-pool", kThreads, 16, ThreadRole::bus});
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  int met = 0;
  for (int i = 0; i < kThreads; ++i) {
    pool.post([&] {
      std::unique_lock lock(mu);
      ++running;
      cv.notify_all();
      if (cv.wait_for(lock, std::chrono::seconds(120), [&] { return running == kThreads; })) ++met;
    });
  }
  pool.stop();
  CHECK(met == kThreads);
}

TEST_CASE("serial queue: tasks run in the order posted, one at a time, on the executor") {
  ThreadPool pool({"test-pool", 4, 16, ThreadRole::bus});
  std::vector<int> order;  // written by one task at a time, read after stop()
  std::atomic<int> running{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> wrong_role{0};
  {
    SerialQueue queue(pool, 8);
    for (int i = 0; i < 1000; ++i) {
      queue.post([&, i] {
        if (running.fetch_add(1) != 0) overlaps.fetch_add(1);
        if (thread_role() != ThreadRole::bus) wrong_role.fetch_add(1);
        order.push_back(i);
        running.fetch_sub(1);
      });
    }
  }  // waits for the last turn
  pool.stop();
  REQUIRE(order.size() == 1000);
  for (int i = 0; i < 1000; ++i) CHECK(order[static_cast<size_t>(i)] == i);
  CHECK(overlaps.load() == 0);
  CHECK(wrong_role.load() == 0);
}

TEST_CASE("serial queue: a burst costs the executor one task per turn") {
  ThreadPool pool({"test-pool", 1, 16, ThreadRole::bus});
  Blocker blocker(pool);  // the one thread, while the burst is posted
  std::atomic<int> ran{0};
  {
    SerialQueue queue(pool, 4);
    for (int i = 0; i < 10; ++i) queue.post([&] { ran.fetch_add(1); });
    CHECK(pool.stats().queued == 1);  // one turn for the ten
    blocker.release();
  }
  pool.stop();
  CHECK(ran.load() == 10);
  CHECK(pool.stats().tasks_run == 1 + 3);  // the blocker, then turns of 4, 4 and 2
}

TEST_CASE("thread roles: blocking work is refused on I/O and log threads") {
  CHECK(thread_role() == ThreadRole::unassigned);
  CHECK_FALSE(aborts([] { expect_may_block("a test wait"); }));
  CHECK(aborts([] {
    set_thread_role(ThreadRole::io);
    expect_may_block("a test wait");
  }));
  CHECK(aborts([] {
    set_thread_role(ThreadRole::log_writer);
    expect_may_block("a test wait");
  }));
  CHECK(aborts([] {
    set_thread_role(ThreadRole::log_syncer);
    expect_not_log_thread("a decision");
  }));
  CHECK_FALSE(aborts([] {
    set_thread_role(ThreadRole::io);
    expect_not_log_thread("a read");
  }));
  CHECK_FALSE(aborts([] {
    set_thread_role(ThreadRole::query);
    expect_may_block("a search");
  }));
  // A role is set once.
  CHECK(aborts([] {
    set_thread_role(ThreadRole::query);
    set_thread_role(ThreadRole::bus);
  }));
}
