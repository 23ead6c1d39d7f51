#pragma once

// Executors: where work handed off by another thread runs. The log's
// threads, the HTTP I/O threads and the projection workers each hand work
// they must not do themselves (deciding a command, a search) to an executor
// (docs/architecture.md, "Threads").
//
// Contract
// - try_post(task) queues the task, or returns false at once, without
//   running it, when max_queued_tasks tasks are waiting or the pool is
//   stopping: the caller sheds load (an HTTP 503 with Retry-After).
// - post(task) always queues: it is for continuations of work that was
//   admitted through try_post (or another bound the caller keeps), so the
//   total stays bounded by that admission. It must not be called after
//   stop().
// - Tasks run on the pool's threads, each with the pool's ThreadRole; a
//   task must not throw (the pool asserts).
// - A post wakes at most one idle thread, the one idle for the shortest
//   time, with one futex wake: posting never waits (a condition variable's
//   signal may, in glibc, for earlier waiters to leave). While a woken
//   thread is on its way, posts wake no other; a thread that takes a task
//   and leaves more queued wakes the next one. So a burst of small tasks
//   costs one wake-up per thread it needs, not one per task, and still
//   spreads over idle threads when the tasks take long.
// - stop() (and the destructor) refuses new work, runs every queued task,
//   then joins the threads. It must not be called from a pool thread.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/completion.h"
#include "core/thread_role.h"

namespace engram::core {

using Task = std::function<void()>;

class Executor {
 public:
  virtual ~Executor() = default;
  virtual bool try_post(Task task) = 0;
  virtual void post(Task task) = 0;
};

struct ThreadPoolOptions {
  std::string name;  // for thread names (at most 15 characters are kept) and messages
  size_t threads = 1;
  size_t max_queued_tasks = 1024;
  ThreadRole role = ThreadRole::unassigned;
};

struct ThreadPoolStats {
  uint64_t tasks_run = 0;
  uint64_t tasks_refused = 0;  // try_post that returned false
  size_t queued = 0;           // now
  size_t busy = 0;             // threads running a task now
};

class ThreadPool final : public Executor {
 public:
  static constexpr size_t kMaxThreads = 256;

  explicit ThreadPool(ThreadPoolOptions options);
  ~ThreadPool() override;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  bool try_post(Task task) override;
  void post(Task task) override;
  void stop();

  ThreadPoolStats stats() const;
  const ThreadPoolOptions& options() const { return options_; }

 private:
  // A thread with nothing to run sleeps on its own Completion, listed in
  // idle_ until a post (or stop) takes it off and signals it.
  struct Parked {
    Completion wake;
    bool counted = false;  // woken by a post, counted in waking_ (under mu_)
  };
  void run(Parked& self);
  void queue_and_wake(Task task);
  Parked* take_idle_locked();

  const ThreadPoolOptions options_;
  mutable std::mutex mu_;
  std::deque<Task> queue_;
  std::vector<std::unique_ptr<Parked>> parked_;  // one per thread
  std::vector<Parked*> idle_;                    // most recently idle last
  size_t waking_ = 0;  // threads a post woke that have not looked at the queue yet
  bool stopping_ = false;
  size_t busy_ = 0;
  std::atomic<uint64_t> run_{0}, refused_{0};
  std::vector<std::thread> threads_;
};

// Tasks posted from any thread, run one at a time in the order posted, on an
// executor's threads. A burst of posts costs the executor one task, and so
// at most one thread wake-up, instead of one each: for many small
// continuations that arrive together, such as the completions of one group
// commit (a wake-up costs more than such a task on a VM).
//
// Contract
// - post(task) always queues, as Executor::post: it is for continuations of
//   work admitted elsewhere. A task never runs on the posting thread, and
//   one task runs at a time; a task that may block or run long should post
//   that part to the executor itself.
// - One turn runs at most max_tasks_per_turn tasks, then hands its thread
//   back (posting the next turn), so a long burst does not keep one thread.
// - The executor must outlive the queue. Destroying the queue waits for a
//   turn in progress to end; nothing may post to it by then.
class SerialQueue {
 public:
  SerialQueue(Executor& executor, size_t max_tasks_per_turn);
  ~SerialQueue();
  SerialQueue(const SerialQueue&) = delete;
  SerialQueue& operator=(const SerialQueue&) = delete;

  void post(Task task);

 private:
  void turn();

  Executor& executor_;
  const size_t max_tasks_per_turn_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::deque<Task> tasks_;
  bool scheduled_ = false;  // a turn is queued on the executor or running
};

}  // namespace engram::core
