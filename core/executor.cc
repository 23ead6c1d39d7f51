#include "core/executor.h"

#include <pthread.h>

#include <algorithm>

#include "core/assert.h"

namespace engram::core {

ThreadPool::ThreadPool(ThreadPoolOptions options) : options_(std::move(options)) {
  ENGRAM_ASSERT(options_.threads >= 1 && options_.threads <= kMaxThreads);
  ENGRAM_ASSERT(options_.max_queued_tasks >= 1);
  threads_.reserve(options_.threads);
  parked_.reserve(options_.threads);
  idle_.reserve(options_.threads);
  for (size_t i = 0; i < options_.threads; ++i) {
    parked_.push_back(std::make_unique<Parked>());
    threads_.emplace_back([this, self = parked_.back().get()] { run(*self); });
    if (!options_.name.empty()) {
      // Thread names help profiles and stack dumps; Linux keeps 15 bytes.
      (void)pthread_setname_np(threads_.back().native_handle(),
                               options_.name.substr(0, 15).c_str());
    }
  }
}

ThreadPool::~ThreadPool() {
  stop();
}

// The thread idle for the shortest time, to be woken, unless one woken
// earlier has not looked at the queue yet (it will take what is there).
ThreadPool::Parked* ThreadPool::take_idle_locked() {
  if (waking_ > 0 || idle_.empty()) return nullptr;
  Parked* p = idle_.back();
  idle_.pop_back();
  p->counted = true;
  ++waking_;
  return p;
}

// Called with mu_ held (the lock is released here): queues the task and
// wakes a thread if one is needed, outside the lock.
void ThreadPool::queue_and_wake(Task task) {
  queue_.push_back(std::move(task));
  Parked* wake = take_idle_locked();
  mu_.unlock();
  if (wake != nullptr) wake->wake.signal();
}

bool ThreadPool::try_post(Task task) {
  mu_.lock();
  if (stopping_ || queue_.size() >= options_.max_queued_tasks) {
    mu_.unlock();
    refused_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  queue_and_wake(std::move(task));
  return true;
}

void ThreadPool::post(Task task) {
  mu_.lock();
  ENGRAM_ASSERT_MSG(!stopping_, "ThreadPool::post after stop()");
  queue_and_wake(std::move(task));
}

void ThreadPool::stop() {
  std::vector<Parked*> wake;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    wake.swap(idle_);
  }
  for (Parked* p : wake) p->wake.signal();
  for (auto& t : threads_) {
    ENGRAM_ASSERT_MSG(t.get_id() != std::this_thread::get_id(), "ThreadPool::stop on its own thread");
    t.join();
  }
  threads_.clear();
}

ThreadPoolStats ThreadPool::stats() const {
  ThreadPoolStats s;
  s.tasks_run = run_.load(std::memory_order_relaxed);
  s.tasks_refused = refused_.load(std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  s.queued = queue_.size();
  s.busy = busy_;
  return s;
}

void ThreadPool::run(Parked& self) {
  set_thread_role(options_.role);
  std::unique_lock lock(mu_);
  for (;;) {
    if (queue_.empty()) {
      if (stopping_) return;  // and everything queued has run
      self.wake.reset();
      idle_.push_back(&self);
      lock.unlock();
      self.wake.wait();
      lock.lock();
      if (self.counted) {
        self.counted = false;
        --waking_;
      }
      continue;
    }
    Task task = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    // More queued than this thread takes: pass the wake-up on.
    Parked* next = queue_.empty() ? nullptr : take_idle_locked();
    lock.unlock();
    if (next != nullptr) next->wake.signal();
    try {
      task();
    } catch (...) {
      ENGRAM_ASSERT_MSG(false, "a task threw on an executor thread");
    }
    task = nullptr;  // its captures are released outside the lock
    run_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    --busy_;
  }
}

SerialQueue::SerialQueue(Executor& executor, size_t max_tasks_per_turn)
    : executor_(executor), max_tasks_per_turn_(max_tasks_per_turn) {
  ENGRAM_ASSERT(max_tasks_per_turn >= 1);
}

SerialQueue::~SerialQueue() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return !scheduled_; });
  ENGRAM_ASSERT_MSG(tasks_.empty(), "a SerialQueue is destroyed with tasks queued");
}

void SerialQueue::post(Task task) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
    if (scheduled_) return;  // the turn queued or running takes it
    scheduled_ = true;
  }
  executor_.post([this] { turn(); });
}

void SerialQueue::turn() {
  std::vector<Task> batch;
  {
    std::lock_guard lock(mu_);
    const size_t n = std::min(tasks_.size(), max_tasks_per_turn_);
    batch.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(tasks_.front()));
      tasks_.pop_front();
    }
  }
  for (Task& t : batch) {
    t();
    t = nullptr;  // its captures go now, in order
  }
  {
    std::lock_guard lock(mu_);
    if (tasks_.empty()) {
      scheduled_ = false;
      idle_.notify_all();
      return;
    }
  }
  executor_.post([this] { turn(); });
}

}  // namespace engram::core
