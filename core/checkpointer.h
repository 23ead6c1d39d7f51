#pragma once

// Signs the log's head now and then: every `every_events` events, every
// `interval_ms` while the head moves, and once more at stop (shutdown), so
// the newest acknowledged events are covered by a signed checkpoint that an
// auditor can export and hold the log to later (core/checkpoint.h).
//
// Only the process that writes the log signs it: it alone knows which
// events are acknowledged (durable), so a checkpoint never covers a group
// whose fsync had not returned.

#include <cstdint>
#include <mutex>
#include <thread>

#include "core/checkpoint.h"
#include "core/log.h"

namespace engram::core {

struct CheckpointerOptions {
  uint64_t every_events = 100'000;  // >= 1
  uint64_t interval_ms = 60'000;    // >= 100
};

class Checkpointer {
 public:
  // Starts the signing thread. The newest checkpoint already in the file (a
  // restart) is not signed again.
  Checkpointer(Log& log, SigningKey key, CheckpointFile file, CheckpointerOptions options);
  // stop().
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Signs the head unless the last checkpoint already covers it; returns
  // the newest checkpoint's position (0 when none).
  result<Position> sign_now();
  // Joins the thread, then signs the final head. Idempotent.
  void stop();
  uint64_t signed_count() const;

 private:
  void run();

  Log& log_;
  SigningKey key_;
  CheckpointFile file_;
  CheckpointerOptions options_;
  mutable std::mutex mu_;  // one signature at a time; guards the fields below
  bool stopping_ = false;
  Position last_signed_{0};
  uint64_t signed_count_ = 0;
  std::thread thread_;
};

}  // namespace engram::core
