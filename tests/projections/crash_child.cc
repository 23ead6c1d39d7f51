// Runs the counter projection over the log in argv[1] and dies (_exit, as a
// crash would) at the worker's fault point, between apply() and the commit
// of batch number argv[2] (1-based). Batches hold argv[3] events.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "core/data_dir.h"
#include "core/model_db.h"
#include "projections/worker.h"
#include "tests/projections/counter.h"

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const int die_at_batch = std::atoi(argv[2]);
  engram::core::LogOptions o;
  o.create_if_missing = false;
  auto log = engram::core::Log::open(argv[1], o);
  if (!log) return 3;
  auto models = engram::core::ModelDb::open(engram::core::DataDir(argv[1]));
  if (!models) return 3;
  engram::projections::WorkerOptions wo;
  wo.max_batch_events = static_cast<size_t>(std::atoi(argv[3]));
  std::atomic<int> batches{0};
  wo.before_commit = [&](engram::core::Position) {
    if (++batches == die_at_batch) _exit(0);
  };
  auto w = engram::projections::Worker::start(
      **log, **models, std::make_shared<engram::test::CounterProjection>(), wo);
  if (!w) return 4;
  // Caught up without reaching the fault point: exit cleanly.
  (*w)->wait_for((*log)->head().position, std::chrono::seconds(30));
  return 0;
}
