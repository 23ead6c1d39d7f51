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
// - stop() (and the destructor) refuses new work, runs every queued task,
//   then joins the threads. It must not be called from a pool thread.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
  void run();

  const ThreadPoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  size_t busy_ = 0;
  std::atomic<uint64_t> run_{0}, refused_{0};
  std::vector<std::thread> threads_;
};

}  // namespace engram::core
